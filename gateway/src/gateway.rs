//! The `Gateway`: the plugin registry plus the code that turns a configuration into running
//! Pingora services. The stock binary and an operator's own binary both use it.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use tollgate_plugins::{PluginFactory, PluginRegistry};

use crate::admin::AdminApp;
use crate::config::{self, ConfigErrors, RuntimeConfig};
use crate::proxy::TollgateProxy;
use crate::reload::Reloader;
use crate::telemetry::{AuditLog, Metrics};

/// A gateway under construction: register plugin types, then load a configuration and run.
#[derive(Debug, Clone)]
pub struct Gateway {
    registry: PluginRegistry,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The configuration watcher could not start.
    #[error("cannot watch the configuration: {0}")]
    Reload(String),
    /// The audit log could not be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(String),
    /// The metrics registry could not be built.
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    /// A listener could not be set up.
    #[error("cannot set up listener `{addr}`: {message}")]
    Listener {
        /// The address.
        addr: String,
        /// What went wrong.
        message: String,
    },
}

impl Gateway {
    /// A gateway with the built-in plugin types registered.
    pub fn new() -> Self {
        Self {
            registry: PluginRegistry::with_builtins(),
        }
    }

    /// Registers a plugin type; configurations then use it as `type = "<type_name>"`.
    pub fn register_plugin(
        &mut self,
        type_name: impl Into<String>,
        factory: impl PluginFactory,
    ) -> &mut Self {
        self.registry.register(type_name, factory);
        self
    }

    /// The plugin registry.
    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    /// Loads and validates the configuration file at `path`.
    pub fn load(&self, path: &Path) -> Result<RuntimeConfig, ConfigErrors> {
        config::load_file(path, &self.registry)
    }

    /// Builds the Pingora server for `config`; with `watch`, that configuration file is reloaded
    /// when it (or a file it names) changes and on SIGHUP. Call `run_forever` on the result.
    pub fn build_server(
        &self,
        config: RuntimeConfig,
        watch: Option<&Path>,
    ) -> Result<Server, StartError> {
        let settings = config.server.clone();
        let conf = ServerConf {
            threads: settings.threads,
            grace_period_seconds: Some(settings.grace_period.as_secs()),
            graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
            ..Default::default()
        };
        let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
        server.bootstrap();

        let telemetry = &config.telemetry;
        let metrics = Metrics::new(
            telemetry.metric_models.clone(),
            telemetry.metric_tools.clone(),
        )
        .map(Arc::new)
        .map_err(|e| StartError::Metrics(e.to_string()))?;
        metrics.config_reload(true);
        let audit =
            AuditLog::start(&telemetry.audit).map_err(|e| StartError::Audit(e.to_string()))?;
        let watch_interval = config.server.watch_interval;
        let shared = Arc::new(ArcSwap::from_pointee(config));
        if let Some(path) = watch {
            let reloader = Reloader::new(
                path.to_path_buf(),
                self.registry.clone(),
                shared.clone(),
                metrics.clone(),
                watch_interval,
            );
            reloader
                .spawn()
                .map_err(|e| StartError::Reload(e.to_string()))?;
        }
        let proxy = TollgateProxy::new(shared, metrics.clone(), audit);
        let mut options = HttpServerOptions::default();
        options.h2c = settings.h2c;
        let mut service = ProxyServiceBuilder::new(&server.configuration, proxy)
            .name("tollgate proxy")
            .server_options(options)
            .build();
        match &settings.tls {
            Some((cert, key)) => {
                service
                    .add_tls(&settings.listen, cert, key)
                    .map_err(|e| StartError::Listener {
                        addr: settings.listen.clone(),
                        message: e.to_string(),
                    })?
            }
            None => service.add_tcp(&settings.listen),
        }
        server.add_service(service);

        if let Some(admin) = &settings.admin {
            let mut admin_service = Service::new(
                "tollgate admin".into(),
                HttpServer::new_app(AdminApp::new(&settings.listen, metrics)),
            );
            admin_service.add_tcp(admin);
            server.add_service(admin_service);
        }
        Ok(server)
    }
}

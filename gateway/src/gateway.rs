//! The `Gateway`: the plugin registry plus the code that turns a configuration into running
//! Pingora services. The stock binary and an operator's own binary both use it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;
use tollgate_plugin_api::{PluginFactory, PluginRegistry};

use crate::admin::AdminApp;
use crate::config::{self, ConfigErrors, RuntimeConfig};
use crate::connections::ConnectionGuard;
use crate::lifecycle::{exit_when_drained, ExitHook, Lifecycle, SignalWatch};
use crate::proxy::TollgateProxy;
use crate::reload::Reloader;
use crate::telemetry::{AuditLog, Metrics, Tracing};
use crate::tls::{listener_settings, CertSlot};

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
    /// Trace export could not start.
    #[error("{0}")]
    Traces(String),
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
            registry: tollgate_plugins::builtins(),
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

    /// Builds the server for `config`. With `options.watch`, that configuration file is
    /// reloaded when it (or a file it names) changes and on SIGHUP; with `options.upgrade`, the
    /// listening sockets are taken over from a running gateway (`[server] upgrade_sock`). Call
    /// `run_forever` on the result.
    pub fn build_server(
        &self,
        config: RuntimeConfig,
        options: &ServeOptions,
    ) -> Result<TollgateServer, StartError> {
        let settings = config.server.clone();
        let conf = ServerConf {
            threads: settings.threads,
            grace_period_seconds: Some(settings.grace_period.as_secs()),
            graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
            upgrade_sock: settings.upgrade_sock.clone(),
            ..Default::default()
        };
        let opt = Opt {
            upgrade: options.upgrade,
            ..Default::default()
        };
        let mut server = Server::new_with_opt_and_conf(opt, conf);
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
        let tracing = Tracing::start(&telemetry.traces, metrics.clone())
            .map_err(|e| StartError::Traces(e.to_string()))?;
        let cert_slot = settings
            .tls
            .as_ref()
            .map(|tls| CertSlot::new(tls.certified.clone()));
        let watch_interval = config.server.watch_interval;
        let shared = Arc::new(ArcSwap::from_pointee(config));
        metrics
            .report_plugin_gauges(shared.clone())
            .map_err(|e| StartError::Metrics(e.to_string()))?;
        if let Some(path) = &options.watch {
            let reloader = Reloader::new(
                path.clone(),
                self.registry.clone(),
                shared.clone(),
                metrics.clone(),
                watch_interval,
            )
            .with_cert_slot(cert_slot.clone());
            reloader
                .spawn()
                .map_err(|e| StartError::Reload(e.to_string()))?;
        }
        let lifecycle = Lifecycle::new();
        let admin_api =
            crate::admin::api::AdminApi::new(shared.clone(), audit.clone(), metrics.clone());
        let proxy = TollgateProxy::new(
            shared,
            metrics.clone(),
            audit.clone(),
            lifecycle.clone(),
            tracing.clone(),
        );
        let mut http_options = HttpServerOptions::default();
        http_options.h2c = settings.h2c;
        let mut http_proxy = HttpProxy::new(proxy, server.configuration.clone());
        http_proxy.server_options = Some(http_options);
        http_proxy.handle_init_modules();
        let mut service = Service::new(
            "tollgate proxy".into(),
            ConnectionGuard::new(http_proxy, settings.connections),
        );
        // Each client connection's read buffer: allocated at accept, its pages resident once
        // bytes pass through it; `0` reads straight into Pingora's head and body buffers.
        let buffers = L4BufferSettings::default().read(settings.read_buffer);
        let mut listener = ListenerConfig::tcp(settings.listen.clone()).l4_buffer(buffers);
        if let (Some(tls), Some(slot)) = (&settings.tls, cert_slot) {
            let tls_settings = listener_settings(tls, slot).map_err(|e| StartError::Listener {
                addr: settings.listen.clone(),
                message: e.to_string(),
            })?;
            listener = listener.tls(tls_settings);
        }
        service.add_listener(listener);
        server.add_service(service);

        if let Some(admin) = &settings.admin {
            let mut admin_service = Service::new(
                "tollgate admin".into(),
                HttpServer::new_app(AdminApp::new(
                    &settings.listen,
                    metrics,
                    lifecycle.clone(),
                    admin_api,
                )),
            );
            admin_service.add_tcp(admin);
            server.add_service(admin_service);
        }
        let flush_audit: ExitHook = Box::new(move || audit.flush(Duration::from_secs(2)));
        // The stdio MCP servers' processes (and whatever they started) go with the gateway.
        let end_processes: ExitHook =
            Box::new(|| crate::federation::stdio::groups::end_all(Duration::from_secs(2)));
        let mut exit_hooks = vec![end_processes, flush_audit];
        if let Some(tracing) = tracing {
            exit_hooks.push(Box::new(move || tracing.flush()));
        }
        Ok(TollgateServer {
            server,
            lifecycle,
            drain_delay: settings.drain_delay,
            exit_hooks,
        })
    }
}

/// How `build_server` runs the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Reload from this file when it or a file it names changes, and on SIGHUP.
    pub watch: Option<PathBuf>,
    /// Take the listening sockets over from the gateway that receives SIGQUIT.
    pub upgrade: bool,
}

/// A built gateway: Pingora's server plus the shutdown sequence around it.
pub struct TollgateServer {
    server: Server,
    lifecycle: Arc<Lifecycle>,
    drain_delay: Duration,
    exit_hooks: Vec<ExitHook>,
}

impl TollgateServer {
    /// Readiness and in-flight state, e.g. for an embedding program's own probes.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// Runs until shut down (see [`crate::lifecycle`] for the signals), then exits the process.
    pub fn run_forever(self) -> ! {
        let hooks = Arc::new(self.exit_hooks);
        let drain_hooks = hooks.clone();
        let phases = self.server.watch_execution_phase();
        let run_hooks: ExitHook = Box::new(move || drain_hooks.iter().for_each(|hook| hook()));
        if let Err(e) = exit_when_drained(self.lifecycle.clone(), phases, vec![run_hooks]) {
            tracing::warn!(error = %e, "cannot watch the drain; shutdown waits the whole grace period");
        }
        let watch = SignalWatch::new(self.lifecycle.clone(), self.drain_delay);
        self.server.run(RunArgs {
            shutdown_signal: Box::new(watch),
        });
        hooks.iter().for_each(|hook| hook());
        std::process::exit(0)
    }
}

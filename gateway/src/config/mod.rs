//! Configuration: the TOML schema, validation with `file:line:column` errors, and the
//! resolution of the route table (plugins built, chains resolved) at load time.

pub mod error;
pub mod locate;
pub mod schema;
pub mod units;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tollgate_plugins::{Plugin, PluginRegistry, RouteInfo, RouteKind};

pub use error::{ConfigError, ConfigErrors};
use locate::{Locator, Step};
use schema::{ConfigFile, RouteSection, UpstreamKind};

use crate::proxy::route::{Route, RouteTable};
use crate::proxy::upstream::{Upstream, UpstreamOptions};

/// Default request body limit for MCP and LLM routes.
pub const DEFAULT_MAX_BODY: u64 = 10 << 20;

/// Process-level settings from `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Proxy listener.
    pub listen: String,
    /// Admin listener, if enabled.
    pub admin: Option<String>,
    /// Proxy worker threads.
    pub threads: usize,
    /// TLS on the proxy listener, loaded.
    pub tls: Option<crate::tls::ListenerTls>,
    /// Accept h2c.
    pub h2c: bool,
    /// After SIGTERM, how long readiness fails while the gateway still serves.
    pub drain_delay: Duration,
    /// After the listeners stop, how long requests in flight may take.
    pub grace_period: Duration,
    /// After the grace period, how long the runtimes get to stop.
    pub shutdown_timeout: Duration,
    /// Socket for listener handover to a new process.
    pub upgrade_sock: String,
    /// Configuration polling interval; `None`: only on SIGHUP.
    pub watch_interval: Option<Duration>,
}

/// Telemetry settings from `[telemetry]`.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Model label allow-list.
    pub metric_models: Vec<String>,
    /// Tool label allow-list.
    pub metric_tools: Vec<String>,
    /// Where audit records go.
    pub audit: crate::telemetry::AuditSink,
    /// Whether audit records carry prompts and tool arguments (as forwarded, i.e. masked).
    pub audit_bodies: bool,
    /// Trace export.
    pub traces: crate::telemetry::TraceSettings,
}

/// A loaded, validated configuration: what the proxy serves from.
#[derive(Debug)]
pub struct RuntimeConfig {
    /// Process-level settings (changing them needs a restart).
    pub server: ServerSettings,
    /// Telemetry settings.
    pub telemetry: TelemetrySettings,
    /// Files the configuration names (secrets, keys, CAs); watched for hot reload.
    pub watched_files: Vec<std::path::PathBuf>,
    /// Plugin instances by name with the table they were built from (reused by reloads).
    pub plugins: HashMap<String, (toml::Table, Arc<dyn Plugin>)>,
    /// The route table.
    pub routes: RouteTable,
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, registry: &PluginRegistry) -> Result<RuntimeConfig, ConfigErrors> {
    reload_file(path, registry, None)
}

/// Like `load_file`, reusing the unchanged instances of `previous` that survive reloads.
pub fn reload_file(
    path: &Path,
    registry: &PluginRegistry,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path,
            "",
            None,
            format!("cannot read the file: {e}"),
        )])
    })?;
    build(path, &source, registry, previous)
}

/// Validates `source`, reporting errors against `path`.
pub fn load_str(
    path: &Path,
    source: &str,
    registry: &PluginRegistry,
) -> Result<RuntimeConfig, ConfigErrors> {
    build(path, source, registry, None)
}

fn build(
    path: &Path,
    source: &str,
    registry: &PluginRegistry,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let file: ConfigFile = toml::from_str(source).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path,
            source,
            e.span(),
            e.message().trim().to_string(),
        )])
    })?;
    Builder {
        path,
        source,
        locator: Locator::new(source),
        registry,
        previous,
        errors: Vec::new(),
    }
    .build(file)
}

struct Builder<'a> {
    previous: Option<&'a RuntimeConfig>,
    path: &'a Path,
    source: &'a str,
    locator: Locator<'a>,
    registry: &'a PluginRegistry,
    errors: Vec<ConfigError>,
}

impl Builder<'_> {
    fn error(&mut self, at: &[Step<'_>], message: impl Into<String>, hint: Option<String>) {
        let mut error = ConfigError::new(self.path, self.source, self.locator.span(at), message);
        error.hint = hint;
        self.errors.push(error);
    }

    fn build(mut self, file: ConfigFile) -> Result<RuntimeConfig, ConfigErrors> {
        let plugins = self.build_plugins(&file);
        let default_max_body = file.server.max_body.map_or(DEFAULT_MAX_BODY, |s| s.0);
        let mut routes = Vec::new();
        let mut names = HashMap::new();
        for (index, section) in file.route.iter().enumerate() {
            if let Some(first) = names.insert(section.name.clone(), index) {
                self.error(
                    &[Step::Key("route"), Step::Index(index), Step::Key("name")],
                    format!("route name `{}` is used twice", section.name),
                    Some(format!(
                        "route #{} already has it; names must be unique",
                        first + 1
                    )),
                );
            }
            if let Some(route) = self.build_route(index, section, &plugins, &file, default_max_body)
            {
                routes.push(Arc::new(route));
            }
        }
        let server = self.server_settings(&file);
        let telemetry = TelemetrySettings {
            metric_models: file.telemetry.metric_models.clone(),
            metric_tools: file.telemetry.metric_tools.clone(),
            audit: crate::telemetry::AuditSink::parse(&file.telemetry.audit_log),
            audit_bodies: file.telemetry.audit_bodies,
            traces: self.trace_settings(&file.telemetry),
        };
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let watched_files = crate::reload::referenced_files(&file);
        Ok(RuntimeConfig {
            server,
            telemetry,
            watched_files,
            plugins,
            routes: RouteTable::new(routes),
        })
    }

    fn server_settings(&mut self, file: &ConfigFile) -> ServerSettings {
        let s = &file.server;
        if s.threads == 0 {
            self.error(
                &[Step::Key("server"), Step::Key("threads")],
                "threads must be at least 1",
                None,
            );
        }
        ServerSettings {
            listen: s.listen.clone(),
            admin: (!s.admin.is_empty()).then(|| s.admin.clone()),
            threads: s.threads.max(1),
            tls: self.listener_tls(s.tls.as_ref()),
            h2c: s.h2c,
            drain_delay: s.drain_delay.map_or(Duration::ZERO, |d| d.0),
            grace_period: s.grace_period.map_or(Duration::from_secs(30), |d| d.0),
            shutdown_timeout: s.shutdown_timeout.map_or(Duration::from_secs(5), |d| d.0),
            upgrade_sock: s.upgrade_sock.clone(),
            watch_interval: match s.watch_interval {
                None => Some(Duration::from_secs(2)),
                Some(d) if d.0.is_zero() => None,
                Some(d) => Some(d.0),
            },
        }
    }

    fn trace_settings(&mut self, t: &schema::TelemetrySection) -> crate::telemetry::TraceSettings {
        use crate::telemetry::traces::OtlpProtocol;
        let at = |key| [Step::Key("telemetry"), Step::Key(key)];
        if let Some(endpoint) = &t.otlp_endpoint {
            let scheme_ok = endpoint
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.scheme_str().map(|s| s == "http" || s == "https"))
                .unwrap_or(false);
            if !scheme_ok {
                self.error(
                    &at("otlp_endpoint"),
                    format!("`{endpoint}` is not an http:// or https:// URL"),
                    Some("e.g. \"http://otel-collector:4317\" (gRPC) or \"http://otel-collector:4318\" (HTTP)".into()),
                );
            }
        }
        let otlp_protocol = match t.otlp_protocol.as_deref() {
            None => None,
            Some("grpc") => Some(OtlpProtocol::Grpc),
            Some("http/protobuf") | Some("http") => Some(OtlpProtocol::HttpProtobuf),
            Some(other) => {
                self.error(
                    &at("otlp_protocol"),
                    format!("unknown OTLP protocol `{other}`"),
                    Some("use \"grpc\" or \"http/protobuf\"".into()),
                );
                None
            }
        };
        if !(0.0..=1.0).contains(&t.trace_sample_ratio) {
            self.error(
                &at("trace_sample_ratio"),
                "trace_sample_ratio must be between 0.0 and 1.0",
                None,
            );
        }
        crate::telemetry::TraceSettings {
            otlp_endpoint: t.otlp_endpoint.clone(),
            otlp_protocol,
            service_name: t.service_name.clone(),
            sample_ratio: t.trace_sample_ratio.clamp(0.0, 1.0),
        }
    }

    fn listener_tls(
        &mut self,
        section: Option<&schema::TlsSection>,
    ) -> Option<crate::tls::ListenerTls> {
        use crate::tls::{ClientAuth, ListenerTls, TlsFiles};
        let t = section?;
        let files = TlsFiles {
            cert: t.cert.clone(),
            key: t.key.clone(),
            client_ca: t.client_ca.clone(),
            client_auth: match t.client_auth {
                Some(schema::ClientAuthSetting::Optional) => ClientAuth::Optional,
                _ => ClientAuth::Required,
            },
        };
        if t.client_auth.is_some() && t.client_ca.is_none() {
            self.error(
                &[
                    Step::Key("server"),
                    Step::Key("tls"),
                    Step::Key("client_auth"),
                ],
                "client_auth needs client_ca (the CAs that sign client certificates)",
                None,
            );
        }
        match ListenerTls::load(files) {
            Ok(tls) => Some(tls),
            Err(e) => {
                self.error(
                    &[Step::Key("server"), Step::Key("tls"), Step::Key(e.field)],
                    &e.message,
                    None,
                );
                None
            }
        }
    }

    fn build_plugins(
        &mut self,
        file: &ConfigFile,
    ) -> HashMap<String, (toml::Table, Arc<dyn Plugin>)> {
        let mut built = HashMap::new();
        for (name, table) in &file.plugin {
            // An unchanged stateful instance is kept, with its state (e.g. rate-limit buckets).
            let kept = self
                .previous
                .and_then(|p| p.plugins.get(name))
                .filter(|(old, plugin)| old == table && plugin.survives_reload());
            if let Some((_, plugin)) = kept {
                built.insert(name.clone(), (table.clone(), plugin.clone()));
                continue;
            }
            let at = [Step::Key("plugin"), Step::Key(name.as_str())];
            let Some(type_name) = table.get("type").and_then(|t| t.as_str()) else {
                self.error(
                    &at,
                    format!("plugin `{name}` has no `type`"),
                    Some(self.known_types()),
                );
                continue;
            };
            let Some(factory) = self.registry.get(type_name) else {
                self.error(
                    &[
                        Step::Key("plugin"),
                        Step::Key(name.as_str()),
                        Step::Key("type"),
                    ],
                    format!("unknown plugin type `{type_name}`"),
                    Some(self.known_types()),
                );
                continue;
            };
            let mut own = table.clone();
            own.remove("type");
            match factory.build(name, &own) {
                Ok(plugin) => {
                    built.insert(name.clone(), (table.clone(), plugin));
                }
                Err(e) => {
                    let key = e.key.as_deref().unwrap_or("type");
                    let at = [
                        Step::Key("plugin"),
                        Step::Key(name.as_str()),
                        Step::Key(key),
                    ];
                    self.error(
                        &at,
                        format!("plugin `{name}` ({type_name}): {}", e.message),
                        None,
                    );
                }
            }
        }
        built
    }

    fn known_types(&self) -> String {
        format!(
            "known plugin types: {}",
            self.registry.type_names().join(", ")
        )
    }

    fn build_route(
        &mut self,
        index: usize,
        section: &RouteSection,
        plugins: &HashMap<String, (toml::Table, Arc<dyn Plugin>)>,
        file: &ConfigFile,
        default_max_body: u64,
    ) -> Option<Route> {
        let at = |key: &'static str| [Step::Key("route"), Step::Index(index), Step::Key(key)];
        let mut ok = true;
        let prefix = &section.matcher.path_prefix;
        if !prefix.starts_with('/') {
            self.error(
                &at("match"),
                format!("path_prefix `{prefix}` must start with `/`"),
                None,
            );
            ok = false;
        }
        let mut methods = Vec::new();
        for method in section.matcher.methods.iter().flatten() {
            match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => {
                    self.error(
                        &at("match"),
                        format!("`{method}` is not an HTTP method"),
                        None,
                    );
                    ok = false;
                }
            }
        }
        let mut chain = Vec::with_capacity(section.plugins.len());
        for (j, name) in section.plugins.iter().enumerate() {
            match plugins.get(name) {
                Some((_, plugin)) => chain.push(plugin.clone()),
                // Declared but invalid: its own error is already reported.
                None if file.plugin.contains_key(name) => ok = false,
                None => {
                    let defined: Vec<&str> = file.plugin.keys().map(String::as_str).collect();
                    self.error(
                        &[
                            Step::Key("route"),
                            Step::Index(index),
                            Step::Key("plugins"),
                            Step::Index(j),
                        ],
                        format!(
                            "route `{}` names plugin `{name}`, which is not defined",
                            section.name
                        ),
                        Some(format!(
                            "define it as [plugin.{name}] with a `type`; defined plugins: {}",
                            if defined.is_empty() {
                                "none".to_string()
                            } else {
                                defined.join(", ")
                            }
                        )),
                    );
                    ok = false;
                }
            }
        }
        let up = &section.upstream;
        let kind = match up.kind {
            UpstreamKind::Http => RouteKind::Http,
            UpstreamKind::Mcp => RouteKind::Mcp,
            UpstreamKind::Llm => RouteKind::Llm,
        };
        let provider = match (kind, up.provider.as_deref()) {
            (RouteKind::Llm, None | Some("anthropic")) => Some(Arc::<str>::from("anthropic")),
            (RouteKind::Llm, Some(other)) => {
                self.error(
                    &at("upstream"),
                    format!("unknown LLM provider `{other}`"),
                    Some("supported providers: anthropic".into()),
                );
                ok = false;
                None
            }
            (_, Some(_)) => {
                self.error(
                    &at("upstream"),
                    "`provider` is only for kind = \"llm\"",
                    None,
                );
                ok = false;
                None
            }
            (_, None) => None,
        };
        let default_timeout = if kind == RouteKind::Llm { 600 } else { 60 };
        let options = UpstreamOptions {
            strip_prefix: up.strip_prefix,
            connect_timeout: up.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            read_timeout: up
                .timeout
                .map_or(Duration::from_secs(default_timeout), |d| d.0),
            ca_file: up.ca_file.clone(),
            verify_cert: up.verify_cert,
            http2: up.http2,
        };
        let upstream = match Upstream::new(&up.url, options) {
            Ok(u) => Some(u),
            Err(message) => {
                self.error(&at("upstream"), message, None);
                None
            }
        };
        let max_body = section.max_body.map_or(default_max_body, |s| s.0);
        let upstream = upstream.filter(|_| ok)?;
        Some(Route {
            info: RouteInfo {
                name: Arc::from(section.name.as_str()),
                kind,
                provider,
                path_prefix: Arc::from(prefix.as_str()),
            },
            path_prefix: prefix.clone(),
            host: section
                .matcher
                .host
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            methods,
            upstream,
            chain,
            max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
            series: std::sync::OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests;

//! The TOML schema of the configuration file, as written by operators (see docs/configuration.md).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::{ByteSize, DurationStr};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listeners and process settings.
    #[serde(default)]
    pub server: ServerSection,
    /// Metrics, traces and logs.
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// Named plugin instances: `[plugin.<name>]` with a `type` and the plugin's own keys.
    #[serde(default)]
    pub plugin: BTreeMap<String, toml::Table>,
    /// The route table.
    #[serde(default)]
    pub route: Vec<RouteSection>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Proxy listener address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Admin listener address (`/healthz`, `/readyz`); `""` disables it.
    #[serde(default = "default_admin")]
    pub admin: String,
    /// Worker threads of the proxy service.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// TLS on the proxy listener.
    pub tls: Option<TlsSection>,
    /// Accept HTTP/2 over cleartext (h2c) on the proxy listener.
    #[serde(default)]
    pub h2c: bool,
    /// Default request body limit for MCP and LLM routes.
    pub max_body: Option<ByteSize>,
    /// After SIGTERM: how long `/readyz` fails while the gateway still serves.
    pub drain_delay: Option<DurationStr>,
    /// After the listeners stop: how long requests and streams in flight may take.
    pub grace_period: Option<DurationStr>,
    /// After the grace period: how long the runtimes get to stop.
    pub shutdown_timeout: Option<DurationStr>,
    /// Unix socket for handing listeners to a new process (`tollgate run --upgrade`).
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// How often the configuration file (and the files it names) is checked for changes;
    /// `"0s"`: only on SIGHUP.
    pub watch_interval: Option<DurationStr>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin: default_admin(),
            threads: default_threads(),
            tls: None,
            h2c: false,
            max_body: None,
            drain_delay: None,
            grace_period: None,
            shutdown_timeout: None,
            upgrade_sock: default_upgrade_sock(),
            watch_interval: None,
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

fn default_upgrade_sock() -> String {
    "/tmp/tollgate_upgrade.sock".into()
}

fn default_admin() -> String {
    "127.0.0.1:9901".into()
}

fn default_threads() -> usize {
    2
}

/// `[telemetry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Model names kept as metric labels (exact, `*`, `prefix*`); others are `other`.
    #[serde(default = "any_value")]
    pub metric_models: Vec<String>,
    /// Tool names kept as metric labels (exact, `*`, `prefix*`); others are `other`.
    #[serde(default = "any_value")]
    pub metric_tools: Vec<String>,
    /// Audit log: `"stdout"`, `"off"` or a file path (JSON lines).
    #[serde(default = "default_audit_log")]
    pub audit_log: String,
    /// Also write prompts and tool arguments to the audit log (after `prompt-guard` masking).
    #[serde(default)]
    pub audit_bodies: bool,
    /// `service.name` of exported spans.
    pub service_name: Option<String>,
    /// OTLP collector (base URL); tracing is off without it and without `OTEL_EXPORTER_OTLP_*`.
    pub otlp_endpoint: Option<String>,
    /// `"grpc"` or `"http/protobuf"`.
    pub otlp_protocol: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0.
    #[serde(default = "default_sample_ratio")]
    pub trace_sample_ratio: f64,
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_audit_log() -> String {
    "stdout".into()
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            metric_models: any_value(),
            metric_tools: any_value(),
            audit_log: default_audit_log(),
            audit_bodies: false,
            service_name: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            trace_sample_ratio: default_sample_ratio(),
        }
    }
}

fn any_value() -> Vec<String> {
    vec!["*".into()]
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// PEM bundle of CAs whose client certificates are accepted (mutual TLS).
    pub client_ca: Option<String>,
    /// `"required"` (default with `client_ca`) or `"optional"`.
    pub client_auth: Option<ClientAuthSetting>,
}

/// `client_auth` of the listener's TLS table.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthSetting {
    /// Reject clients without a valid certificate.
    Required,
    /// Verify a certificate when given; let clients without one in.
    Optional,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Route name, used in metrics, logs and errors.
    pub name: String,
    /// What requests the route takes.
    #[serde(rename = "match")]
    pub matcher: MatchSection,
    /// Where they go.
    pub upstream: UpstreamSection,
    /// Plugin instance names, run in this order.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Request body limit (MCP and LLM routes read the body whole).
    pub max_body: Option<ByteSize>,
}

/// `match = { ... }` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSection {
    /// Path prefix, matched on segment boundaries; the longest matching prefix wins.
    pub path_prefix: String,
    /// Exact `Host` (without port) the route is for; any host when absent.
    pub host: Option<String>,
    /// Methods the route takes; any when absent.
    pub methods: Option<Vec<String>>,
}

/// `upstream = { ... }` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://` or `https://` URL; a path in it replaces the matched prefix.
    pub url: String,
    /// `http`, `mcp` or `llm`.
    #[serde(default)]
    pub kind: UpstreamKind,
    /// LLM provider; `anthropic`.
    pub provider: Option<String>,
    /// Remove the matched prefix from the path (when the URL has no path of its own).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Connect timeout (default 5s).
    pub connect_timeout: Option<DurationStr>,
    /// Longest wait for the upstream's next bytes (default 60s; LLM routes: 600s).
    pub timeout: Option<DurationStr>,
    /// PEM file of the CA that signs the upstream's certificate (private CAs).
    pub ca_file: Option<String>,
    /// Certificate verification; only for tests against self-signed upstreams.
    #[serde(default = "default_true")]
    pub verify_cert: bool,
    /// Offer HTTP/2 to TLS upstreams (ALPN h2, http/1.1).
    #[serde(default)]
    pub http2: bool,
}

fn default_true() -> bool {
    true
}

/// The kind of upstream.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// Plain reverse proxy.
    #[default]
    Http,
    /// MCP Streamable HTTP.
    Mcp,
    /// LLM provider API.
    Llm,
}

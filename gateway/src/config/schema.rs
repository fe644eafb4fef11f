//! The TOML schema of the configuration file, as written by operators (see docs/configuration.md).
//!
//! Values that a check after parsing can reject are `Spanned`, so that its error points at them.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::defaults;
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
    pub plugin: BTreeMap<String, PluginSection>,
    /// The route table.
    #[serde(default)]
    pub route: Vec<RouteSection>,
    /// Named MCP servers that federated routes (`upstream = { kind = "mcp", servers = [...] }`)
    /// merge behind one endpoint.
    #[serde(default)]
    pub mcp_server: BTreeMap<String, Spanned<McpServerSection>>,
}

/// `[mcp_server.<name>]`: an MCP server the gateway is a client of: at a `url`, or a `command`
/// the gateway runs (stdio).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSection {
    /// Streamable HTTP endpoint (`http://` or `https://`).
    pub url: Option<Spanned<String>>,
    /// Headers the gateway sends it (credentials it holds for the server): a literal string or
    /// a secret source.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<HeaderValueSource>>,
    /// Exposed tool and prompt names are `<prefix>__<name>`; default: the table's name; `""`:
    /// unprefixed.
    pub prefix: Option<Spanned<String>>,
    /// Longest wait for the server's answer (and for its part of a merged list).
    pub timeout: Option<DurationStr>,
    /// PEM file of the CA that signs the server's certificate (private CAs).
    pub ca_file: Option<Spanned<String>>,
    /// A stdio server: the program and its arguments.
    pub command: Option<Spanned<Vec<String>>>,
    /// The stdio server's environment besides `PATH` and `HOME`: literal values or secret
    /// sources.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<HeaderValueSource>>,
    /// The stdio server's working directory.
    pub cwd: Option<Spanned<String>>,
    /// `per-session` (default) or `shared`.
    pub sharing: Option<Spanned<String>>,
    /// Most processes of the stdio server alive at once (default 32).
    pub max_processes: Option<Spanned<i64>>,
    /// A stdio server process unused this long is ended (default 10m).
    pub idle_timeout: Option<Spanned<DurationStr>>,
}

/// A header (or environment) value in the configuration: written out, or read from a secret
/// source.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeaderValueSource {
    /// The value as written.
    Literal(String),
    /// `{ env = "..." }` or `{ file = "..." }`.
    Secret(tollgate_plugin_api::secret_source::SecretSource),
}

/// `[plugin.<name>]`: its keys as written, each with where it is written.
///
/// Plugin factories take a plain `toml::Table` (`table()`); the spans locate the errors they
/// report about one of its keys.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct PluginSection(Spanned<BTreeMap<String, Spanned<toml::Value>>>);

impl PluginSection {
    /// Where the table is written (its header, or the inline table).
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }

    /// Where the value of `key` is written, if the table has it.
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.0.get_ref().get(key).map(Spanned::span)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.0.get_ref().get(key).map(Spanned::get_ref)
    }

    /// The keys and values as a plain table.
    pub fn table(&self) -> toml::Table {
        self.0
            .get_ref()
            .iter()
            .map(|(key, value)| (key.clone(), value.get_ref().clone()))
            .collect()
    }
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
    /// Worker threads of the proxy service (default [`defaults::THREADS`]).
    pub threads: Option<Spanned<usize>>,
    /// TLS on the proxy listener.
    pub tls: Option<Spanned<TlsSection>>,
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
    /// Seals the session ids of federated MCP routes, so that any replica with the same key
    /// serves any session; a random key per process when absent.
    pub session_key: Option<Spanned<tollgate_plugin_api::secret_source::SecretSource>>,
    /// Bearer token of the admin API (`/admin/v1/...` on the admin listener); the API is off
    /// when absent.
    pub admin_token: Option<Spanned<tollgate_plugin_api::secret_source::SecretSource>>,
    /// Proxies in front of the gateway (addresses or networks) whose `X-Forwarded-Host`,
    /// `X-Forwarded-Proto` and `Forwarded` headers are believed; removed from everyone else's
    /// requests.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Longest a client may take to send a request head (default
    /// [`defaults::HEADER_TIMEOUT`]).
    pub header_timeout: Option<DurationStr>,
    /// Longest a client may take to send a body the gateway reads whole (MCP and LLM routes;
    /// default [`defaults::BODY_TIMEOUT`]).
    pub body_timeout: Option<DurationStr>,
    /// Client connections open at once (default [`defaults::MAX_CONNECTIONS`]).
    pub max_connections: Option<Spanned<usize>>,
    /// Client connections open at once from one address (no limit when absent).
    pub max_connections_per_client: Option<Spanned<usize>>,
    /// The read buffer in front of each client connection's socket (default
    /// [`defaults::TLS_READ_BUFFER`] with `tls`, else [`defaults::READ_BUFFER`]); `0` reads
    /// straight from the socket.
    pub read_buffer: Option<Spanned<ByteSize>>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin: default_admin(),
            threads: None,
            tls: None,
            h2c: false,
            max_body: None,
            drain_delay: None,
            grace_period: None,
            shutdown_timeout: None,
            upgrade_sock: default_upgrade_sock(),
            watch_interval: None,
            session_key: None,
            admin_token: None,
            trusted_proxies: Vec::new(),
            header_timeout: None,
            body_timeout: None,
            max_connections: None,
            max_connections_per_client: None,
            read_buffer: None,
        }
    }
}

fn default_listen() -> String {
    defaults::LISTEN.into()
}

fn default_upgrade_sock() -> String {
    defaults::UPGRADE_SOCK.into()
}

fn default_admin() -> String {
    defaults::ADMIN.into()
}

/// `[telemetry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Model names kept as metric labels (exact, `*`, `prefix*`); others are `other`.
    /// Absent: every name (`*`).
    #[serde(default)]
    pub metric_models: Option<Vec<Spanned<String>>>,
    /// Tool names kept as metric labels (exact, `*`, `prefix*`); others are `other`.
    /// Absent: every name (`*`).
    #[serde(default)]
    pub metric_tools: Option<Vec<Spanned<String>>>,
    /// Audit log: `"stdout"`, `"off"` or a file path (JSON lines).
    #[serde(default = "default_audit_log")]
    pub audit_log: String,
    /// Also write prompts and tool arguments to the audit log (after `prompt-guard` masking).
    #[serde(default)]
    pub audit_bodies: bool,
    /// `service.name` of exported spans.
    pub service_name: Option<String>,
    /// OTLP collector (base URL); tracing is off without it and without `OTEL_EXPORTER_OTLP_*`.
    pub otlp_endpoint: Option<Spanned<String>>,
    /// `"grpc"` or `"http/protobuf"`.
    pub otlp_protocol: Option<Spanned<String>>,
    /// Share of new traces recorded, 0.0 to 1.0 (default [`defaults::TRACE_SAMPLE_RATIO`]).
    pub trace_sample_ratio: Option<Spanned<f64>>,
}

fn default_audit_log() -> String {
    defaults::AUDIT_LOG.into()
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            metric_models: None,
            metric_tools: None,
            audit_log: default_audit_log(),
            audit_bodies: false,
            service_name: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            trace_sample_ratio: None,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert: Spanned<String>,
    /// PEM private key.
    pub key: Spanned<String>,
    /// PEM bundle of CAs whose client certificates are accepted (mutual TLS).
    pub client_ca: Option<Spanned<String>>,
    /// `"required"` (default with `client_ca`) or `"optional"`.
    pub client_auth: Option<Spanned<ClientAuthSetting>>,
}

impl TlsSection {
    /// Where the key `field` is written, if it is.
    pub fn span_of(&self, field: &str) -> Option<Range<usize>> {
        match field {
            "cert" => Some(self.cert.span()),
            "key" => Some(self.key.span()),
            "client_ca" => self.client_ca.as_ref().map(Spanned::span),
            "client_auth" => self.client_auth.as_ref().map(Spanned::span),
            _ => None,
        }
    }
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
    pub name: Spanned<String>,
    /// What requests the route takes.
    #[serde(rename = "match")]
    pub matcher: MatchSection,
    /// Where they go.
    pub upstream: Spanned<UpstreamSection>,
    /// Plugin instance names, run in this order.
    #[serde(default)]
    pub plugins: Vec<Spanned<String>>,
    /// Request body limit (MCP and LLM routes read the body whole).
    pub max_body: Option<ByteSize>,
}

/// `match = { ... }` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSection {
    /// Path prefix, matched on segment boundaries; the longest matching prefix wins.
    pub path_prefix: Spanned<String>,
    /// Exact `Host` (without port) the route is for; any host when absent.
    pub host: Option<String>,
    /// Methods the route takes; any when absent.
    pub methods: Option<Vec<Spanned<String>>>,
}

/// `upstream = { ... }` of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://` or `https://` URL; a path in it replaces the matched prefix. Absent on
    /// federated MCP routes, which name `servers` instead.
    pub url: Option<String>,
    /// Federated MCP route: the `[mcp_server.<name>]` tables it merges.
    pub servers: Option<Spanned<Vec<Spanned<String>>>>,
    /// `http`, `mcp` or `llm`.
    #[serde(default)]
    pub kind: UpstreamKind,
    /// LLM provider; `anthropic`.
    pub provider: Option<Spanned<String>>,
    /// Remove the matched prefix from the path (when the URL has no path of its own).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Connect timeout (default [`defaults::CONNECT_TIMEOUT`]).
    pub connect_timeout: Option<DurationStr>,
    /// Longest wait for the upstream's next bytes (default [`defaults::READ_TIMEOUT`]; LLM routes:
    /// [`defaults::LLM_READ_TIMEOUT`]).
    pub timeout: Option<DurationStr>,
    /// PEM file of the CA that signs the upstream's certificate (private CAs).
    pub ca_file: Option<String>,
    /// Certificate verification; only for tests against self-signed upstreams.
    #[serde(default = "default_true")]
    pub verify_cert: bool,
    /// HTTP/2 to the upstream: offered by ALPN (h2, http/1.1) over TLS; over cleartext, h2c with
    /// prior knowledge (the upstream must speak it).
    #[serde(default)]
    pub http2: bool,
    /// `llm` routes: provider endpoints served besides the defaults (`/v1/files/*`).
    #[serde(default)]
    pub allow_paths: Vec<Spanned<String>>,
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

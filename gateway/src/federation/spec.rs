//! One `[mcp_server.<name>]` as the gateway uses it: where the server is (a URL, or a program the
//! gateway runs), what the gateway sends it, how its names are exposed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

/// A configured MCP server, checked.
#[derive(PartialEq)]
pub struct ServerSpec {
    /// The table's name, used in errors, metrics and audit records.
    pub name: Arc<str>,
    /// How the gateway reaches it.
    pub endpoint: Endpoint,
    /// Exposed names are `<prefix>__<name>`; empty: unprefixed.
    pub prefix: Arc<str>,
    /// Longest wait for its answer.
    pub timeout: Duration,
}

/// How the gateway reaches a server.
#[derive(PartialEq)]
pub enum Endpoint {
    /// Streamable HTTP.
    Http(HttpEndpoint),
    /// A program the gateway runs, speaking MCP on its stdin and stdout.
    Stdio(Arc<StdioSpec>),
}

/// A Streamable HTTP server.
#[derive(PartialEq)]
pub struct HttpEndpoint {
    /// Its endpoint.
    pub url: reqwest::Url,
    /// Headers sent with every request to it; values are marked sensitive.
    pub headers: HeaderMap,
    /// PEM bundle of a private CA that signs its certificate.
    pub ca_pem: Option<Vec<u8>>,
}

/// A stdio server: the program, its environment, and how its processes are shared.
#[derive(PartialEq)]
pub struct StdioSpec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The variables it gets besides `PATH` and `HOME` (values may be credentials).
    pub env: Vec<(String, EnvValue)>,
    /// Its working directory; the gateway's when `None`.
    pub cwd: Option<PathBuf>,
    /// Which callers share a process.
    pub sharing: Sharing,
    /// Most processes of this server alive at once.
    pub max_processes: usize,
    /// A process unused this long is ended.
    pub idle_timeout: Duration,
}

/// Which callers share a stdio server's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Each 2025-era client session has its own; stateless calls use a pool.
    PerSession,
    /// One process for every caller.
    Shared,
}

/// The value of a variable given to a stdio server: kept out of `Debug`.
pub struct EnvValue(pub SecretString);

impl PartialEq for EnvValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ServerSpec");
        out.field("name", &self.name);
        match &self.endpoint {
            // Header and variable values are credentials: only their names are shown.
            Endpoint::Http(http) => out
                .field("url", &http.url.as_str())
                .field("headers", &http.headers.keys().collect::<Vec<_>>()),
            Endpoint::Stdio(stdio) => out
                .field("command", &stdio.command)
                .field(
                    "env",
                    &stdio.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                )
                .field("sharing", &stdio.sharing),
        };
        out.field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The separator between a server's prefix and its own tool or prompt name.
pub const PREFIX_SEPARATOR: &str = "__";

impl ServerSpec {
    /// The name a client sees for the server's own `name`.
    pub fn expose(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            let mut out = String::with_capacity(self.prefix.len() + 2 + name.len());
            out.push_str(&self.prefix);
            out.push_str(PREFIX_SEPARATOR);
            out.push_str(name);
            out
        }
    }

    /// The server's own name for the exposed `name`, if the name is one of its.
    pub fn own_name<'a>(&self, exposed: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(exposed);
        }
        exposed
            .strip_prefix(&*self.prefix)?
            .strip_prefix(PREFIX_SEPARATOR)
            .filter(|rest| !rest.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prefix: &str) -> ServerSpec {
        ServerSpec {
            name: Arc::from("math"),
            endpoint: Endpoint::Http(HttpEndpoint {
                url: reqwest::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
                headers: HeaderMap::new(),
                ca_pem: None,
            }),
            prefix: Arc::from(prefix),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn names_round_trip_through_the_prefix() {
        let math = spec("math");
        assert_eq!(math.expose("add"), "math__add");
        assert_eq!(math.own_name("math__add"), Some("add"));
        assert_eq!(math.own_name("math__"), None);
        assert_eq!(math.own_name("mathx__add"), None);
        assert_eq!(math.own_name("add"), None);
        let bare = spec("");
        assert_eq!(bare.expose("add"), "add");
        assert_eq!(bare.own_name("add"), Some("add"));
    }

    #[test]
    fn debug_shows_no_header_value() {
        let mut math = spec("math");
        let mut value = http::HeaderValue::from_static("Bearer s3cret");
        value.set_sensitive(true);
        if let Endpoint::Http(http) = &mut math.endpoint {
            http.headers.insert("authorization", value);
        }
        let shown = format!("{math:?}");
        assert!(
            shown.contains("authorization") && !shown.contains("s3cret"),
            "{shown}"
        );
        math.endpoint = Endpoint::Stdio(Arc::new(StdioSpec {
            command: vec!["server".into()],
            env: vec![("TOKEN".into(), EnvValue(SecretString::from("s3cret")))],
            cwd: None,
            sharing: Sharing::Shared,
            max_processes: 1,
            idle_timeout: Duration::from_secs(1),
        }));
        let shown = format!("{math:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}

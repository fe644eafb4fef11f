//! One `[mcp_server.<name>]` as the gateway uses it: where the server is, what the gateway sends
//! it, how its names are exposed.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

/// A configured MCP server, checked.
pub struct ServerSpec {
    /// The table's name, used in errors, metrics and audit records.
    pub name: Arc<str>,
    /// The Streamable HTTP endpoint.
    pub url: reqwest::Url,
    /// Headers sent with every request to it; values are marked sensitive.
    pub headers: HeaderMap,
    /// Exposed names are `<prefix>__<name>`; empty: unprefixed.
    pub prefix: Arc<str>,
    /// Longest wait for its answer.
    pub timeout: Duration,
    /// PEM bundle of a private CA that signs its certificate.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials: only their names are shown.
        f.debug_struct("ServerSpec")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("prefix", &self.prefix)
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
            url: reqwest::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            headers: HeaderMap::new(),
            prefix: Arc::from(prefix),
            timeout: Duration::from_secs(1),
            ca_pem: None,
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
        math.headers.insert("authorization", value);
        let shown = format!("{math:?}");
        assert!(
            shown.contains("authorization") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}

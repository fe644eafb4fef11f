//! An upstream from the route table: address, TLS settings, timeouts, path rewriting, and the
//! asynchronous, cached name resolution Pingora's `HttpPeer::new` would otherwise do blocking.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};

/// How long a resolved address is reused before the name is looked up again.
const DNS_TTL: Duration = Duration::from_secs(30);

/// Settings of one upstream, resolved from the route's `upstream = { ... }`.
pub struct Upstream {
    tls: bool,
    host: String,
    port: u16,
    /// `host[:port]` as sent in the upstream `Host` header.
    authority: String,
    /// `authority` as a header value, made once.
    host_header: HeaderValue,
    /// Path from the URL, without a trailing slash; replaces the matched prefix.
    base_path: Option<String>,
    strip_prefix: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    ca: Option<Arc<CaType>>,
    verify_cert: bool,
    http2: bool,
    literal: Option<SocketAddr>,
    resolved: ArcSwapOption<(Instant, SocketAddr)>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("tls", &self.tls)
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// Options of an upstream besides its URL.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Remove the matched route prefix when the URL has no path.
    pub strip_prefix: bool,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes from the upstream.
    pub read_timeout: Duration,
    /// PEM CA file for private CAs.
    pub ca_file: Option<String>,
    /// Verify the upstream certificate and host name.
    pub verify_cert: bool,
    /// HTTP/2: offered by ALPN over TLS, h2c with prior knowledge over cleartext.
    pub http2: bool,
}

/// Why an upstream could not be reached before any byte was sent.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The host name did not resolve.
    #[error("cannot resolve upstream host `{0}`")]
    NoAddress(String),
}

impl Upstream {
    /// Parses `url` (`http://` or `https://`) with `options`. Errors are for a human.
    pub fn new(url: &str, options: UpstreamOptions) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("`{url}` must start with http:// or https://")),
        };
        let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if uri.query().is_some() {
            return Err(format!("`{url}` must not have a query string"));
        }
        let host_header = HeaderValue::from_str(&authority)
            .map_err(|e| format!("`{url}`: its host cannot be a Host header: {e}"))?;
        let path = uri.path().trim_end_matches('/');
        let base_path = (!path.is_empty()).then(|| path.to_string());
        let literal = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let ca = options.ca_file.as_deref().map(load_ca).transpose()?;
        Ok(Self {
            tls,
            host,
            port,
            authority,
            host_header,
            base_path,
            strip_prefix: options.strip_prefix,
            connect_timeout: options.connect_timeout,
            read_timeout: options.read_timeout,
            ca,
            verify_cert: options.verify_cert,
            http2: options.http2,
            literal,
            resolved: ArcSwapOption::empty(),
        })
    }

    /// The URL a request matched at `prefix` goes to (its base path, else the prefix), for
    /// the gateway's own requests to the upstream (`tollgate mcp lock`).
    pub fn url_for(&self, prefix: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let path = match (&self.base_path, self.strip_prefix) {
            (Some(base), _) => base.as_str(),
            (None, true) => "/",
            (None, false) => prefix,
        };
        format!("{scheme}://{}{path}", self.authority)
    }

    /// `host[:port]` for the upstream `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The upstream `Host` header's value (`authority()`).
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// Longest wait for the next bytes from the upstream.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The part of a request `path` (matched by `prefix`) that names the endpoint of the
    /// upstream's API: what follows the prefix when the upstream replaces it (URL path or
    /// `strip_prefix`), else the whole path; `/` when empty.
    pub fn endpoint_path<'a>(&self, prefix: &str, path: &'a str) -> &'a str {
        let rest = if self.base_path.is_some() || self.strip_prefix {
            path.get(prefix.trim_end_matches('/').len()..).unwrap_or("")
        } else {
            path
        };
        if rest.is_empty() {
            "/"
        } else {
            rest
        }
    }

    /// The upstream path for a request `path_and_query` that matched `prefix`.
    pub fn upstream_path(&self, prefix: &str, path_and_query: &str) -> String {
        let replace = self.base_path.is_some() || self.strip_prefix;
        let rest = if replace {
            path_and_query
                .get(prefix.trim_end_matches('/').len()..)
                .unwrap_or("")
        } else {
            path_and_query
        };
        let base = self.base_path.as_deref().unwrap_or("");
        match rest.as_bytes().first() {
            None => {
                if base.is_empty() {
                    "/".to_string()
                } else {
                    base.to_string()
                }
            }
            Some(b'/') => format!("{base}{rest}"),
            Some(b'?') if base.is_empty() => format!("/{rest}"),
            Some(b'?') => format!("{base}{rest}"),
            Some(_) => format!("{base}/{rest}"),
        }
    }

    /// A Pingora peer for this upstream, resolving the host name (cached for 30 s).
    pub async fn peer(&self) -> Result<HttpPeer, ResolveError> {
        let addr = self.address().await?;
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        let options = &mut peer.options;
        options.connection_timeout = Some(self.connect_timeout);
        options.total_connection_timeout = Some(self.connect_timeout);
        options.read_timeout = Some(self.read_timeout);
        options.write_timeout = Some(self.read_timeout);
        options.idle_timeout = Some(Duration::from_secs(60));
        options.verify_cert = self.verify_cert;
        options.verify_hostname = self.verify_cert;
        options.ca = self.ca.clone();
        if self.http2 {
            // Over cleartext there is no ALPN to negotiate with: h2 only is Pingora's sign for
            // h2c with prior knowledge.
            options.alpn = if self.tls { ALPN::H2H1 } else { ALPN::H2 };
            options.max_h2_streams = 100;
        }
        Ok(peer)
    }

    async fn address(&self) -> Result<SocketAddr, ResolveError> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        if let Some(cached) = self.resolved.load().as_deref() {
            if cached.0.elapsed() < DNS_TTL {
                return Ok(cached.1);
            }
        }
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| ResolveError::NoAddress(self.host.clone()))?;
        self.resolved.store(Some(Arc::new((Instant::now(), addr))));
        Ok(addr)
    }
}

fn load_ca(path: &str) -> Result<Arc<CaType>, String> {
    let der = pingora::tls::load_pem_file_ca(&path.to_string())
        .map_err(|e| format!("cannot load CA file `{path}`: {e}"))?;
    if der.is_empty() {
        return Err(format!("CA file `{path}` holds no PEM certificate"));
    }
    // `parse_x509` panics on malformed DER; a bad file must be a config error, not a crash.
    let cert = std::panic::catch_unwind(|| WrappedX509::new(der, parse_x509))
        .map_err(|_| format!("CA file `{path}` holds a malformed certificate"))?;
    Ok(Arc::from(vec![cert].into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(strip_prefix: bool, http2: bool) -> UpstreamOptions {
        UpstreamOptions {
            strip_prefix,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            ca_file: None,
            verify_cert: true,
            http2,
        }
    }

    fn upstream(url: &str, strip_prefix: bool) -> Upstream {
        Upstream::new(url, options(strip_prefix, false)).unwrap()
    }

    #[test]
    fn url_path_replaces_the_prefix() {
        let up = upstream("http://127.0.0.1:9000/mcp", false);
        assert_eq!(up.upstream_path("/mcp", "/mcp"), "/mcp");
        assert_eq!(up.upstream_path("/mcp", "/mcp/x?y=1"), "/mcp/x?y=1");
        assert_eq!(up.upstream_path("/mcp", "/mcp?y=1"), "/mcp?y=1");
    }

    #[test]
    fn strip_prefix_without_url_path() {
        let up = upstream("https://api.anthropic.com", true);
        assert_eq!(
            up.upstream_path("/anthropic", "/anthropic/v1/messages"),
            "/v1/messages"
        );
        assert_eq!(up.upstream_path("/anthropic", "/anthropic"), "/");
        assert_eq!(up.authority(), "api.anthropic.com");
    }

    #[test]
    fn the_endpoint_path_is_what_follows_the_base() {
        let stripped = upstream("https://api.anthropic.com", true);
        assert_eq!(
            stripped.endpoint_path("/anthropic", "/anthropic/v1/messages"),
            "/v1/messages"
        );
        assert_eq!(stripped.endpoint_path("/anthropic", "/anthropic"), "/");
        let kept = upstream("https://api.anthropic.com", false);
        assert_eq!(kept.endpoint_path("/", "/v1/messages"), "/v1/messages");
        let based = upstream("https://proxy.example/anthropic", false);
        assert_eq!(based.endpoint_path("/llm/", "/llm/v1/models"), "/v1/models");
    }

    #[test]
    fn no_strip_keeps_the_path() {
        let up = upstream("http://localhost:8000", false);
        assert_eq!(up.upstream_path("/api", "/api/v1"), "/api/v1");
    }

    #[tokio::test]
    async fn http2_is_offered_by_alpn_over_tls_and_spoken_outright_over_cleartext() {
        for (url, alpn) in [
            ("http://127.0.0.1:9000", ALPN::H2),
            ("https://127.0.0.1:9000", ALPN::H2H1),
        ] {
            let up = Upstream::new(url, options(false, true)).unwrap();
            let peer = up.peer().await.unwrap();
            assert_eq!(peer.options.alpn, alpn, "{url}");
        }
        let plain = upstream("http://127.0.0.1:9000", false)
            .peer()
            .await
            .unwrap();
        assert_eq!(plain.options.alpn.get_max_http_version(), 1);
    }

    #[test]
    fn rejects_other_schemes() {
        assert!(Upstream::new("ftp://x", options(false, false)).is_err());
    }
}

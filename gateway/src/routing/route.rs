//! The route table resolved at configuration load: matching and each route's plugin chain.

use std::sync::{Arc, OnceLock};

use http::Method;
use tollgate_plugin_api::{Plugin, RouteInfo};

use super::endpoints::LlmEndpoints;
use super::upstream::Upstream;
use crate::federation::Federation;
use crate::telemetry::metrics::RouteSeries;

/// One route, ready to serve: no lookups by name remain.
pub struct Route {
    /// Name, kind and provider, shared with every request's context.
    pub info: RouteInfo,
    /// Path prefix (segment-bounded match).
    pub path_prefix: String,
    /// Exact host (lowercase, without port), if the route is host-specific.
    pub host: Option<String>,
    /// Allowed methods; empty means any.
    pub methods: Vec<Method>,
    /// Where requests go.
    pub backend: Backend,
    /// `llm` routes: the provider endpoints forwarded (others are refused, 404).
    pub llm_endpoints: Option<LlmEndpoints>,
    /// The plugin chain, in order.
    pub chain: Vec<Arc<dyn Plugin>>,
    /// Request body limit in bytes.
    pub max_body: usize,
    /// Longest wait for a whole body the gateway reads (MCP and LLM routes).
    pub body_timeout: std::time::Duration,
    /// The route's metric series, looked up at its first exchange (one `Metrics` per process).
    pub series: OnceLock<RouteSeries>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.info.name)
            .field("kind", &self.info.kind)
            .field("path_prefix", &self.path_prefix)
            .field("backend", &self.backend)
            .field(
                "plugins",
                &self.chain.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where a route's requests go.
#[derive(Debug)]
pub enum Backend {
    /// One upstream, proxied.
    Proxy(Upstream),
    /// Several MCP servers behind one endpoint that the gateway serves itself.
    Federated(Arc<Federation>),
}

impl Route {
    /// The upstream of a proxied route; `None` for a federated one.
    pub fn upstream(&self) -> Option<&Upstream> {
        match &self.backend {
            Backend::Proxy(upstream) => Some(upstream),
            Backend::Federated(_) => None,
        }
    }

    /// Whether this route forwards a request for `path`: every path but, on `llm` routes, the
    /// provider endpoints it serves.
    pub fn serves_endpoint(&self, path: &str) -> bool {
        match (&self.llm_endpoints, self.upstream()) {
            (Some(endpoints), Some(upstream)) => {
                endpoints.allows(upstream.endpoint_path(&self.path_prefix, path))
            }
            _ => true,
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        let prefix = self.path_prefix.as_str();
        if !path.starts_with(prefix) {
            return false;
        }
        prefix.ends_with('/') || matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
    }
}

/// Routes ordered for matching: longest prefix first, host-specific before any-host.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

/// Why no route took a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No route's path and host match.
    NotFound,
    /// A route matches the path but not the method.
    MethodNotAllowed,
}

impl RouteTable {
    /// Builds the table; `routes` in configuration order.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        // Stable sort: among equal prefixes the configuration order decides.
        routes.sort_by(|a, b| {
            b.path_prefix
                .len()
                .cmp(&a.path_prefix.len())
                .then_with(|| b.host.is_some().cmp(&a.host.is_some()))
        });
        Self { routes }
    }

    /// The route for a request.
    pub fn find(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<&Arc<Route>, NoRoute> {
        let host = host.map(strip_port);
        let mut method_mismatch = false;
        for route in &self.routes {
            if !route.matches_path(path) {
                continue;
            }
            if let Some(want) = &route.host {
                if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                    continue;
                }
            }
            if !route.methods.is_empty() && !route.methods.contains(method) {
                method_mismatch = true;
                continue;
            }
            return Ok(route);
        }
        Err(if method_mismatch {
            NoRoute::MethodNotAllowed
        } else {
            NoRoute::NotFound
        })
    }

    /// All routes, in matching order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

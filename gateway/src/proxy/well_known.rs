//! RFC 9728 protected resource metadata: `GET /.well-known/oauth-protected-resource<prefix>`
//! answers with the document of the route at `<prefix>`, as provided by its authentication
//! plugin, so MCP clients (e.g. `mcp-remote`) can discover where to obtain a token.

use http::Method;
use pingora::http::RequestHeader;

use crate::config::RuntimeConfig;

/// The well-known path prefix of RFC 9728.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// The metadata document for this request, if it asks for one that a route provides.
pub fn protected_resource(
    config: &RuntimeConfig,
    req: &RequestHeader,
) -> Option<serde_json::Value> {
    if req.method != Method::GET {
        return None;
    }
    let rest = req.uri.path().strip_prefix(PROTECTED_RESOURCE_PATH)?;
    let resource_path = match rest {
        "" => "/",
        path if path.starts_with('/') => path,
        _ => return None,
    };
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let route = config
        .routes
        .find(host, &Method::POST, resource_path)
        .ok()?;
    if route.path_prefix.trim_end_matches('/') != resource_path.trim_end_matches('/') {
        return None;
    }
    route
        .chain
        .iter()
        .find_map(|plugin| plugin.protected_resource_metadata(&route.path_prefix, &req.headers))
}

//! OAuth discovery for MCP clients (RFC 9728): the `WWW-Authenticate` challenge of a 401 and the
//! protected resource metadata document it points to.
//!
//! The document is served whenever the plugin knows where clients obtain tokens: from
//! `resource_metadata.authorization_servers`, or else from the configured `issuer`. An MCP client
//! that gets a 401 without it has no standard way to find the authorization server, so an
//! operator who set an issuer should not have to repeat it to make login work.

use http::header::HeaderMap;
use http::HeaderValue;
use serde_json::{json, Value};

use tollgate_plugin_api::config::PluginConfigError;
use tollgate_plugin_api::{RequestCtx, RouteKind};

use super::config::ResourceMetadataConfig;

/// The well-known path prefix of RFC 9728 (the gateway serves the documents there).
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The protected resource metadata of one `jwt` instance, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata {
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    public_url: Option<String>,
}

impl ResourceMetadata {
    /// The metadata from the `resource_metadata` table and the accepted `issuers`: what is
    /// configured wins; the authorization server defaults to the first issuer that is an http(s)
    /// URL (RFC 8414 issuer identifiers are URLs: an opaque `iss` such as `my-idp` locates
    /// nothing). `None` when there is neither.
    pub fn resolve(
        config: Option<ResourceMetadataConfig>,
        issuers: &[String],
    ) -> Result<Option<Self>, PluginConfigError> {
        let default_server = issuers.iter().find(|i| is_http_url(i)).cloned();
        let Some(config) = config else {
            return Ok(default_server.map(|server| Self {
                authorization_servers: vec![server],
                scopes_supported: None,
                public_url: None,
            }));
        };
        let authorization_servers = match (config.authorization_servers, default_server) {
            (Some(servers), _) => servers,
            (None, Some(server)) => vec![server],
            (None, None) => {
                return Err(PluginConfigError::at(
                    "resource_metadata",
                    "set `authorization_servers` (there is no http(s) `issuer` to default to)",
                ))
            }
        };
        Ok(Some(Self {
            authorization_servers,
            scopes_supported: config.scopes_supported,
            public_url: config.public_url,
        }))
    }

    /// The document served at `/.well-known/oauth-protected-resource<path_prefix>`.
    pub fn document(&self, path_prefix: &str, headers: &HeaderMap) -> Value {
        let resource = format!(
            "{}{}",
            self.public_base(headers),
            path_prefix.trim_end_matches('/')
        );
        let mut doc = json!({
            "resource": resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if let Some(scopes) = &self.scopes_supported {
            doc["scopes_supported"] = json!(scopes);
        }
        doc
    }

    /// The gateway's public base URL: configured, or from the request's forwarding headers.
    fn public_base(&self, headers: &HeaderMap) -> String {
        if let Some(base) = self.public_url.as_deref() {
            return base.trim_end_matches('/').to_string();
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = header("x-forwarded-proto").unwrap_or("http");
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }

    /// The URL of this route's metadata document.
    fn url(&self, cx: &RequestCtx) -> String {
        let prefix = cx.route().path_prefix.trim_end_matches('/');
        format!("{}{WELL_KNOWN}{prefix}", self.public_base(cx.headers()))
    }
}

/// The `WWW-Authenticate` value of a 401: on an MCP route it names the metadata document (when
/// there is one), and `invalid_token` says a token was sent but refused (RFC 6750 §3.1).
pub fn challenge(
    cx: &RequestCtx,
    metadata: Option<&ResourceMetadata>,
    token_present: bool,
) -> Option<HeaderValue> {
    let mut value = String::from("Bearer realm=\"tollgate\"");
    if let Some(metadata) = metadata.filter(|_| cx.route().kind == RouteKind::Mcp) {
        value.push_str(&format!(", resource_metadata=\"{}\"", metadata.url(cx)));
    }
    if token_present {
        value.push_str(", error=\"invalid_token\"");
    }
    HeaderValue::from_str(&value).ok()
}

fn is_http_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::TestRequest;

    fn config(servers: Option<&[&str]>) -> ResourceMetadataConfig {
        ResourceMetadataConfig {
            authorization_servers: servers.map(|s| s.iter().map(|s| s.to_string()).collect()),
            scopes_supported: Some(vec!["mcp:tools".into()]),
            public_url: None,
        }
    }

    fn issuers(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn servers(meta: Option<ResourceMetadata>) -> Option<Vec<String>> {
        meta.map(|m| m.authorization_servers)
    }

    #[test]
    fn the_first_url_issuer_is_the_default_authorization_server() {
        let resolved = ResourceMetadata::resolve(
            None,
            &issuers(&["opaque-idp", "https://a.test", "https://b.test"]),
        );
        assert_eq!(
            servers(resolved.unwrap()),
            Some(vec!["https://a.test".to_string()])
        );
    }

    #[test]
    fn without_issuer_or_configuration_there_is_no_document() {
        assert_eq!(ResourceMetadata::resolve(None, &[]).unwrap(), None);
        assert_eq!(
            ResourceMetadata::resolve(None, &issuers(&["opaque-idp"])).unwrap(),
            None
        );
    }

    #[test]
    fn configured_servers_win_over_the_issuer() {
        let resolved = ResourceMetadata::resolve(
            Some(config(Some(&["https://login.test"]))),
            &issuers(&["https://idp.test"]),
        );
        assert_eq!(
            servers(resolved.unwrap()),
            Some(vec!["https://login.test".to_string()])
        );
    }

    #[test]
    fn a_table_without_servers_takes_the_issuer_or_is_refused() {
        let resolved =
            ResourceMetadata::resolve(Some(config(None)), &issuers(&["https://idp.test"]));
        let meta = resolved.unwrap().unwrap();
        assert_eq!(meta.authorization_servers, vec!["https://idp.test"]);
        assert_eq!(meta.scopes_supported, Some(vec!["mcp:tools".to_string()]));
        assert!(ResourceMetadata::resolve(Some(config(None)), &[]).is_err());
    }

    #[test]
    fn only_mcp_routes_name_the_document() {
        let meta = ResourceMetadata::resolve(None, &issuers(&["https://idp.test"])).unwrap();
        let mcp = TestRequest::mcp("/mcp")
            .route("mcp", "/mcp")
            .header("host", "gw.test")
            .build();
        let value = challenge(&mcp, meta.as_ref(), true).unwrap();
        assert_eq!(
            value,
            "Bearer realm=\"tollgate\", resource_metadata=\"http://gw.test/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\""
        );
        let http = TestRequest::http("/api").route("api", "/api").build();
        let value = challenge(&http, meta.as_ref(), false).unwrap();
        assert_eq!(value, "Bearer realm=\"tollgate\"");
    }
}

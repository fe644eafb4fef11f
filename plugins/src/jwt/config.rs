//! Configuration of the `jwt` plugin (see docs/auth.md).

use std::collections::BTreeMap;

use serde::Deserialize;

use tollgate_plugin_api::secret_source::SecretSource;
use tollgate_plugin_api::units::DurationStr;

/// `[plugin.<name>] type = "jwt"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `iss` values (a string or a list); not checked when absent.
    pub issuer: Option<OneOrMany>,
    /// Accepted `aud` values; not checked when absent.
    pub audiences: Option<Vec<String>>,
    /// JWKS: `{ file = "..." }`, `{ url = "...", refresh = "5m" }` or `{ inline = "{...}" }`.
    pub jwks: Option<JwksConfig>,
    /// A PEM public key: `{ file = "..." }`, `{ env = "..." }`.
    pub public_key: Option<SecretSource>,
    /// An HMAC secret for HS256/384/512: `{ env = "..." }` or `{ file = "..." }`.
    pub secret: Option<SecretSource>,
    /// Where to look for the token, in order: `authorization` (Bearer) and/or `x-api-key`.
    #[serde(default = "default_token_from")]
    pub token_from: Vec<String>,
    /// `strict` (a valid token is required) or `optional` (validated when present).
    #[serde(default)]
    pub mode: Mode,
    /// Clock skew allowed for `exp` and `nbf` (default 60s).
    pub leeway: Option<DurationStr>,
    /// Claims that must be present (besides `exp`, always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// The claim used as the caller's subject (default `sub`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claims copied to upstream request headers: `{ sub = "x-user-id" }`.
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Send the token to the upstream (default: removed).
    #[serde(default)]
    pub forward_token: bool,
    /// Longest accepted token in bytes (default 8192).
    pub max_token_bytes: Option<usize>,
    /// RFC 9728 protected resource metadata, for MCP clients to discover where to log in;
    /// served by default, with the `issuer` as authorization server, when an issuer is set.
    pub resource_metadata: Option<ResourceMetadataConfig>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `jwks = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// A JWKS file read at load.
    pub file: Option<String>,
    /// A JWKS URL fetched in the background.
    pub url: Option<String>,
    /// A JWKS document inline.
    pub inline: Option<String>,
    /// Refresh interval for `url` (default 5m).
    pub refresh: Option<DurationStr>,
    /// Shortest interval between fetches triggered by unknown `kid`s (default 30s).
    pub min_refetch: Option<DurationStr>,
}

/// Token requirement.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A valid token is required.
    #[default]
    Strict,
    /// A token is validated when present; requests without one pass anonymously.
    Optional,
}

/// `resource_metadata = { ... }` (RFC 9728).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMetadataConfig {
    /// Authorization servers (issuer URLs) where clients obtain tokens (default: the first
    /// `issuer` that is an http(s) URL).
    pub authorization_servers: Option<Vec<String>>,
    /// Scopes clients may request.
    pub scopes_supported: Option<Vec<String>>,
    /// Public base URL of the gateway (`https://gw.example.com`); default: from the request.
    pub public_url: Option<String>,
}

fn default_token_from() -> Vec<String> {
    vec!["authorization".into()]
}

fn default_subject_claim() -> String {
    "sub".into()
}

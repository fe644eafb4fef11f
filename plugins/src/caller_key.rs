//! Whose bucket or budget a request draws from: `jwt.<claim>` (the caller's identity, from `jwt`
//! or `api-key`), `header:<name>`, `ip` or `route`. One syntax for every plugin that counts per
//! caller.

use http::HeaderName;
use tollgate_plugin_api::RequestCtx;

/// Where a plugin finds the caller's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A claim of the caller's identity.
    Claim(String),
    /// A request header.
    Header(HeaderName),
    /// The client's address.
    Ip,
    /// The route: one key for all its callers.
    Route,
}

impl KeySource {
    /// Reads `jwt.<claim>`, `header:<name>`, `ip` or `route`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(claim) = text.strip_prefix("jwt.") {
            return Ok(KeySource::Claim(claim.to_string()));
        }
        if let Some(header) = text.strip_prefix("header:") {
            return HeaderName::from_bytes(header.trim().as_bytes())
                .map(KeySource::Header)
                .map_err(|_| format!("`{header}` is not a header name"));
        }
        match text {
            "ip" => Ok(KeySource::Ip),
            "route" => Ok(KeySource::Route),
            _ => Err(format!(
                "unknown key `{text}` (use jwt.<claim>, header:<name>, ip or route)"
            )),
        }
    }

    /// The caller's key for a request; `None` when it has not the claim or header (an array
    /// claim is joined with commas).
    pub fn value(&self, cx: &RequestCtx) -> Option<String> {
        match self {
            KeySource::Claim(claim) => {
                cx.identity
                    .as_ref()
                    .and_then(|i| match i.claims.get(claim) {
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(serde_json::Value::Array(items)) => Some(
                            items
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                        ),
                        Some(other) => Some(other.to_string()),
                        None => (claim == "sub").then(|| i.subject.clone()),
                    })
            }
            KeySource::Header(name) => cx
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            KeySource::Ip => cx.client_addr().map(|a| a.ip().to_string()),
            KeySource::Route => Some(cx.route().name.to_string()),
        }
    }
}

//! The 2026-07-28 routing headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`): checked
//! against the body before any policy reads it, and written on requests the gateway makes.
//!
//! Policies decide on the body; an upstream may route on the headers. A request whose headers
//! say something else than its body would be judged on one and served on the other, so it is
//! refused (`-32020`, HTTP 400) before any plugin runs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderMap;
use serde_json::Value;

/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method`.
pub const METHOD: &str = "mcp-method";
/// `Mcp-Name`.
pub const NAME: &str = "mcp-name";
/// `Mcp-Session-Id`.
pub const SESSION_ID: &str = "mcp-session-id";
/// The JSON-RPC error code of a header that contradicts the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The one stateless protocol version served.
pub const MODERN_VERSION: &str = "2026-07-28";
/// `_meta` key of the protocol version in a 2026-07-28 request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities in a 2026-07-28 request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version in a 2026-07-28 request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// The body parameter a method's `Mcp-Name` mirrors.
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Whether `headers` ask for the stateless era.
pub fn is_modern(headers: &HeaderMap) -> bool {
    headers
        .get(PROTOCOL_VERSION)
        .is_some_and(|v| v.as_bytes() == MODERN_VERSION.as_bytes())
}

/// Why the routing headers contradict the body, if they do.
pub fn mismatch(headers: &HeaderMap, body: &Value) -> Option<&'static str> {
    let Some(message) = body.as_object() else {
        // Batches belong to the handshake era, which has no routing headers.
        return headers
            .contains_key(METHOD)
            .then_some("Mcp-Method header on a batch request");
    };
    let method = message.get("method").and_then(Value::as_str)?;
    let modern = is_modern(headers);
    match headers.get(METHOD).map(|v| v.to_str()) {
        Some(Ok(value)) if value == method => {}
        Some(_) => return Some("Mcp-Method header does not match the body's method"),
        None if modern => return Some("Mcp-Method header is missing"),
        None => {}
    }
    let body_version = message
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL_VERSION));
    if let Some(body_version) = body_version {
        let header = headers
            .get(PROTOCOL_VERSION)
            .map(http::HeaderValue::as_bytes);
        if header != body_version.as_str().map(str::as_bytes) {
            return Some("MCP-Protocol-Version header does not match the body's _meta");
        }
    }
    let key = name_param(method)?;
    let body_name = message
        .get("params")
        .and_then(|p| p.get(key))
        .and_then(Value::as_str)?;
    match headers.get(NAME).map(|v| v.to_str()) {
        Some(Ok(value)) if decode_value(value).as_deref() == Some(body_name) => None,
        Some(_) => Some("Mcp-Name header does not match the body"),
        None if modern => Some("Mcp-Name header is missing"),
        None => None,
    }
}

/// `value` as a header value: verbatim when it is printable ASCII without edge spaces,
/// else wrapped as `=?base64?...?=`.
pub fn encode_value(value: &str) -> String {
    let printable = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if printable && value.trim() == value && !is_sentinel(value) {
        value.to_string()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value))
    }
}

/// The value a header carries (the inverse of [`encode_value`]); `None` when its base64 is bad.
pub fn decode_value(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !is_sentinel(value) {
        return Some(value.into());
    }
    let payload = &value["=?base64?".len()..value.len() - 2];
    let bytes = STANDARD.decode(payload).ok()?;
    // Only the canonical encoding matches, as the encoder writes it.
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok().map(Into::into)
}

fn is_sentinel(value: &str) -> bool {
    value.len() >= 12 && value.starts_with("=?base64?") && value.ends_with("?=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn call(name: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "_meta": {META_PROTOCOL_VERSION: MODERN_VERSION}}})
    }

    #[test]
    fn matching_headers_pass() {
        let h = headers(&[
            (PROTOCOL_VERSION, MODERN_VERSION),
            (METHOD, "tools/call"),
            (NAME, "add"),
        ]);
        assert_eq!(mismatch(&h, &call("add")), None);
        // A legacy request without routing headers passes.
        let legacy_call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "add"}});
        assert_eq!(mismatch(&HeaderMap::new(), &legacy_call), None);
    }

    #[test]
    fn a_header_saying_something_else_is_a_mismatch() {
        let modern = |method: &str, name: &str| {
            headers(&[
                (PROTOCOL_VERSION, MODERN_VERSION),
                (METHOD, method),
                (NAME, name),
            ])
        };
        assert!(mismatch(&modern("tools/call", "other"), &call("add")).is_some());
        assert!(mismatch(&modern("tools/list", "add"), &call("add")).is_some());
        let no_name = headers(&[(PROTOCOL_VERSION, MODERN_VERSION), (METHOD, "tools/call")]);
        assert!(mismatch(&no_name, &call("add")).is_some());
        let no_method = headers(&[(PROTOCOL_VERSION, MODERN_VERSION)]);
        assert!(mismatch(&no_method, &call("add")).is_some());
        // The body's version needs the header that says so.
        assert!(mismatch(&HeaderMap::new(), &call("add")).is_some());
        // Even without the version header, a header that is there must agree.
        let legacy_call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "add"}});
        assert!(mismatch(&headers(&[(NAME, "x")]), &legacy_call).is_some());
    }

    #[test]
    fn names_that_are_not_plain_ascii_are_base64_wrapped() {
        for name in ["add", "héllo", " edge", "=?base64?x?="] {
            let encoded = encode_value(name);
            assert!(encoded.is_ascii());
            assert_eq!(decode_value(&encoded).as_deref(), Some(name));
        }
        assert_eq!(encode_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(decode_value("=?base64?!!!?="), None);
    }
}

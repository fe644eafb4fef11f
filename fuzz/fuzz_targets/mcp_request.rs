//! What the gateway reads of a POSTed MCP body: the JSON-RPC reader (`protocol::mcp::parse`), the
//! check of the `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers against the body
//! (`protocol::mcp_headers::mismatch`), the `Mcp-Param-*` check of stdio servers and the list
//! filters' refusal of ambiguous ids. Never panics; what it reads agrees with the body; headers
//! a conforming client derives from the body pass; a header value round-trips.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::internals::{mcp, mcp_headers, mcp_param_headers};
use tollgate_plugin_api::McpMethod;
use tollgate_plugins::list_filter::ambiguous_lists;

/// The input is written as an HTTP request's end: header lines (`name: value`, ending at `\n`),
/// a blank line, the body. Header names other than `NAMES` are taken modulo their first byte.
struct Input<'a> {
    headers: Vec<(&'static str, &'a [u8])>,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn read(data: &'a [u8]) -> Self {
        let mut headers = Vec::new();
        let mut rest = data;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            let line = &rest[..at];
            rest = &rest[at + 1..];
            if line.is_empty() {
                return Self {
                    headers,
                    body: rest,
                };
            }
            let (name, value) = match line.iter().position(|b| *b == b':') {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &b""[..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let name = NAMES
                .iter()
                .find(|known| known.as_bytes().eq_ignore_ascii_case(name))
                .copied()
                .unwrap_or(NAMES[usize::from(name.first().copied().unwrap_or(0)) % NAMES.len()]);
            headers.push((name, value));
        }
        Self {
            headers: Vec::new(),
            body: data,
        }
    }
}

const NAMES: [&str; 6] = [
    mcp_headers::PROTOCOL_VERSION,
    mcp_headers::METHOD,
    mcp_headers::NAME,
    mcp_headers::SESSION_ID,
    "mcp-param-region",
    "mcp-param-count",
];

/// A tool schema with `x-mcp-header` annotations, as a stdio server might list.
fn schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "deep": {"type": "object", "properties": {"flag": {"type": "boolean", "x-mcp-header": "Flag"}}}
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let input = Input::read(data);
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        round_trip(&String::from_utf8_lossy(value));
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }

    let Ok((json, request)) = mcp::parse(input.body) else {
        return;
    };
    assert_eq!(mcp::describe(&json).as_ref(), Ok(&request));
    assert!(!request.messages.is_empty());
    assert_eq!(request.batch, json.is_array());
    let messages: Vec<&Value> = match &json {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    assert_eq!(messages.len(), request.messages.len());
    for (value, message) in messages.iter().zip(&request.messages) {
        assert_eq!(message.id.as_ref(), value.get("id"));
        let method = value.get("method").and_then(Value::as_str);
        assert_eq!(message.method.as_ref().map(McpMethod::as_str), method);
        if let Some(method) = &message.method {
            assert_eq!(McpMethod::parse(method.as_str()), *method);
            let target = method
                .target_param()
                .and_then(|key| value.get("params")?.get(key)?.as_str());
            assert_eq!(message.target.as_deref(), target);
        }
    }

    let _ = mcp_headers::mismatch(&headers, &json);
    for message in &messages {
        if let Some(name) = message.pointer("/params/name").and_then(Value::as_str) {
            round_trip(name);
        }
    }
    let _ = ambiguous_lists(&request);
    if let Some(annotated) = mcp_param_headers::annotations(&schema()) {
        let arguments = json.get("params").and_then(|p| p.get("arguments"));
        let _ = mcp_param_headers::check(&annotated, arguments.unwrap_or(&Value::Null), &headers);
    }
    // Whatever the schema a server lists, reading its annotations ends.
    if let Some(params) = json.get("params") {
        let _ = mcp_param_headers::annotations(params);
    }

    // The headers a conforming client sends with this body agree with it.
    if let Some(derived) = derived_headers(&json) {
        assert_eq!(
            mcp_headers::mismatch(&derived, &json),
            None,
            "headers {derived:?} derived from the body"
        );
    }
});

/// A header value: printable as sent, or base64-wrapped, and read back as it was.
fn round_trip(text: &str) {
    let encoded = mcp_headers::encode_value(text);
    assert!(
        HeaderValue::from_str(&encoded).is_ok(),
        "{encoded:?} is no header value"
    );
    assert_eq!(
        mcp_headers::decode_value(&encoded).as_deref(),
        Some(text),
        "{encoded:?}"
    );
}

/// The routing headers a 2026-07-28 client sends with `body` (a single request): `None` when
/// the body's method or version cannot be a header value (no client can send it then).
fn derived_headers(body: &Value) -> Option<HeaderMap> {
    let message = body.as_object()?;
    let method = message.get("method")?.as_str()?;
    let mut headers = HeaderMap::new();
    headers.insert(mcp_headers::METHOD, text_header(method)?);
    let params = message.get("params");
    if let Some(version) = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(mcp_headers::META_PROTOCOL_VERSION))
    {
        headers.insert(
            mcp_headers::PROTOCOL_VERSION,
            text_header(version.as_str()?)?,
        );
    }
    if let Some(key) = mcp_headers::name_param(method) {
        if let Some(name) = params.and_then(|p| p.get(key)).and_then(Value::as_str) {
            let value = HeaderValue::from_str(&mcp_headers::encode_value(name)).ok()?;
            headers.insert(mcp_headers::NAME, value);
        }
    }
    Some(headers)
}

/// `text` as a header value that reads back as `text`.
fn text_header(text: &str) -> Option<HeaderValue> {
    let value = HeaderValue::from_str(text).ok()?;
    (value.to_str().ok()? == text).then_some(value)
}

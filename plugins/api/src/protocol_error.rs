//! Errors in the caller's protocol: JSON-RPC error objects on MCP routes, Anthropic error JSON on
//! LLM routes, `{"error":{...}}` elsewhere. The gateway renders its own refusals and plugins'
//! [`Rejection`]s with [`render`]; a plugin that answers in place of the upstream (an error in a
//! filtered answer, an error event that ends a stream) builds its body with the same functions,
//! so callers see one vocabulary whoever refused.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::context::RouteKind;
use crate::verdict::{RejectKind, Rejection};

/// The `x-tollgate-reason` header name, carried by every refusal.
pub const REASON_HEADER: &str = "x-tollgate-reason";

/// Which error vocabulary a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// JSON-RPC error object.
    JsonRpc,
    /// Anthropic `{"type":"error","error":{...}}`.
    Anthropic,
    /// `{"error":{"code":...,"message":...}}`.
    Plain,
}

impl ErrorStyle {
    /// The style of a route kind.
    pub fn for_route(kind: RouteKind) -> Self {
        match kind {
            RouteKind::Mcp => ErrorStyle::JsonRpc,
            RouteKind::Llm => ErrorStyle::Anthropic,
            RouteKind::Http => ErrorStyle::Plain,
        }
    }
}

/// A rendered error response.
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers besides content-type and content-length.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// JSON body.
    pub body: Bytes,
}

/// Renders `rejection` in `style`. `jsonrpc_id` is the id of the request being answered.
pub fn render(
    style: ErrorStyle,
    rejection: &Rejection,
    jsonrpc_id: Option<&Value>,
) -> ErrorResponse {
    let (status, body) = match style {
        ErrorStyle::JsonRpc => {
            let code = rejection
                .jsonrpc_code
                .unwrap_or_else(|| default_jsonrpc_code(rejection.kind));
            let status = if rejection.in_band {
                StatusCode::OK
            } else {
                rejection.status
            };
            let id = jsonrpc_id.unwrap_or(&Value::Null);
            let body = jsonrpc_error(id, code, &rejection.message, &rejection.reason);
            (status, body)
        }
        ErrorStyle::Anthropic => {
            let kind = anthropic_error_type(rejection.kind, rejection.status);
            (rejection.status, anthropic_error(kind, &rejection.message))
        }
        ErrorStyle::Plain => (
            rejection.status,
            plain_error(&rejection.reason, &rejection.message),
        ),
    };
    let mut headers = rejection.headers.clone();
    if let Ok(reason) = HeaderValue::from_str(&rejection.reason) {
        headers.push((HeaderName::from_static(REASON_HEADER), reason));
    }
    ErrorResponse {
        status,
        headers,
        body: Bytes::from(body),
    }
}

/// JSON-RPC codes by kind: -32001 permission denied, -32002 authentication required,
/// -32003 rate limited, -32600 invalid request, -32603 gateway or upstream failure.
pub const fn default_jsonrpc_code(kind: RejectKind) -> i64 {
    match kind {
        RejectKind::Permission => -32001,
        RejectKind::Authentication => -32002,
        RejectKind::RateLimit => -32003,
        RejectKind::InvalidRequest => -32600,
        RejectKind::Api => -32603,
    }
}

/// The Anthropic error `type` for a refusal of `kind` answered with `status`.
pub fn anthropic_error_type(kind: RejectKind, status: StatusCode) -> &'static str {
    match (kind, status.as_u16()) {
        (_, 404) => "not_found_error",
        (_, 413) => "request_too_large",
        (_, 504) => "timeout_error",
        (RejectKind::Authentication, _) => "authentication_error",
        (RejectKind::Permission, _) => "permission_error",
        (RejectKind::RateLimit, _) => "rate_limit_error",
        (RejectKind::InvalidRequest, _) => "invalid_request_error",
        (RejectKind::Api, _) => "api_error",
    }
}

// Structs rather than `json!`: their fields serialize in the order written, the order of the
// protocols' own documents (`jsonrpc` first, Anthropic's `type` first).
#[derive(Serialize)]
struct JsonRpcError<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    error: JsonRpcErrorObject<'a>,
}

#[derive(Serialize)]
struct JsonRpcErrorObject<'a> {
    code: i64,
    message: &'a str,
    data: ReasonData<'a>,
}

#[derive(Serialize)]
struct ReasonData<'a> {
    reason: &'a str,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: TypedMessage<'a>,
}

#[derive(Serialize)]
struct TypedMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct PlainError<'a> {
    error: CodedMessage<'a>,
}

#[derive(Serialize)]
struct CodedMessage<'a> {
    code: &'a str,
    message: &'a str,
}

fn to_json(value: &impl Serialize) -> String {
    // Serializing these structs of strings, integers and an already valid `Value` cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON-RPC error response to the request `id`:
/// `{"jsonrpc":"2.0","id":..,"error":{"code":..,"message":..,"data":{"reason":..}}}`.
pub fn jsonrpc_error(id: &Value, code: i64, message: &str, reason: &str) -> String {
    to_json(&JsonRpcError {
        jsonrpc: "2.0",
        id,
        error: JsonRpcErrorObject {
            code,
            message,
            data: ReasonData { reason },
        },
    })
}

/// An Anthropic error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn anthropic_error(error_type: &str, message: &str) -> String {
    to_json(&AnthropicError {
        kind: "error",
        error: TypedMessage {
            kind: error_type,
            message,
        },
    })
}

/// An Anthropic `error` event that ends a stream: `event: error`, the [`anthropic_error`] body.
pub fn anthropic_error_event(error_type: &str, message: &str) -> String {
    format!(
        "event: error\ndata: {}\n\n",
        anthropic_error(error_type, message)
    )
}

/// A plain JSON error body: `{"error":{"code":..,"message":..}}`, `code` being the reason.
pub fn plain_error(reason: &str, message: &str) -> String {
    to_json(&PlainError {
        error: CodedMessage {
            code: reason,
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jsonrpc_in_band_denial() {
        let r = Rejection::new(
            RejectKind::Permission,
            "rbac.denied",
            "tool `x` is not allowed",
        )
        .in_band();
        let out = render(ErrorStyle::JsonRpc, &r, Some(&json!(7)));
        assert_eq!(out.status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32001);
        assert_eq!(body["error"]["data"]["reason"], "rbac.denied");
        assert!(out
            .headers
            .iter()
            .any(|(n, v)| n == REASON_HEADER && v == "rbac.denied"));
    }

    #[test]
    fn anthropic_shapes() {
        let r = Rejection::new(RejectKind::RateLimit, "ratelimit.exceeded", "slow down");
        let out = render(ErrorStyle::Anthropic, &r, None);
        assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            out.body,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
        );
    }

    #[test]
    fn bodies_keep_the_protocols_key_order_and_escape_text() {
        assert_eq!(
            jsonrpc_error(&json!("a"), -32603, "say \"no\"", "r.x"),
            r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32603,"message":"say \"no\"","data":{"reason":"r.x"}}}"#
        );
        assert_eq!(
            plain_error("r.x", "no"),
            r#"{"error":{"code":"r.x","message":"no"}}"#
        );
        assert_eq!(
            anthropic_error_event("api_error", "stop"),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"stop\"}}\n\n"
        );
    }
}

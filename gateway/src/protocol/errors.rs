//! Error responses in the caller's protocol: JSON-RPC on MCP routes, Anthropic error
//! JSON on Anthropic routes, `{"error":{...}}` elsewhere. Every one carries `x-tollgate-reason`.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tollgate_plugin_api::{RejectKind, Rejection, RouteKind};

/// The `x-tollgate-reason` header name.
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
            let body = json!({
                "jsonrpc": "2.0",
                "id": jsonrpc_id.cloned().unwrap_or(Value::Null),
                "error": { "code": code, "message": rejection.message, "data": { "reason": rejection.reason } },
            });
            (status, body)
        }
        ErrorStyle::Anthropic => {
            let body = json!({
                "type": "error",
                "error": { "type": anthropic_type(rejection.kind, rejection.status), "message": rejection.message },
            });
            (rejection.status, body)
        }
        ErrorStyle::Plain => {
            let body =
                json!({ "error": { "code": rejection.reason, "message": rejection.message } });
            (rejection.status, body)
        }
    };
    let mut headers = rejection.headers.clone();
    if let Ok(reason) = HeaderValue::from_str(&rejection.reason) {
        headers.push((HeaderName::from_static(REASON_HEADER), reason));
    }
    ErrorResponse {
        status,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// JSON-RPC codes by kind: -32001 permission denied, -32002 authentication required,
/// -32003 rate limited, -32600 invalid request, -32603 gateway or upstream failure.
pub fn default_jsonrpc_code(kind: RejectKind) -> i64 {
    match kind {
        RejectKind::Permission => -32001,
        RejectKind::Authentication => -32002,
        RejectKind::RateLimit => -32003,
        RejectKind::InvalidRequest => -32600,
        RejectKind::Api => -32603,
    }
}

fn anthropic_type(kind: RejectKind, status: StatusCode) -> &'static str {
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

#[cfg(test)]
mod tests {
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
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
}

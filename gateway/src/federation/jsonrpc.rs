//! JSON-RPC messages the federation writes and reads.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// JSON-RPC: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid params (an unknown tool, prompt or resource, a cursor the gateway never gave).
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: internal error; the gateway's code for a server that failed a call.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP: a resource that no server has.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// MCP 2026-07-28: the protocol version is not served.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A request as JSON text.
pub fn request(id: &Value, method: &str, params: &Value) -> Bytes {
    let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    Bytes::from(message.to_string())
}

/// A notification as JSON text.
pub fn notification(method: &str, params: Option<&Value>) -> Bytes {
    let message = match params {
        Some(params) => json!({"jsonrpc": "2.0", "method": method, "params": params}),
        None => json!({"jsonrpc": "2.0", "method": method}),
    };
    Bytes::from(message.to_string())
}

/// A successful response (`result` moved in: `json!` would copy it, a whole merged list).
pub fn result(id: &Value, result: Value) -> Value {
    let mut message = Map::with_capacity(3);
    message.insert("jsonrpc".into(), "2.0".into());
    message.insert("id".into(), id.clone());
    message.insert("result".into(), result);
    Value::Object(message)
}

/// An error response; `data` carries the gateway's reason (and the server it is about).
pub fn error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.into());
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// Whether `message` is a response (it has a `result` or an `error`, and no `method`).
pub fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// Whether `message` is a request (a `method` and an `id`).
pub fn is_request(message: &Value) -> bool {
    message.get("method").is_some() && message.get("id").is_some()
}

/// A request id no other request of this process has: for the gateway's own requests, and for a
/// client's request on a server session that other clients share.
pub fn fresh_id() -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Value::String(format!("tollgate-{n}"))
}

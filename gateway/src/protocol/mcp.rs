//! MCP JSON-RPC parsing: the facts plugins need about a request body.

use serde_json::Value;
use tollgate_plugin_api::{McpMessage, McpMethod, McpRequest};

/// Why a body is not acceptable JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonRpcError {
    /// Not JSON at all (JSON-RPC -32700).
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC message (JSON-RPC -32600).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl JsonRpcError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            JsonRpcError::Parse(_) => -32700,
            JsonRpcError::Invalid(_) => -32600,
        }
    }
}

/// Parses `body` as a JSON-RPC message or batch.
pub fn parse(body: &[u8]) -> Result<(Value, McpRequest), JsonRpcError> {
    let json =
        super::strict_json::from_slice(body).map_err(|e| JsonRpcError::Parse(e.to_string()))?;
    let request = describe(&json)?;
    Ok((json, request))
}

/// Describes an already parsed JSON-RPC message or batch.
pub fn describe(json: &Value) -> Result<McpRequest, JsonRpcError> {
    match json {
        Value::Array(items) if items.is_empty() => Err(JsonRpcError::Invalid("empty batch".into())),
        Value::Array(items) => Ok(McpRequest {
            batch: true,
            messages: items.iter().map(message).collect::<Result<_, _>>()?,
        }),
        other => Ok(McpRequest {
            batch: false,
            messages: vec![message(other)?],
        }),
    }
}

fn message(value: &Value) -> Result<McpMessage, JsonRpcError> {
    let object = value
        .as_object()
        .ok_or_else(|| JsonRpcError::Invalid("a message must be a JSON object".into()))?;
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(JsonRpcError::Invalid("`jsonrpc` must be \"2.0\"".into()));
    }
    let id = object.get("id").cloned();
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number() || id.is_null()) {
            return Err(JsonRpcError::Invalid(
                "`id` must be a string or a number".into(),
            ));
        }
    }
    let method = match object.get("method") {
        Some(Value::String(m)) => Some(McpMethod::parse(m)),
        Some(_) => return Err(JsonRpcError::Invalid("`method` must be a string".into())),
        None if object.contains_key("result") || object.contains_key("error") => None,
        None => return Err(JsonRpcError::Invalid("a request needs a `method`".into())),
    };
    let params = object.get("params");
    let target = method
        .as_ref()
        .and_then(McpMethod::target_param)
        .and_then(|key| params?.get(key))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(McpMessage { id, method, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call() {
        let (_, req) = parse(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{}}}"#).unwrap();
        assert!(!req.batch);
        let msg = req.first().unwrap();
        assert_eq!(msg.method, Some(McpMethod::ToolsCall));
        assert_eq!(msg.target.as_deref(), Some("add"));
        assert_eq!(msg.id, Some(serde_json::json!(3)));
    }

    #[test]
    fn batch_and_notification() {
        let (_, req) = parse(br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"a","method":"tools/list"}]"#).unwrap();
        assert!(req.batch);
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].id, None);
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(b"{not json").unwrap_err().code(), -32700);
        assert_eq!(parse(b"{\"id\":1}").unwrap_err().code(), -32600);
        assert_eq!(parse(b"[]").unwrap_err().code(), -32600);
        assert_eq!(parse(b"42").unwrap_err().code(), -32600);
    }
}

//! Who is asking: a 2025-era client with its (sealed) session, or a 2026-era client with the
//! `_meta` envelope of its request.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::seal::SessionState;
use crate::protocol::mcp_headers::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION,
};

/// The client of one request.
#[derive(Debug, Clone)]
pub enum Client {
    /// Handshake era: its session id and what it seals.
    Legacy {
        /// The session id as the client sends it.
        id: Arc<str>,
        /// What the id seals.
        state: SessionState,
    },
    /// 2026-07-28: the request's `_meta` envelope.
    Modern {
        /// `params._meta` of the request (protocol version, capabilities, client info).
        meta: Map<String, Value>,
        /// Its `Mcp-Param-*` headers, passed on to a 2026-07-28 server.
        params: http::HeaderMap,
    },
}

impl Client {
    /// Whether the client speaks 2026-07-28.
    pub fn is_modern(&self) -> bool {
        matches!(self, Client::Modern { .. })
    }

    /// The `Mcp-Param-*` headers of a 2026-07-28 client's request, if it sent any.
    pub fn param_headers(&self) -> Option<&http::HeaderMap> {
        match self {
            Client::Modern { params, .. } => Some(params),
            _ => None,
        }
    }

    /// The `_meta` envelope a 2026-07-28 server needs for this client's request.
    pub fn modern_envelope(&self) -> Map<String, Value> {
        match self {
            Client::Modern { meta, .. } => meta.clone(),
            Client::Legacy { state, .. } => {
                let mut meta = Map::new();
                meta.insert(META_PROTOCOL_VERSION.into(), MODERN_VERSION.into());
                meta.insert(META_CLIENT_CAPABILITIES.into(), state.capabilities.clone());
                if let Some(info) = &state.client_info {
                    meta.insert(META_CLIENT_INFO.into(), info.clone());
                }
                meta
            }
        }
    }
}

/// Fits `message` (a request or notification) for a 2026-07-28 server: the envelope goes into
/// `params._meta`, next to whatever else the client put there.
pub fn put_envelope(message: &mut Value, envelope: Map<String, Value>) {
    let Some(object) = message.as_object_mut() else {
        return;
    };
    let params = object
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    if let Some(params) = params.as_object_mut() {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.extend(envelope);
        }
    }
}

/// Fits `message` for a handshake-era server: the 2026-07-28 envelope keys are removed (the
/// session carries what they say).
pub fn drop_envelope(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let empty = match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
            meta.is_empty()
        }
        None => false,
    };
    if empty {
        params.remove("_meta");
    }
}

/// Fits a server's result for a handshake-era client: the 2026-07-28 result fields go.
pub fn legacy_result(result: &mut Value) {
    if let Some(object) = result.as_object_mut() {
        if object.get("resultType").and_then(Value::as_str) == Some("complete") {
            object.remove("resultType");
        }
        object.remove("ttlMs");
        object.remove("cacheScope");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_goes_in_and_out_of_meta() {
        let mut message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                 "params": {"_meta": {"progressToken": 7}}});
        let client = Client::Legacy {
            id: Arc::from("x"),
            state: SessionState {
                protocol_version: "2025-11-25".into(),
                capabilities: json!({"sampling": {}}),
                client_info: None,
                servers: vec![],
            },
        };
        put_envelope(&mut message, client.modern_envelope());
        let meta = &message["params"]["_meta"];
        assert_eq!(meta["progressToken"], 7);
        assert_eq!(meta[META_PROTOCOL_VERSION], MODERN_VERSION);
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({"sampling": {}}));
        drop_envelope(&mut message);
        assert_eq!(message["params"]["_meta"], json!({"progressToken": 7}));
        let mut bare = json!({"method": "ping", "params": {"_meta": {META_PROTOCOL_VERSION: "x"}}});
        drop_envelope(&mut bare);
        assert_eq!(bare, json!({"method": "ping", "params": {}}));
    }
}

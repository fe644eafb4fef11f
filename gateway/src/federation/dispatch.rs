//! The entry of every client request: who the client is, then what the message asks for.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::answer::Answer;
use super::client::Client;
use super::jsonrpc::{self, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::{handshake, listen, lists, relay, Federation, Inbound, SessionSealer};
use crate::protocol::mcp_headers::{
    self, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, MODERN_VERSION,
};

/// Answers `request`.
pub(super) async fn serve(federation: &Arc<Federation>, request: Inbound<'_>) -> Answer {
    match *request.method {
        Method::POST => post(federation, request).await,
        Method::GET => listen::open(federation, request.headers).await,
        Method::DELETE => handshake::end(federation, request.headers).await,
        _ => Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &Value::Null,
            INVALID_REQUEST,
            "MCP takes POST, GET and DELETE",
            "request.method_not_allowed",
        ),
    }
}

async fn post(federation: &Arc<Federation>, request: Inbound<'_>) -> Answer {
    let Some(message) = request.body.filter(Value::is_object) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            INVALID_REQUEST,
            "a federated MCP route takes one JSON-RPC message per POST (no batches)",
            "request.invalid_jsonrpc",
        );
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    if method.as_deref() == Some("initialize") && !is_modern_request(request.headers, &message) {
        return handshake::initialize(federation, &message).await;
    }
    let client = match client_of(federation, request.headers, &message) {
        Ok(client) => client,
        Err(answer) => return answer,
    };
    if let (true, Some(removed)) = (client.is_modern(), method.as_deref()) {
        if REMOVED_IN_MODERN.contains(&removed) {
            return Answer::error(
                StatusCode::NOT_FOUND,
                &id,
                METHOD_NOT_FOUND,
                &format!("Method not found: {removed} is not part of protocol {MODERN_VERSION}"),
                "mcp.method_not_found",
            );
        }
    }
    let traceparent = request.traceparent.as_ref();
    let Some(method) = method else {
        // A response to a request a server made through the gateway.
        return relay::answer_to_server(federation, &client, message).await;
    };
    if !jsonrpc::is_request(&message) {
        return relay::notification(federation, &client, &method, message).await;
    }
    match method.as_str() {
        "server/discover" => handshake::discover(federation, &id).await,
        "ping" => Answer::json(&jsonrpc::result(&id, json!({}))),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            lists::merged(federation, &client, &id, &method, &message).await
        }
        "tools/call" | "prompts/get" => {
            relay::by_name(federation, &client, &id, message, traceparent).await
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            relay::by_uri(federation, &client, &id, message, traceparent).await
        }
        "completion/complete" => {
            relay::completion(federation, &client, &id, message, traceparent).await
        }
        "logging/setLevel" => relay::set_level(federation, &client, &id, message).await,
        "subscriptions/listen" => listen::subscribe(federation, &client, &id, &message).await,
        other => {
            let status = if client.is_modern() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            Answer::error(
                status,
                &id,
                METHOD_NOT_FOUND,
                &format!("Method not found: {other}"),
                "mcp.method_not_found",
            )
        }
    }
}

/// The 2025-era client whose session id `headers` carry; 404 for an id this gateway did not seal
/// (or that was ended on this replica): the client starts over with `initialize`.
pub(super) fn session_client(
    federation: &Federation,
    headers: &http::HeaderMap,
    id: &Value,
) -> Result<Client, Answer> {
    let session = headers
        .get(mcp_headers::SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !federation
        .ended
        .contains_key(&SessionSealer::fingerprint(session))
    {
        if let Some(state) = federation.sealer.open(session) {
            return Ok(Client::Legacy {
                id: Arc::from(session),
                state,
            });
        }
    }
    Err(Answer::error(
        StatusCode::NOT_FOUND,
        id,
        INVALID_REQUEST,
        "Session not found: start a new one with initialize",
        "mcp.session_unknown",
    ))
}

/// Methods of the handshake era that 2026-07-28 removed.
const REMOVED_IN_MODERN: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Whether a request speaks 2026-07-28 (by its header or its envelope).
fn is_modern_request(headers: &http::HeaderMap, message: &Value) -> bool {
    mcp_headers::is_modern(headers)
        || message
            .pointer("/params/_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .is_some()
}

/// The client of a request that is not `initialize`.
fn client_of(
    federation: &Federation,
    headers: &http::HeaderMap,
    message: &Value,
) -> Result<Client, Answer> {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    if headers.contains_key(mcp_headers::SESSION_ID) {
        return session_client(federation, headers, &id);
    }
    let meta = message
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let version = meta.and_then(|m| m.get(META_PROTOCOL_VERSION));
    let has_capabilities = meta.is_some_and(|m| m.contains_key(META_CLIENT_CAPABILITIES));
    match (version, headers.get(mcp_headers::PROTOCOL_VERSION)) {
        (Some(Value::String(v)), _) if v == MODERN_VERSION && has_capabilities => {
            Ok(Client::Modern {
                meta: meta.cloned().unwrap_or_else(Map::new),
                params: param_headers(headers),
            })
        }
        (Some(Value::String(v)), _) if v == MODERN_VERSION => Err(Answer::error(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_PARAMS,
            "params._meta is missing the required envelope key io.modelcontextprotocol/clientCapabilities",
            "request.invalid_jsonrpc",
        )),
        (Some(requested), _) => Err(unsupported_version(&id, requested.clone())),
        (None, Some(header)) if header.as_bytes() == MODERN_VERSION.as_bytes() => {
            Err(Answer::error(
                StatusCode::BAD_REQUEST,
                &id,
                INVALID_PARAMS,
                "params._meta must carry io.modelcontextprotocol/protocolVersion and clientCapabilities",
                "request.invalid_jsonrpc",
            ))
        }
        (None, _) => Err(Answer::error(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_REQUEST,
            "Bad Request: no Mcp-Session-Id: send initialize first, or speak protocol 2026-07-28",
            "mcp.session_missing",
        )),
    }
}

/// The `Mcp-Param-*` headers of a request.
fn param_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("mcp-param-"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// `-32022` naming the version served.
fn unsupported_version(id: &Value, requested: Value) -> Answer {
    let data = json!({"supported": [MODERN_VERSION], "requested": requested});
    let mut answer = Answer::json_with_status(
        StatusCode::BAD_REQUEST,
        &jsonrpc::error(
            id,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            Some(data),
        ),
    );
    answer.reason = Some("mcp.unsupported_version");
    answer
}

//! Requests that belong to one server: found by the exposed name (tools, prompts) or the URI
//! (resources), renamed for the server, and its answer relayed: a JSON answer as it is, an SSE
//! answer event by event as it arrives, with the server's own requests to the client given ids
//! that say which server they came from.

use std::sync::Arc;

use futures::StreamExt;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::answer::{sse_event, Answer};
use super::bridge;
use super::client::{self, Client};
use super::jsonrpc::{self, INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND};
use super::link::{EventStream, LinkError, Reply, ReplyBody};
use super::lists::template_key;
use super::Federation;

/// Separates the parts of the id the gateway gives a server's request to a client:
/// `tg~<server>~<the server's id as JSON>`.
const SCOPED_ID_MARK: char = '~';
const SCOPED_ID_START: &str = "tg~";

/// The string parameter `key` of `message`; `-32602` when it is missing.
fn required_param(message: &Value, key: &str, id: &Value) -> Result<String, Answer> {
    match message
        .get("params")
        .and_then(|p| p.get(key))
        .and_then(Value::as_str)
    {
        Some(value) => Ok(value.to_string()),
        None => Err(Answer::error(
            StatusCode::OK,
            id,
            INVALID_PARAMS,
            &format!("params.{key} is missing"),
            "mcp.invalid_params",
        )),
    }
}

/// `tools/call` and `prompts/get`: to the server whose prefix the name carries.
pub(super) async fn by_name(
    federation: &Arc<Federation>,
    client: &Client,
    id: &Value,
    mut message: Value,
    traceparent: Option<&HeaderValue>,
) -> Answer {
    let exposed = match required_param(&message, "name", id) {
        Ok(name) => name,
        Err(answer) => return answer,
    };
    let Some((index, own)) = federation.server_of_name(&exposed) else {
        let what = if message.get("method").and_then(Value::as_str) == Some("prompts/get") {
            "prompt"
        } else {
            "tool"
        };
        return Answer::error(
            StatusCode::OK,
            id,
            INVALID_PARAMS,
            &format!("Unknown {what}: {exposed}"),
            "mcp.unknown_name",
        );
    };
    let own = own.to_string();
    message["params"]["name"] = own.clone().into();
    forward(
        federation,
        client,
        index,
        id,
        message,
        Some(&own),
        traceparent,
    )
    .await
}

/// `resources/read`, `resources/subscribe` and `resources/unsubscribe`: to the server that
/// listed the URI (or one of whose templates matches it).
pub(super) async fn by_uri(
    federation: &Arc<Federation>,
    client: &Client,
    id: &Value,
    message: Value,
    traceparent: Option<&HeaderValue>,
) -> Answer {
    let uri = match required_param(&message, "uri", id) {
        Ok(uri) => uri,
        Err(answer) => return answer,
    };
    let Some(index) = resource_owner(federation, client, &uri).await else {
        return Answer::error(
            StatusCode::OK,
            id,
            RESOURCE_NOT_FOUND,
            &format!("Resource not found: {uri}"),
            "mcp.unknown_resource",
        );
    };
    let name =
        (message.get("method").and_then(Value::as_str) == Some("resources/read")).then_some(uri);
    forward(
        federation,
        client,
        index,
        id,
        message,
        name.as_deref(),
        traceparent,
    )
    .await
}

/// `completion/complete`: to the server of the prompt or resource it completes for.
pub(super) async fn completion(
    federation: &Arc<Federation>,
    client: &Client,
    id: &Value,
    mut message: Value,
    traceparent: Option<&HeaderValue>,
) -> Answer {
    let reference = message
        .pointer("/params/ref")
        .cloned()
        .unwrap_or(Value::Null);
    let index = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let exposed = reference
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            federation.server_of_name(exposed).map(|(index, own)| {
                message["params"]["ref"]["name"] = own.into();
                index
            })
        }
        Some("ref/resource") => {
            let uri = reference
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            resource_owner(federation, client, uri).await
        }
        _ => None,
    };
    match index {
        Some(index) => forward(federation, client, index, id, message, None, traceparent).await,
        None => Answer::error(
            StatusCode::OK,
            id,
            INVALID_PARAMS,
            "completion/complete: unknown prompt or resource in params.ref",
            "mcp.unknown_name",
        ),
    }
}

/// `logging/setLevel`: to every server that logs.
pub(super) async fn set_level(
    federation: &Federation,
    client: &Client,
    id: &Value,
    message: Value,
) -> Answer {
    let sends = (0..federation.servers.len()).map(|index| {
        let message = message.clone();
        async move {
            let link = &federation.servers[index];
            let logs = link
                .probed()
                .await
                .is_ok_and(|p| p.capabilities.get("logging").is_some());
            if logs {
                if let Err(e) = federation
                    .exchange(client, index, message, None, None)
                    .await
                {
                    tracing::warn!(server = %link.name(), error = %e, "logging/setLevel failed");
                }
            }
        }
    });
    futures::future::join_all(sends).await;
    let mut result = json!({});
    if client.is_modern() {
        result["resultType"] = "complete".into();
    }
    Answer::json(&jsonrpc::result(id, result))
}

/// A notification from the client: cancellations and roots changes go to the servers of its
/// session; the others concern the gateway only.
pub(super) async fn notification(
    federation: &Federation,
    client: &Client,
    method: &str,
    message: Value,
) -> Answer {
    let forwarded = matches!(
        method,
        "notifications/cancelled" | "notifications/roots/list_changed"
    );
    if forwarded && !client.is_modern() {
        let sends = (0..federation.servers.len()).map(|index| {
            let message = message.clone();
            async move {
                if let Err(e) = federation.exchange(client, index, message, None, None).await {
                    tracing::debug!(server = %federation.servers[index].name(), error = %e, "notification not delivered");
                }
            }
        });
        futures::future::join_all(sends).await;
    }
    Answer::accepted()
}

/// The client's response to a request a server made: back to that server, with its own id.
pub(super) async fn answer_to_server(
    federation: &Federation,
    client: &Client,
    mut message: Value,
) -> Answer {
    if let Some(token) = message
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.strip_prefix(bridge::input_required::INPUT_ID_START))
    {
        if !bridge::input_required::deliver(token, message.clone()) {
            tracing::warn!("an answer to a server's input request that no call on this replica waits for (without session affinity, another replica's)");
        }
        return Answer::accepted();
    }
    let scoped = message
        .get("id")
        .and_then(Value::as_str)
        .and_then(unscope_id)
        .map(|(server, id)| (server.to_string(), id));
    let Some((server, id)) = scoped else {
        tracing::debug!("a response to no request the gateway relayed: dropped");
        return Answer::accepted();
    };
    let Some(index) = federation.servers.iter().position(|s| s.name() == server) else {
        return Answer::accepted();
    };
    message["id"] = id;
    if let Err(e) = federation
        .exchange(client, index, message, None, None)
        .await
    {
        tracing::warn!(server = %server, error = %e, "the client's response could not be delivered");
    }
    Answer::accepted()
}

/// Sends a request to server `index` and relays its answer.
async fn forward(
    federation: &Arc<Federation>,
    client: &Client,
    index: usize,
    id: &Value,
    message: Value,
    own_name: Option<&str>,
    traceparent: Option<&HeaderValue>,
) -> Answer {
    let link = &federation.servers[index];
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if bridge::replay::wanted(client, method)
        && link
            .probed()
            .await
            .is_ok_and(|p| p.era_for(true) == super::link::Era::Legacy)
    {
        let call =
            bridge::replay::Call::new(federation.clone(), index, id.clone(), message, client);
        let answer = Answer::stream(bridge::replay::answer(call));
        return answer.answered_by(&link.spec.name);
    }
    // A 2025-era client may have to be asked for a 2026-07-28 server's input: the call is kept
    // to be sent again.
    let bridge = (!client.is_modern()).then(|| bridge::input_required::Call {
        federation: federation.clone(),
        client: client.clone(),
        index,
        id: id.clone(),
        request: message.clone(),
        own_name: own_name.map(str::to_string),
    });
    let reply = federation
        .exchange(client, index, message, own_name, traceparent)
        .await;
    let answer = match reply {
        Ok((reply, sent_id)) => relay_reply(federation, client, index, id, &sent_id, reply, bridge),
        Err(e) => server_failed(link.name(), id, &e),
    };
    answer.answered_by(&link.spec.name)
}

/// The JSON-RPC error of a server that failed a call, naming it.
pub(super) fn server_failed(server: &str, id: &Value, error: &LinkError) -> Answer {
    tracing::warn!(server, error = %error, "MCP server failed a call");
    let data = json!({"reason": error.reason(), "server": server});
    let message = format!("MCP server `{server}` failed: {error}");
    let mut answer = Answer::json(&jsonrpc::error(id, INTERNAL_ERROR, &message, Some(data)));
    answer.reason = Some(error.reason());
    answer
}

/// A server's reply as the client gets it.
fn relay_reply(
    federation: &Federation,
    client: &Client,
    index: usize,
    id: &Value,
    sent_id: &Value,
    reply: Reply,
    bridge: Option<bridge::input_required::Call>,
) -> Answer {
    let server = federation.servers[index].spec.name.clone();
    let modern_client = client.is_modern();
    // A 2026-07-28 error keeps the status its code goes with (404 for an unknown method).
    let status = if modern_client && reply.status.is_client_error() {
        reply.status
    } else {
        StatusCode::OK
    };
    match reply.body {
        ReplyBody::Json(bytes) if sent_id == id && !needs_fitting(&bytes, modern_client) => {
            // Nothing to change: the server's bytes go as they came.
            Answer::json_bytes(status, bytes)
        }
        ReplyBody::Json(bytes) => {
            let Ok(mut message) = serde_json::from_slice::<Value>(&bytes) else {
                return server_failed(
                    &server,
                    id,
                    &LinkError::Protocol("the answer is not JSON".into()),
                );
            };
            if let (Some(call), Some(result)) = (bridge, input_required(&message)) {
                return Answer::stream(bridge::input_required::answer(call, result));
            }
            if !fit_response(&mut message, modern_client, &server) {
                return server_failed(
                    &server,
                    id,
                    &LinkError::Protocol(INPUT_REQUIRED_MESSAGE.into()),
                );
            }
            if message.get("id") == Some(sent_id) {
                message["id"] = id.clone();
            }
            Answer::json_with_status(status, &message)
        }
        ReplyBody::Stream(stream) => {
            let relay = Relay {
                stream: Some(stream),
                server,
                index,
                lists: federation.lists.clone(),
                id: id.clone(),
                sent_id: sent_id.clone(),
                modern_client,
                done: false,
                bridge,
                tail: None,
            };
            Answer::stream(relay.into_stream().boxed())
        }
        ReplyBody::Empty => server_failed(&server, id, &LinkError::Status(reply.status.as_u16())),
    }
}

/// The `input_required` result of a response, if it is one.
fn input_required(message: &Value) -> Option<Value> {
    let result = message.get("result")?;
    (result.get("resultType").and_then(Value::as_str) == Some("input_required"))
        .then(|| result.clone())
}

/// Whether a server's JSON answer needs fitting to the client's era (a 2025-era client must
/// not get the 2026-07-28 result fields; a 2026-07-28 client must get `resultType`): only then
/// is it parsed and written again.
fn needs_fitting(bytes: &[u8], modern_client: bool) -> bool {
    let has = |field: &[u8]| memchr::memmem::find(bytes, field).is_some();
    if modern_client {
        !has(b"\"resultType\"")
    } else {
        has(b"\"resultType\"") || has(b"\"ttlMs\"") || has(b"\"cacheScope\"")
    }
}

const INPUT_REQUIRED_MESSAGE: &str =
    "the server needs input from the client (input_required), which the gateway does not relay to a 2025-era client";

/// Fits a server's response for the client's era; `false` when it cannot be (a 2025-era client
/// cannot be asked for the input a 2026-07-28 server requires, unless bridged).
fn fit_response(message: &mut Value, modern_client: bool, server: &str) -> bool {
    let Some(result) = message.get_mut("result") else {
        return true;
    };
    if modern_client {
        // A 2025-era server's result, as the 2026-07-28 wire requires it.
        if let Some(result) = result.as_object_mut() {
            result
                .entry("resultType")
                .or_insert_with(|| Value::from("complete"));
        }
        return true;
    }
    if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
        tracing::warn!(server, "input_required result for a 2025-era client");
        return false;
    }
    client::legacy_result(result);
    true
}

/// An SSE answer being relayed.
struct Relay {
    /// The server's answer; handed to a drain once its response came.
    stream: Option<EventStream>,
    server: Arc<str>,
    /// The server's index, for the list cache.
    index: usize,
    lists: super::lists::ListCache,
    /// The client's id of the request.
    id: Value,
    /// The id the server got.
    sent_id: Value,
    /// The call, should the server ask a 2025-era client for input.
    bridge: Option<bridge::input_required::Call>,
    /// The rest of the answer once a bridge took over.
    tail: Option<futures::stream::BoxStream<'static, bytes::Bytes>>,
    modern_client: bool,
    done: bool,
}

impl Relay {
    fn into_stream(self) -> impl futures::Stream<Item = bytes::Bytes> + Send + 'static {
        futures::stream::unfold(self, |mut relay| async move {
            if let Some(tail) = relay.tail.as_mut() {
                let event = tail.next().await?;
                return Some((event, relay));
            }
            if relay.done {
                return None;
            }
            let event = relay.next_event().await;
            Some((event, relay))
        })
    }

    /// The next event for the client; after the response (or a failure), the stream ends.
    async fn next_event(&mut self) -> bytes::Bytes {
        let Some(stream) = self.stream.as_mut() else {
            self.done = true;
            return bytes::Bytes::new();
        };
        let mut message = match stream.next_message().await {
            Ok(Some(message)) => message,
            Ok(None) => {
                self.done = true;
                let error = LinkError::Protocol("the stream ended without a response".into());
                return self.failure(&error);
            }
            Err(error) => {
                self.done = true;
                return self.failure(&error);
            }
        };
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            self.lists.changed(self.index, method);
        }
        if jsonrpc::is_response(&message) && message.get("id") == Some(&self.sent_id) {
            self.done = true;
            if let Some(stream) = self.stream.take() {
                stream.drain_in_background();
            }
            if let Some(result) = input_required(&message) {
                if let Some(call) = self.bridge.take() {
                    let mut tail = bridge::input_required::answer(call, result);
                    let first = tail.next().await;
                    self.tail = Some(tail);
                    return first.unwrap_or_default();
                }
            }
            message["id"] = self.id.clone();
            if !fit_response(&mut message, self.modern_client, &self.server) {
                let error = LinkError::Protocol(INPUT_REQUIRED_MESSAGE.into());
                return self.failure(&error);
            }
        } else if jsonrpc::is_request(&message) {
            if self.modern_client {
                // A stateless client has no channel for it (the gateway's session declares no
                // client capabilities, so servers have nothing to ask): an empty comment instead.
                tracing::debug!(server = %self.server, "a server request on the gateway's own session dropped");
                return bytes::Bytes::from_static(b":\n\n");
            }
            // The client answers it with a POST the gateway routes back by this id.
            scope_id(&mut message, &self.server);
        }
        sse_event(&message)
    }

    fn failure(&self, error: &LinkError) -> bytes::Bytes {
        tracing::warn!(server = %self.server, error = %error, "MCP server failed mid-answer");
        let data = json!({"reason": error.reason(), "server": &*self.server});
        let message = format!("MCP server `{}` failed: {error}", self.server);
        sse_event(&jsonrpc::error(
            &self.id,
            INTERNAL_ERROR,
            &message,
            Some(data),
        ))
    }
}

/// Gives a server's request an id that names the server.
pub(super) fn scope_id(message: &mut Value, server: &str) {
    if let Some(id) = message.get("id") {
        let scoped = format!("{SCOPED_ID_START}{server}{SCOPED_ID_MARK}{id}");
        message["id"] = scoped.into();
    }
}

/// The server and its own id from a scoped id.
fn unscope_id(id: &str) -> Option<(&str, Value)> {
    let rest = id.strip_prefix(SCOPED_ID_START)?;
    let (server, own) = rest.split_once(SCOPED_ID_MARK)?;
    Some((server, serde_json::from_str(own).ok()?))
}

/// The server of a resource URI: the one that listed it, or whose template matches it; the
/// lists are fetched again when no server is known for it yet.
async fn resource_owner(federation: &Federation, client: &Client, uri: &str) -> Option<usize> {
    if federation.servers.len() == 1 {
        return Some(0);
    }
    if let Some(owner) = known_owner(federation, uri) {
        return Some(owner);
    }
    for method in ["resources/list", "resources/templates/list"] {
        let request =
            json!({"jsonrpc": "2.0", "id": "tollgate-owners", "method": method, "params": {}});
        super::lists::merged(
            federation,
            client,
            &json!("tollgate-owners"),
            method,
            &request,
        )
        .await;
    }
    known_owner(federation, uri)
}

fn known_owner(federation: &Federation, uri: &str) -> Option<usize> {
    federation.resource_owners.get(uri).or_else(|| {
        federation
            .templates
            .load()
            .iter()
            .find(|(_, template)| template_matches(template, uri))
            .map(|(owner, _)| *owner)
            .or_else(|| federation.resource_owners.get(&template_key(uri)))
    })
}

/// Whether `uri` is one of the URIs `template` (RFC 6570, simple expressions) stands for.
fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    let mut parts = template.split('{');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(after) = rest.strip_prefix(first) else {
        return false;
    };
    rest = after;
    for part in parts {
        let Some((_, literal)) = part.split_once('}') else {
            return false;
        };
        // A variable takes at least one character, up to where the next literal text starts.
        if literal.is_empty() {
            return !rest.is_empty();
        }
        let Some(at) = rest.get(1..).and_then(|r| r.find(literal)) else {
            return false;
        };
        rest = &rest[at + 1 + literal.len()..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_ids_name_the_server_and_keep_the_id() {
        let mut message = json!({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage"});
        scope_id(&mut message, "math");
        assert_eq!(message["id"], "tg~math~7");
        assert_eq!(unscope_id("tg~math~7"), Some(("math", json!(7))));
        assert_eq!(unscope_id("tg~math~\"a~b\""), Some(("math", json!("a~b"))));
        assert_eq!(unscope_id("7"), None);
    }

    #[test]
    fn templates_match_uris_they_stand_for() {
        assert!(template_matches("res://a/items/{id}", "res://a/items/42"));
        assert!(template_matches("res://a/{x}/b/{y}", "res://a/1/b/2"));
        assert!(!template_matches("res://a/items/{id}", "res://a/items/"));
        assert!(!template_matches("res://a/items/{id}", "res://b/items/1"));
        assert!(!template_matches("res://a/{x}/b", "res://a/1/c"));
    }
}

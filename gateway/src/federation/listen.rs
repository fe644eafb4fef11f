//! Messages outside requests: a 2025-era client's GET stream and a 2026-07-28 client's
//! `subscriptions/listen`, each one stream merged from every server's (a server's GET stream
//! on the client's session, or its own `subscriptions/listen`).

use futures::stream::{self, BoxStream, StreamExt};
use http::StatusCode;
use serde_json::{json, Value};

use super::answer::{sse_event, Answer};
use super::client::Client;
use super::jsonrpc::{self, INVALID_REQUEST};
use super::link::{Era, EventStream, LinkError, ReplyBody};
use super::relay::scope_id;
use super::Federation;

/// `_meta` key that ties a notification to its `subscriptions/listen` request.
const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// What a 2025-era client's stream subscribes to on a 2026-07-28 server.
const ALL_LIST_CHANGES: &str =
    r#"{"toolsListChanged":true,"promptsListChanged":true,"resourcesListChanged":true}"#;

/// GET: a 2025-era client's stream of server messages.
pub(super) async fn open(federation: &Federation, headers: &http::HeaderMap) -> Answer {
    let client = match super::dispatch::session_client(federation, headers, &Value::Null) {
        Ok(client) => client,
        Err(answer) => return answer,
    };
    let filter: Value = serde_json::from_str(ALL_LIST_CHANGES).unwrap_or_default();
    let opened = futures::future::join_all(
        (0..federation.servers.len())
            .map(|index| server_stream(federation, &client, index, &filter, None)),
    )
    .await;
    let streams: Vec<_> = opened.into_iter().flatten().collect();
    if streams.is_empty() {
        return Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &Value::Null,
            INVALID_REQUEST,
            "no MCP server of this route offers a stream",
            "mcp.no_stream",
        );
    }
    Answer::stream(stream::select_all(streams).boxed())
}

/// `subscriptions/listen`: acknowledged by the gateway, then every server's notifications.
pub(super) async fn subscribe(
    federation: &Federation,
    client: &Client,
    id: &Value,
    message: &Value,
) -> Answer {
    let filter = message
        .pointer("/params/notifications")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let opened = futures::future::join_all(
        (0..federation.servers.len())
            .map(|index| server_stream(federation, client, index, &filter, Some(id))),
    )
    .await;
    let streams: Vec<_> = opened.into_iter().flatten().collect();
    let acknowledged = jsonrpc_notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": filter, "_meta": {META_SUBSCRIPTION_ID: id}}),
    );
    let first = stream::once(async move { sse_event(&acknowledged) });
    // The stream stays open (as a server's does) even when no server has one to merge.
    let rest = if streams.is_empty() {
        stream::pending().boxed()
    } else {
        stream::select_all(streams).boxed()
    };
    Answer::stream(first.chain(rest).boxed())
}

fn jsonrpc_notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// Server `index`'s stream of messages for `client`, if it has one. `listen_id` is the id of
/// a 2026-07-28 client's `subscriptions/listen` (stamped on what a 2025-era server sends).
async fn server_stream(
    federation: &Federation,
    client: &Client,
    index: usize,
    filter: &Value,
    listen_id: Option<&Value>,
) -> Option<BoxStream<'static, bytes::Bytes>> {
    let link = &federation.servers[index];
    let messages = match open_server_stream(federation, client, index, filter, listen_id).await {
        Ok(Some(messages)) => messages,
        Ok(None) => return None,
        Err(e) => {
            tracing::info!(server = %link.name(), error = %e, "MCP server stream not opened");
            return None;
        }
    };
    let server = link.spec.name.clone();
    let listen_id = listen_id.cloned();
    let lists = federation.lists.clone();
    let relayed = messages.filter_map(move |message| {
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            lists.changed(index, method);
        }
        futures::future::ready(relayed_message(message, &server, listen_id.as_ref()))
    });
    Some(relayed.boxed())
}

/// The messages of an SSE stream, until it ends or fails.
fn messages_of(events: EventStream) -> BoxStream<'static, Value> {
    stream::unfold(events, |mut events| async move {
        match events.next_message().await {
            Ok(Some(message)) => Some((message, events)),
            Ok(None) | Err(_) => None,
        }
    })
    .boxed()
}

async fn open_server_stream(
    federation: &Federation,
    client: &Client,
    index: usize,
    filter: &Value,
    listen_id: Option<&Value>,
) -> Result<Option<BoxStream<'static, Value>>, LinkError> {
    let link = &federation.servers[index];
    let probed = link.probed().await?;
    if probed.era_for(client.is_modern()) == Era::Modern {
        let id = listen_id.cloned().unwrap_or_else(jsonrpc::fresh_id);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
                             "params": {"notifications": filter}});
        let (reply, _) = federation
            .exchange(client, index, request, None, None)
            .await?;
        return Ok(match reply.body {
            ReplyBody::Stream(events) => Some(messages_of(events.long_lived())),
            _ => None,
        });
    }
    if client.is_modern() {
        // A 2025-era server's changes reach stateless clients through the gateway's own
        // session's stream, shared by all of them; only what this client subscribed to.
        let receiver = link.shared_events().await?;
        let filter = filter.clone();
        let shared = stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(message) => return Some((message, receiver)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |message| futures::future::ready(subscribed(&filter, message)));
        return Ok(Some(shared.boxed()));
    }
    let session = federation.server_session(client, index, false).await?;
    let Some(session_id) = session.id.as_deref() else {
        return Ok(None);
    };
    let events = match link.listen(session_id, &session.version).await {
        Err(LinkError::SessionGone) => {
            let session = federation.server_session(client, index, true).await?;
            match session.id.as_deref() {
                Some(id) => link.listen(id, &session.version).await?,
                None => return Ok(None),
            }
        }
        Err(LinkError::Status(405)) => return Ok(None),
        other => other?,
    };
    Ok(Some(messages_of(events)))
}

/// Whether a 2026-07-28 client's `subscriptions/listen` filter asks for `message`.
fn subscribed(filter: &Value, message: &Value) -> bool {
    let flag = |key: &str| filter.get(key).and_then(Value::as_bool).unwrap_or(false);
    match message.get("method").and_then(Value::as_str) {
        Some("notifications/tools/list_changed") => flag("toolsListChanged"),
        Some("notifications/prompts/list_changed") => flag("promptsListChanged"),
        Some("notifications/resources/list_changed") => flag("resourcesListChanged"),
        Some("notifications/resources/updated") => {
            let uri = message.pointer("/params/uri");
            filter
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .is_some_and(|uris| uri.is_some_and(|uri| uris.contains(uri)))
        }
        _ => false,
    }
}

/// A server's message as the client's merged stream carries it; `None` for what only concerns
/// the gateway (a server's acknowledgement or the end of its listen).
fn relayed_message(
    mut message: Value,
    server: &str,
    listen_id: Option<&Value>,
) -> Option<bytes::Bytes> {
    if jsonrpc::is_response(&message) {
        return None;
    }
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if method == "notifications/subscriptions/acknowledged" {
        return None;
    }
    if jsonrpc::is_request(&message) {
        scope_id(&mut message, server);
    } else if let Some(listen_id) = listen_id {
        super::client::put_envelope(
            &mut message,
            std::iter::once((META_SUBSCRIPTION_ID.to_string(), listen_id.clone())).collect(),
        );
    }
    Some(sse_event(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_filter_lets_through_what_it_asks_for() {
        let filter = json!({"toolsListChanged": true, "resourceSubscriptions": ["res://a"]});
        let note = |method: &str, params: Value| json!({"jsonrpc": "2.0", "method": method, "params": params});
        assert!(subscribed(
            &filter,
            &note("notifications/tools/list_changed", json!({}))
        ));
        assert!(!subscribed(
            &filter,
            &note("notifications/prompts/list_changed", json!({}))
        ));
        assert!(subscribed(
            &filter,
            &note("notifications/resources/updated", json!({"uri": "res://a"}))
        ));
        assert!(!subscribed(
            &filter,
            &note("notifications/resources/updated", json!({"uri": "res://b"}))
        ));
        assert!(!subscribed(
            &filter,
            &note("notifications/message", json!({}))
        ));
    }
}

//! A 2025-era server's requests (sampling, elicitation, roots) answered by a 2026-07-28 client.
//! The stateless client can only be asked by an `input_required` result, and it answers by
//! sending the call again. So each round the gateway opens a session on the server with the
//! client's capabilities and sends the call; the server's requests are answered from the
//! client's answers so far (in the order the server asks); the first request without an answer
//! ends the round: the server's call is cancelled, and the client gets `input_required` with that
//! request and a `requestState` (sealed by the gateway) holding the answers so far.
//!
//! The server's tool thus runs again from its start each round: fine for a tool that asks before
//! it acts, as tools that ask usually do (docs/federation.md).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::federation::answer::sse_event;
use crate::federation::client::{self, Client};
use crate::federation::jsonrpc;
use crate::federation::link::{LinkError, ReplyBody, SessionRef};
use crate::federation::Federation;
use crate::protocol::mcp_headers::{META_CLIENT_CAPABILITIES, META_CLIENT_INFO};

/// Keys of the input requests the gateway makes: `tollgate-<n>`, n counting the server's
/// requests in one run of the call.
const KEY_START: &str = "tollgate-";
/// Requests one call may make of the client.
const MAX_REQUESTS: usize = 16;

/// What the gateway's `requestState` holds.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// The server it is for.
    #[serde(rename = "s")]
    server: String,
    /// The client's answers to the server's requests so far, in order.
    #[serde(rename = "a")]
    answers: Vec<Value>,
}

/// What a replayed call needs.
pub(in crate::federation) struct Call {
    /// The route's federation.
    pub federation: Arc<Federation>,
    /// The server's index.
    pub index: usize,
    /// The client's id of the call.
    pub id: Value,
    /// The call with the server's own names, as the 2026-07-28 client sent it.
    pub request: Value,
    /// The client's capabilities and `clientInfo`, from its envelope.
    pub capabilities: Value,
    /// The client's `clientInfo`.
    pub client_info: Option<Value>,
}

/// Whether a 2026-07-28 client's call to a 2025-era server is replayed: the client can answer
/// server requests (it declares sampling, elicitation or roots) and the method is one a server
/// may ask during.
pub(in crate::federation) fn wanted(client: &Client, method: &str) -> bool {
    let Client::Modern { meta, .. } = client else {
        return false;
    };
    let interactive = matches!(method, "tools/call" | "prompts/get" | "resources/read");
    let capabilities = meta.get(META_CLIENT_CAPABILITIES);
    let can_answer = ["sampling", "elicitation", "roots"]
        .iter()
        .any(|c| capabilities.and_then(|caps| caps.get(c)).is_some());
    interactive && can_answer
}

impl Call {
    /// The call of `client` (a 2026-07-28 one) to server `index`.
    pub(in crate::federation) fn new(
        federation: Arc<Federation>,
        index: usize,
        id: Value,
        request: Value,
        client: &Client,
    ) -> Self {
        let envelope = client.modern_envelope();
        Self {
            federation,
            index,
            id,
            request,
            capabilities: envelope
                .get(META_CLIENT_CAPABILITIES)
                .cloned()
                .unwrap_or_else(|| json!({})),
            client_info: envelope.get(META_CLIENT_INFO).cloned(),
        }
    }
}

/// The client's SSE answer: the server's notifications, then its result or `input_required`.
pub(in crate::federation) fn answer(call: Call) -> BoxStream<'static, Bytes> {
    let server = call.federation.servers[call.index].spec.name.clone();
    let id = call.id.clone();
    super::spawn_answer(
        server,
        id,
        move |events| async move { run(call, &events).await },
    )
}

async fn run(call: Call, events: &mpsc::Sender<Bytes>) -> Result<Value, LinkError> {
    let link = &call.federation.servers[call.index];
    let mut request = call.request;
    let answers = answers_so_far(&call.federation, link.name(), &mut request)?;
    client::drop_envelope(&mut request);
    let sent_id = jsonrpc::fresh_id();
    request["id"] = sent_id.clone();
    let opened = link
        .open_session(&call.capabilities, call.client_info.as_ref())
        .await?;
    let session = opened.session_ref();
    let outcome = run_once(
        &call.federation,
        call.index,
        &session,
        &request,
        &sent_id,
        &answers,
        events,
    )
    .await;
    if let Some(id) = &session.id {
        link.end_session(id, &session.version).await;
    }
    let mut last = match outcome? {
        Round::Done(last) => last,
        Round::Asks(asked) => {
            let key = format!("{KEY_START}{}", answers.len());
            let state = State {
                server: link.name().to_string(),
                answers,
            };
            let sealed = call
                .federation
                .sealer
                .seal_request_state(&state)
                .ok_or_else(|| LinkError::Protocol("cannot seal the request state".into()))?;
            let mut requests = Map::new();
            requests.insert(key, asked);
            jsonrpc::result(
                &Value::Null,
                json!({"resultType": "input_required", "inputRequests": requests, "requestState": sealed}),
            )
        }
    };
    last["id"] = call.id.clone();
    if let Some(result) = last.get_mut("result").and_then(Value::as_object_mut) {
        result
            .entry("resultType")
            .or_insert_with(|| Value::from("complete"));
    }
    Ok(last)
}

/// How one run of the call ended.
enum Round {
    /// The server answered it (result or error).
    Done(Value),
    /// The server asked something no answer exists for yet: `{method, params}`.
    Asks(Value),
}

/// Sends the call once, answering the server's requests from `answers`.
async fn run_once(
    federation: &Federation,
    index: usize,
    session: &SessionRef,
    request: &Value,
    sent_id: &Value,
    answers: &[Value],
    events: &mpsc::Sender<Bytes>,
) -> Result<Round, LinkError> {
    let link = &federation.servers[index];
    let body = Bytes::from(request.to_string());
    let reply = link.post(body, session.envelope(), None).await?;
    let mut stream = match reply.body {
        ReplyBody::Json(bytes) => {
            return serde_json::from_slice(&bytes)
                .map(Round::Done)
                .map_err(|e| LinkError::Protocol(format!("the answer is not JSON: {e}")));
        }
        ReplyBody::Stream(stream) => stream,
        ReplyBody::Empty => return Err(LinkError::Protocol("an empty answer".into())),
    };
    let mut asked = 0;
    while let Some(message) = stream.next_message().await? {
        if jsonrpc::is_response(&message) && message.get("id") == Some(sent_id) {
            return Ok(Round::Done(message));
        }
        if !jsonrpc::is_request(&message) {
            let _ = events.send(sse_event(&message)).await;
            continue;
        }
        let Some(answer) = answers.get(asked) else {
            let cancel = jsonrpc::notification(
                "notifications/cancelled",
                Some(&json!({"requestId": sent_id, "reason": "the client is asked first"})),
            );
            let _ = link.post(cancel, session.envelope(), None).await;
            let method = message.get("method").cloned().unwrap_or(Value::Null);
            let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
            return Ok(Round::Asks(json!({"method": method, "params": params})));
        };
        asked += 1;
        if asked > MAX_REQUESTS {
            return Err(LinkError::Protocol(format!(
                "the server asked more than {MAX_REQUESTS} times"
            )));
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let response = Bytes::from(jsonrpc::result(&id, answer.clone()).to_string());
        link.post(response, session.envelope(), None).await?;
    }
    Err(LinkError::Protocol(
        "the stream ended without a response".into(),
    ))
}

/// The client's answers so far: those sealed in the gateway's `requestState`, then the new
/// `inputResponses` in order. Both are taken out of the request (the server knows neither).
fn answers_so_far(
    federation: &Federation,
    server: &str,
    request: &mut Value,
) -> Result<Vec<Value>, LinkError> {
    let Some(params) = request.get_mut("params").and_then(Value::as_object_mut) else {
        return Ok(Vec::new());
    };
    let mut answers = match params.remove("requestState") {
        Some(Value::String(sealed)) => {
            let state: State = federation
                .sealer
                .open_request_state(&sealed)
                .filter(|s: &State| s.server == server)
                .ok_or_else(|| {
                    LinkError::Protocol("requestState is not one this gateway gave".into())
                })?;
            state.answers
        }
        _ => Vec::new(),
    };
    let responses = params.remove("inputResponses");
    if let Some(responses) = responses.as_ref().and_then(Value::as_object) {
        while let Some(answer) = responses.get(&format!("{KEY_START}{}", answers.len())) {
            answers.push(answer.clone());
        }
    }
    Ok(answers)
}

//! A 2026-07-28 server's `input_required` answered by a 2025-era client: each input request
//! goes to the client as a server request on the call's SSE answer, the client's answers come
//! back as POSTs (to this replica: they wait here), and the call is sent again with
//! `inputResponses` and the server's `requestState` unchanged, until the server completes it.
//!
//! The client's answers must reach the replica that holds the call: one replica, or session
//! affinity on `Mcp-Session-Id` (docs/federation.md).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::federation::answer::sse_event;
use crate::federation::client::{self, Client};
use crate::federation::jsonrpc;
use crate::federation::link::{LinkError, ReplyBody};
use crate::federation::Federation;

/// The start of the ids of the requests the gateway makes to the client for a server's input.
pub(in crate::federation) const INPUT_ID_START: &str = "tg~input~";
/// How long a client may take to answer (a person may be filling in a form).
const ANSWER_WAIT: Duration = Duration::from_secs(600);
/// Rounds of input one call may ask for.
const MAX_ROUNDS: usize = 8;

/// Calls waiting for a client's answer, by the token in the id of the request it answers.
static WAITING: LazyLock<Mutex<HashMap<String, oneshot::Sender<Value>>>> =
    LazyLock::new(Mutex::default);

/// Hands the client's answer to the call waiting for it; `false` when none waits (another
/// replica's, or given up).
pub(in crate::federation) fn deliver(token: &str, answer: Value) -> bool {
    let waiting = WAITING.lock().ok().and_then(|mut w| w.remove(token));
    waiting.is_some_and(|sender| sender.send(answer).is_ok())
}

/// What a bridged call needs to be sent again.
pub(in crate::federation) struct Call {
    /// The route's federation.
    pub federation: Arc<Federation>,
    /// The 2025-era client.
    pub client: Client,
    /// The server's index.
    pub index: usize,
    /// The client's id of the call.
    pub id: Value,
    /// The call as the server got it (its own names).
    pub request: Value,
    /// `Mcp-Name` of the call.
    pub own_name: Option<String>,
}

/// The rest of the client's SSE answer, from the server's first `input_required` result on.
pub(in crate::federation) fn answer(
    call: Call,
    input_required: Value,
) -> BoxStream<'static, Bytes> {
    let server = call.federation.servers[call.index].spec.name.clone();
    let id = call.id.clone();
    super::spawn_answer(server, id, move |events| async move {
        run(&call, input_required, &events).await
    })
}

/// Rounds of input until the server completes the call: its last response, for the client.
async fn run(
    call: &Call,
    mut result: Value,
    events: &mpsc::Sender<Bytes>,
) -> Result<Value, LinkError> {
    for _ in 0..MAX_ROUNDS {
        let responses = ask_client(&result, events).await?;
        let mut retry = call.request.clone();
        if let Some(params) = retry.get_mut("params").and_then(Value::as_object_mut) {
            params.insert("inputResponses".into(), Value::Object(responses));
            match result.get("requestState") {
                Some(state) => params.insert("requestState".into(), state.clone()),
                None => params.remove("requestState"),
            };
        }
        let (reply, sent_id) = call
            .federation
            .exchange(
                &call.client,
                call.index,
                retry,
                call.own_name.as_deref(),
                None,
            )
            .await?;
        let mut last = final_response(reply.body, &sent_id, events).await?;
        match last.get("result") {
            Some(next)
                if next.get("resultType").and_then(Value::as_str) == Some("input_required") =>
            {
                result = next.clone();
            }
            _ => {
                last["id"] = call.id.clone();
                if let Some(result) = last.get_mut("result") {
                    client::legacy_result(result);
                }
                return Ok(last);
            }
        }
    }
    Err(LinkError::Protocol(format!(
        "the server asked for input more than {MAX_ROUNDS} times"
    )))
}

/// Sends the client each input request of `result` and waits for every answer.
async fn ask_client(
    result: &Value,
    events: &mpsc::Sender<Bytes>,
) -> Result<Map<String, Value>, LinkError> {
    let requests = result
        .get("inputRequests")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut waits = Vec::with_capacity(requests.len());
    // However this ends, no entry of this call stays behind.
    let mut registered = Registered(Vec::with_capacity(requests.len()));
    for (key, request) in requests {
        let token = token().ok_or_else(|| LinkError::Protocol("no randomness".into()))?;
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = WAITING.lock() {
            waiting.insert(token.clone(), sender);
        }
        registered.0.push(token.clone());
        let message = json!({
            "jsonrpc": "2.0",
            "id": format!("{INPUT_ID_START}{token}"),
            "method": request.get("method").cloned().unwrap_or(Value::Null),
            "params": request.get("params").cloned().unwrap_or_else(|| json!({})),
        });
        if events.send(sse_event(&message)).await.is_err() {
            return Err(LinkError::Protocol("the client went away".into()));
        }
        waits.push((key, receiver));
    }
    let mut responses = Map::new();
    for (key, receiver) in waits {
        let answer = tokio::select! {
            answer = tokio::time::timeout(ANSWER_WAIT, receiver) => answer,
            // A client that went away will not answer: the call is given up at once.
            () = events.closed() => return Err(LinkError::Protocol("the client went away".into())),
        };
        let Ok(Ok(answer)) = answer else {
            return Err(LinkError::Timeout(ANSWER_WAIT));
        };
        match answer.get("result") {
            Some(result) => {
                responses.insert(key, result.clone());
            }
            None => {
                let message = answer
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no result");
                return Err(LinkError::Protocol(format!(
                    "the client refused the server's request: {message}"
                )));
            }
        }
    }
    Ok(responses)
}

/// The server's response to a retried call; the notifications before it go to the client.
async fn final_response(
    body: ReplyBody,
    sent_id: &Value,
    events: &mpsc::Sender<Bytes>,
) -> Result<Value, LinkError> {
    match body {
        ReplyBody::Json(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| LinkError::Protocol(format!("the answer is not JSON: {e}"))),
        ReplyBody::Stream(mut stream) => {
            while let Some(message) = stream.next_message().await? {
                if jsonrpc::is_response(&message) && message.get("id") == Some(sent_id) {
                    return Ok(message);
                }
                if !jsonrpc::is_request(&message) {
                    let _ = events.send(sse_event(&message)).await;
                }
            }
            Err(LinkError::Protocol(
                "the stream ended without a response".into(),
            ))
        }
        ReplyBody::Empty => Err(LinkError::Protocol("an empty answer".into())),
    }
}

/// The tokens one round registered, removed from [`WAITING`] when the round ends.
struct Registered(Vec<String>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut waiting) = WAITING.lock() {
            for token in &self.0 {
                waiting.remove(token);
            }
        }
    }
}

/// An id part no client can guess (another client's answers cannot be injected).
fn token() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

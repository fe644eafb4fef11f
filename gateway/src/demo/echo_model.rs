//! The demo LLM: an Anthropic Messages-compatible model that echoes the last user message,
//! streaming it word by word when asked (`"stream": true`), with the real event sequence and usage.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Model id the echo model reports in `/v1/models`.
pub const ECHO_MODEL_ID: &str = "tollgate-echo-1";

/// Behaviour of the echo model.
#[derive(Clone, Debug, Default)]
pub struct EchoOptions {
    /// Pause between streamed SSE events.
    pub event_delay: Duration,
    /// When set, `/v1/*` requests must carry exactly this `x-api-key` and no `authorization`
    /// header (proves that the gateway injected its key and removed the client's).
    pub expected_api_key: Option<SecretString>,
}

struct EchoState {
    options: EchoOptions,
    counter: AtomicU64,
}

/// Serves the echo model on `listener` until `shutdown`.
pub async fn serve_echo_model(
    listener: tokio::net::TcpListener,
    options: EchoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(EchoState {
        options,
        counter: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint") })
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An Anthropic-style error answer.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"type": "error", "error": {"type": self.kind, "message": self.message}});
        (
            self.status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, message: &'static str) -> ApiError {
    ApiError {
        status,
        kind,
        message,
    }
}

fn authorized(state: &EchoState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.options.expected_api_key else {
        return Ok(());
    };
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(expected.expose_secret()) || headers.contains_key("authorization") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    Ok(())
}

/// Whitespace-separated words, at least one: a deterministic stand-in for a tokenizer.
fn count_words(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// Text of a message's `content`: a string or an array of blocks with `type: "text"`.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

struct Prompt {
    model: String,
    max_tokens: u64,
    input_tokens: u64,
    last_user: String,
    stream: bool,
}

fn parse_prompt(body: &Bytes, need_max_tokens: bool) -> Result<Prompt, ApiError> {
    let bad =
        |message: &'static str| error(StatusCode::BAD_REQUEST, "invalid_request_error", message);
    let json: Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not valid JSON"))?;
    let messages = json
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages: field required"))?;
    let max_tokens = json.get("max_tokens").and_then(Value::as_u64);
    if need_max_tokens && max_tokens.is_none() {
        return Err(bad("max_tokens: field required"));
    }
    let mut all_text = json.get("system").map(content_text).unwrap_or_default();
    let mut last_user = String::new();
    for message in messages {
        let text = message.get("content").map(content_text).unwrap_or_default();
        if message.get("role").and_then(Value::as_str) == Some("user") {
            last_user = text.clone();
        }
        all_text.push(' ');
        all_text.push_str(&text);
    }
    Ok(Prompt {
        model: json
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(ECHO_MODEL_ID)
            .to_string(),
        max_tokens: max_tokens.unwrap_or(0),
        input_tokens: count_words(&all_text),
        last_user,
        stream: json.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The answer's words, limited to `max_tokens`.
fn answer_words(prompt: &Prompt) -> Vec<String> {
    let text = format!("Echo: {}", prompt.last_user);
    text.split_whitespace()
        .take(prompt.max_tokens.max(1) as usize)
        .map(str::to_string)
        .collect()
}

async fn messages(
    State(state): State<Arc<EchoState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied.into_response();
    }
    let prompt = match parse_prompt(&body, true) {
        Ok(prompt) => prompt,
        Err(bad) => return bad.into_response(),
    };
    let id = format!("msg_demo_{}", state.counter.fetch_add(1, Ordering::Relaxed));
    let words = answer_words(&prompt);
    if prompt.stream {
        return stream_answer(id, &prompt, words, state.options.event_delay);
    }
    let answer = json!({
        "id": id, "type": "message", "role": "assistant", "model": prompt.model,
        "content": [{"type": "text", "text": words.join(" ")}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": prompt.input_tokens, "output_tokens": words.len()},
    });
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

fn event(kind: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn stream_answer(id: String, prompt: &Prompt, words: Vec<String>, delay: Duration) -> Response {
    let output_tokens = words.len();
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": prompt.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": prompt.input_tokens, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let last = words.len().saturating_sub(1);
    for (i, word) in words.into_iter().enumerate() {
        let text = if i == last { word } else { format!("{word} ") };
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    // Each event is its own body frame, sent after the pause: the stream is never batched.
    let stream = futures::stream::unfold(
        (events.into_iter(), true),
        move |(mut rest, first)| async move {
            let next = rest.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, Infallible>(next), (rest, false)))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
}

async fn count_tokens(
    State(state): State<Arc<EchoState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied.into_response();
    }
    match parse_prompt(&body, false) {
        Ok(prompt) => (
            [("content-type", "application/json")],
            json!({"input_tokens": prompt.input_tokens}).to_string(),
        )
            .into_response(),
        Err(bad) => bad.into_response(),
    }
}

async fn models(State(state): State<Arc<EchoState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied.into_response();
    }
    let body = json!({
        "data": [{"type": "model", "id": ECHO_MODEL_ID, "display_name": "tollgate echo", "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": false, "first_id": ECHO_MODEL_ID, "last_id": ECHO_MODEL_ID,
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

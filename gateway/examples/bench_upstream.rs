//! A fast upstream for the load benchmark (`benches/load/run.sh`): answers at once, with no
//! artificial delay, so that what is measured is the hop in front of it.
//!
//! - `POST /v1/messages`: an Anthropic Messages answer (JSON with `usage`), or, when the request
//!   body has `"stream": true`, exactly 100 SSE events (`message_start`, `content_block_start`,
//!   95 `content_block_delta` text deltas, `content_block_stop`, `message_delta` with usage,
//!   `message_stop`), each its own body frame, sent without pauses.
//! - `POST /mcp`: answers a JSON-RPC request (`tools/call`) with a tool result (JSON, same `id`).
//! - `GET /healthz`: `ok`.
//!
//! Answers are built once at start; a request costs a JSON parse of its body and a copy-free
//! send. Run: `cargo run --release -p tollgate --example bench_upstream -- 127.0.0.1:18000`;
//! worker threads from `BENCH_UPSTREAM_THREADS` (default 1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};

/// Text deltas in a streamed answer: with the five other events, 100 events in all.
const DELTAS: usize = 95;
/// Model name the answers report.
const MODEL: &str = "bench-model";

/// Answers prepared at start.
struct Canned {
    message: Bytes,
    events: Vec<Bytes>,
}

fn event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn canned() -> Canned {
    let words: Vec<String> = (0..DELTAS).map(|i| format!("word{i} ")).collect();
    let message = json!({
        "id": "msg_bench_0", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": words.concat()}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 250, "output_tokens": DELTAS},
    });
    let mut events = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_bench_0", "type": "message", "role": "assistant", "model": MODEL,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 250, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for word in &words {
        events.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": DELTAS}}),
    ));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    Canned {
        message: Bytes::from(message.to_string()),
        events,
    }
}

fn bad_request(message: &str) -> Response {
    let body =
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn messages(State(canned): State<Arc<Canned>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not valid JSON");
    };
    if request.get("messages").and_then(Value::as_array).is_none() {
        return bad_request("messages: field required");
    }
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            canned.message.clone(),
        )
            .into_response();
    }
    // One body frame per event, as a model server produces them.
    let events = canned.events.clone();
    let stream = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn mcp(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let error = json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "parse error"}});
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            error.to_string(),
        )
            .into_response();
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": "42"}], "isError": false}});
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: bench_upstream ADDR (e.g. 127.0.0.1:18000)")?
        .parse()?;
    let threads = match std::env::var("BENCH_UPSTREAM_THREADS") {
        Ok(value) => value.parse()?,
        Err(_) => 1,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/mcp", post(mcp))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(Arc::new(canned()));
        // TCP_NODELAY, as model servers do: each SSE event leaves at once (with Nagle's algorithm
        // a small write waits for the ACK of the previous one, up to the 40 ms delayed ACK).
        let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        eprintln!("bench_upstream: listening on {addr} ({threads} worker threads)");
        axum::serve(listener, app).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

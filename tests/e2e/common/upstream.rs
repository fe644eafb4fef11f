//! A real HTTP test upstream (axum on loopback) that records what it receives and can pause
//! between SSE events.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// Pause between SSE events of the slow streams.
pub const EVENT_GAP: Duration = Duration::from_millis(300);

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// HTTP version (HTTP/2 from an upstream with `http2 = true`: this server speaks h2c too).
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// Shared state of the upstream.
#[derive(Default)]
pub struct Recorder {
    /// Every request, in order.
    pub requests: Mutex<Vec<Recorded>>,
    /// When each SSE event was handed to the socket.
    pub event_times: Mutex<Vec<Instant>>,
    /// Streams whose client went away before the end.
    pub abandoned_streams: AtomicUsize,
    /// Slow requests whose connection was closed before the answer.
    pub abandoned_requests: AtomicUsize,
}

impl Recorder {
    /// A copy of the recorded requests.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

/// A running test upstream.
pub struct TestUpstream {
    /// Its address.
    pub addr: SocketAddr,
    /// What it saw.
    pub recorder: Arc<Recorder>,
}

impl TestUpstream {
    /// Starts the upstream on a free loopback port.
    pub async fn start() -> Self {
        let recorder = Arc::new(Recorder::default());
        let app = Router::new().fallback(handle).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, recorder }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn handle(
    State(rec): State<Arc<Recorder>>,
    method: Method,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rec.requests.lock().expect("lock").push(Recorded {
        method: method.clone(),
        uri: uri.to_string(),
        version,
        headers: headers.clone(),
        body: body.clone(),
    });
    let path = uri.path().to_string();
    // `x-test-line-end: crlf`: SSE lines end with CRLF, as the Python MCP SDK writes them.
    let crlf = headers
        .get("x-test-line-end")
        .is_some_and(|v| v.as_bytes() == b"crlf");
    // `x-test-bad-byte: 1`: the answer carries a byte that is not UTF-8 (in every SSE chunk, a
    // comment event; in a JSON answer, inside its first text).
    let bad_byte = headers.contains_key("x-test-bad-byte");
    // `x-test-content-encoding: E`: the answer is labelled `Content-Encoding: E` (whatever the
    // request's `Accept-Encoding`), as a server that compresses regardless would.
    let encoding = headers.get("x-test-content-encoding").cloned();
    let mut response = route(rec, method, uri, headers, body, &path).await;
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_ENCODING, encoding);
    }
    match (crlf, bad_byte) {
        (true, _) => rewrite_chunks(response, false, |bytes| {
            String::from_utf8_lossy(bytes)
                .replace('\n', "\r\n")
                .into_bytes()
        }),
        (_, true) => rewrite_chunks(response, true, with_bad_byte),
        _ => response,
    }
}

/// `bytes` with a byte that is not UTF-8 added: after the first `"text":"` of a JSON answer,
/// as a comment event after an SSE chunk.
fn with_bad_byte(bytes: &[u8]) -> Vec<u8> {
    const TEXT: &[u8] = b"\"text\":\"";
    match bytes.windows(TEXT.len()).position(|w| w == TEXT) {
        Some(at) if !bytes.starts_with(b"event:") => {
            let at = at + TEXT.len();
            [&bytes[..at], b"\xff", &bytes[at..]].concat()
        }
        _ => [bytes, b": \xff\n\n"].concat(),
    }
}

/// The response with each body chunk passed through `rewrite` (SSE only unless `json_too`; the
/// length is dropped, the body goes chunked).
fn rewrite_chunks(response: Response, json_too: bool, rewrite: fn(&[u8]) -> Vec<u8>) -> Response {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let rewritten = content_type.starts_with(b"text/event-stream")
        || (json_too && content_type.starts_with(b"application/json"));
    if !rewritten {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove("content-length");
    let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        chunk.map(|bytes| Bytes::from(rewrite(&bytes)))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

async fn route(
    rec: Arc<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    path: &str,
) -> Response {
    match (method.as_str(), path) {
        ("POST", "/mcp") => mcp_post(rec, &headers, &body),
        ("GET", "/mcp") => {
            let last = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let events = (1..=3).map(|i| format!("id: ev-{i}\nevent: message\ndata: {{\"n\":{i},\"last_event_id\":\"{last}\"}}\n\n")).collect();
            sse(rec, events, EVENT_GAP, &[("mcp-session-id", "sess-123")])
        }
        ("DELETE", "/mcp") => StatusCode::OK.into_response(),
        ("POST", "/v1/messages") => anthropic(rec, &headers, &body),
        (_, "/slow") => {
            let mut guard = SlowGuard {
                rec,
                finished: false,
            };
            tokio::time::sleep(Duration::from_secs(3)).await;
            guard.finished = true;
            "late".into_response()
        }
        // `/quiet-stream`: the head at once, the only event 600 ms later (the empty first chunk
        // puts nothing on the wire).
        (_, "/quiet-stream") => sse(
            rec,
            vec![String::new(), "data: late\n\n".into()],
            Duration::from_millis(600),
            &[],
        ),
        // `/events/N`: N events, 100 ms apart.
        (_, p) if p.starts_with("/events/") => {
            let n: usize = p["/events/".len()..].parse().unwrap_or(1);
            let events = (1..=n).map(|i| format!("data: {i}\n\n")).collect();
            sse(rec, events, Duration::from_millis(100), &[])
        }
        (_, "/stream-forever") => {
            let events = (0..300).map(|i| format!("data: {i}\n\n")).collect();
            sse(rec, events, Duration::from_millis(100), &[])
        }
        _ => echo(&method, &uri, &headers, &body),
    }
}

fn echo(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                Value::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    let answer = json!({"method": method.as_str(), "uri": uri.to_string(), "headers": headers, "body_len": body.len()});
    ([("content-type", "application/json")], answer.to_string()).into_response()
}

fn mcp_post(rec: Arc<Recorder>, headers: &HeaderMap, body: &Bytes) -> Response {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "upstream got bad json").into_response();
    };
    let version = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // `x-test-list-bytes: N`: `delete_all`'s description is N bytes long (a huge list answer).
    let description = headers
        .get("x-test-list-bytes")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .map_or_else(String::new, |n| "x".repeat(n));
    // `x-test-other-bytes: N`: the answers to other methods carry N bytes of padding.
    let padding = headers
        .get("x-test-other-bytes")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .map(|n| "x".repeat(n));
    let answer = |msg: &Value| -> Option<Value> {
        let id = msg.get("id")?;
        let method = msg.get("method")?.as_str()?;
        let result = match method {
            "tools/list" => json!({"tools": [
                {"name": "add", "inputSchema": {"type": "object"}},
                {"name": "multiply", "inputSchema": {"type": "object"}},
                {"name": "delete_all", "description": description, "inputSchema": {"type": "object"}}
            ]}),
            "tools/call" => {
                json!({"content": [{"type": "text", "text": "called"}], "isError": false})
            }
            _ => match &padding {
                Some(padding) => json!({"method": method, "padding": padding}),
                None => json!({"method": method, "protocol_version": version}),
            },
        };
        Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    };
    // `x-test-raw-answer: TEXT`: the answer is exactly TEXT, as `application/json`.
    if let Some(raw) = headers
        .get("x-test-raw-answer")
        .and_then(|v| v.to_str().ok())
    {
        return ([("content-type", "application/json")], raw.to_string()).into_response();
    }
    if headers.get("x-test-answer").and_then(|v| v.to_str().ok()) == Some("sse-progress") {
        if let Some(result) = answer(&json) {
            // A progress notification, then the answer, EVENT_GAP apart.
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}});
            let events = [progress, result]
                .iter()
                .map(|message| format!("event: message\ndata: {message}\n\n"))
                .collect();
            return sse(rec, events, EVENT_GAP, &[]);
        }
    }
    if headers.get("x-test-answer").and_then(|v| v.to_str().ok()) == Some("sse-impostor") {
        if let Some(result) = answer(&json) {
            // First a message to the client that reuses the request's id, with a `method` and an
            // empty `result` (an answer to nothing, which must not pass for the answer), then the
            // real answer, EVENT_GAP apart.
            let impostor = json!({"jsonrpc": "2.0", "id": result["id"], "method": "roots/list", "result": {"tools": []}});
            let events = [impostor, result]
                .iter()
                .map(|message| format!("event: message\ndata: {message}\n\n"))
                .collect();
            return sse(rec, events, EVENT_GAP, &[]);
        }
    }
    if headers.get("x-test-answer").and_then(|v| v.to_str().ok()) == Some("sse-batch") {
        if let Value::Array(items) = &json {
            // Each answer of a batch as its own event, 100 ms apart.
            let events = items
                .iter()
                .filter_map(answer)
                .map(|message| format!("event: message\ndata: {message}\n\n"))
                .collect();
            return sse(rec, events, Duration::from_millis(100), &[]);
        }
    }
    if headers.get("x-test-answer").and_then(|v| v.to_str().ok()) == Some("sse") {
        if let Some(result) = answer(&json) {
            // One event, split mid-way into two writes 100 ms apart.
            let event = format!("event: message\ndata: {result}\n\n");
            let (head, tail) = event.split_at(event.len() / 2);
            return sse(
                rec,
                vec![head.to_string(), tail.to_string()],
                Duration::from_millis(100),
                &[],
            );
        }
    }
    if json.get("method").and_then(Value::as_str) == Some("slow/stream") {
        let id = json.get("id").cloned().unwrap_or(Value::Null);
        let mut events: Vec<String> = (1..=3)
            .map(|i| format!("event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progress\":{i}}}}}\n\n"))
            .collect();
        events.push(format!(
            "event: message\ndata: {}\n\n",
            json!({"jsonrpc": "2.0", "id": id, "result": {"done": true}})
        ));
        return sse(rec, events, EVENT_GAP, &[("mcp-session-id", "sess-123")]);
    }
    let result = match &json {
        Value::Array(items) => {
            let answers: Vec<Value> = items.iter().filter_map(answer).collect();
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        single => answer(single),
    };
    match result {
        Some(result) => (
            [
                ("content-type", "application/json"),
                ("mcp-session-id", "sess-123"),
            ],
            result.to_string(),
        )
            .into_response(),
        None => (StatusCode::ACCEPTED, [("mcp-session-id", "sess-123")]).into_response(),
    }
}

fn anthropic(rec: Arc<Recorder>, headers: &HeaderMap, body: &Bytes) -> Response {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("test-model")
        .to_string();
    // `x-test-say` makes the model say that text (streamed in 5-character deltas).
    let said = headers
        .get("x-test-say")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // `x-test-delta-bytes: N`: one text delta of N `x`s (an oversized event), or in a JSON
    // answer a text of N `x`s.
    let one_delta = headers
        .get("x-test-delta-bytes")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // `x-test-lone-surrogate: 1`: in a stream, the text comes as one delta whose JSON string
    // ends with a lone surrogate escape (`\ud800`), which strict JSON decoders refuse.
    let lone_surrogate = headers.contains_key("x-test-lone-surrogate");
    // `x-test-endless: 1`: a JSON answer whose body never ends (64 KiB of text every 10 ms);
    // `Recorder::abandoned_streams` counts it once the gateway stops reading.
    if headers.contains_key("x-test-endless") {
        return endless_json(rec);
    }
    // `x-test-cite: TEXT`: the text block cites a document, quoting TEXT (in a stream, as a
    // `citations_delta` after the text).
    let cited = headers
        .get("x-test-cite")
        .and_then(|v| v.to_str().ok())
        .map(|quote| json!({"type": "char_location", "cited_text": quote, "document_index": 0, "document_title": "doc", "start_char_index": 0, "end_char_index": quote.len()}));
    // `x-test-raw-answer: TEXT`: the JSON answer is exactly TEXT (labelled `application/json`
    // whatever it is).
    if let Some(raw) = headers
        .get("x-test-raw-answer")
        .and_then(|v| v.to_str().ok())
    {
        return ([("content-type", "application/json")], raw.to_string()).into_response();
    }
    if json.get("stream").and_then(Value::as_bool) != Some(true) {
        let text = match one_delta {
            Some(bytes) => "x".repeat(bytes),
            None => said.unwrap_or_else(|| "hi".to_string()),
        };
        let mut block = json!({"type": "text", "text": text});
        if let Some(citation) = &cited {
            block["citations"] = json!([citation]);
        }
        let answer = json!({
            "id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 3}
        });
        return ([("content-type", "application/json")], answer.to_string()).into_response();
    }
    let message_start = json!({"type": "message_start", "message": {"id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}});
    let mut events = vec![
        format!("event: message_start\ndata: {message_start}\n\n"),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    let words: Vec<String> = match (&said, one_delta) {
        (_, Some(bytes)) => vec!["x".repeat(bytes)],
        (Some(text), None) if lone_surrogate => vec![text.clone()],
        (said, None) => match said {
            Some(text) => text
                .chars()
                .collect::<Vec<_>>()
                .chunks(5)
                .map(|c| c.iter().collect())
                .collect(),
            None => ["one ", "two ", "three"]
                .iter()
                .map(|w| w.to_string())
                .collect(),
        },
    };
    for word in &words {
        let mut text = Value::from(word.as_str()).to_string();
        if lone_surrogate {
            text.insert_str(text.len() - 1, "\\ud800");
        }
        events.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n"
        ));
    }
    if let Some(citation) = cited {
        events.push(format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": citation}})
        ));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_string(),
    );
    events.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n".to_string());
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    sse(rec, events, EVENT_GAP, &[])
}

/// Notes that a slow request was dropped (its connection closed) before it was answered.
struct SlowGuard {
    rec: Arc<Recorder>,
    finished: bool,
}

impl Drop for SlowGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.abandoned_requests.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Notes that a stream ended early when dropped before its last event.
struct StreamGuard {
    rec: Arc<Recorder>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.abandoned_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A JSON answer that never ends: the start of a text block, then `x`s forever.
fn endless_json(rec: Arc<Recorder>) -> Response {
    let guard = StreamGuard {
        rec,
        finished: false,
    };
    let stream = futures::stream::unfold((0usize, guard), |(sent, guard)| async move {
        if sent > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let chunk = if sent == 0 {
            Bytes::from_static(b"{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"")
        } else {
            Bytes::from(vec![b'x'; 64 << 10])
        };
        Some((Ok::<_, Infallible>(chunk), (sent + 1, guard)))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}

/// An SSE response sending `events` with `gap` between them, each flushed as it is produced.
fn sse(
    rec: Arc<Recorder>,
    events: Vec<String>,
    gap: Duration,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let count = events.len();
    let stream = futures::stream::unfold(
        (
            events.into_iter().enumerate(),
            StreamGuard {
                rec,
                finished: false,
            },
        ),
        move |(mut iter, mut guard)| async move {
            let (i, event) = iter.next()?;
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            guard
                .rec
                .event_times
                .lock()
                .expect("lock")
                .push(Instant::now());
            if i + 1 == count {
                guard.finished = true;
            }
            Some((Ok::<_, Infallible>(Bytes::from(event)), (iter, guard)))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert("content-type", "text/event-stream".parse().expect("header"));
    headers.insert("cache-control", "no-cache".parse().expect("header"));
    for (name, value) in extra {
        headers.insert(*name, value.parse().expect("header"));
    }
    response
}

//! Scenario `stall`: an upstream sends the head and a few events of an SSE answer, then nothing,
//! its connection left open. The client must keep the events already sent; the gateway must end
//! the stream at the route's `upstream.timeout` as docs/architecture.md describes (the client's
//! response cut short: no final chunk, which every HTTP client reports as an error; `error`
//! `upstream.timeout` in the audit record), close the upstream connection, and hold no file
//! descriptor afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_testkit::load::{self, Figures};
use tollgate_testkit::sse::SseReader;
use tollgate_testkit::RunningGateway;

use crate::setup::{self, Outcome, Upstreams, Verdict};

/// Text deltas the upstream sends before it stalls.
const DELTAS: usize = 6;
/// Each delta's text (with its number in front): longer than `prompt-guard`'s 64-character
/// hold-back in all.
const DELTA_TEXT: &str = "stalled words of a long answer";
/// Longest the stalling upstream waits for the gateway to close its connection.
const UPSTREAM_PATIENCE: Duration = Duration::from_secs(120);

/// The knobs.
pub struct StallSettings {
    /// Stalled streams per route, all at once.
    pub streams: usize,
    /// The routes' `upstream.timeout`.
    pub timeout: Duration,
}

impl StallSettings {
    pub fn from_env(quick: bool) -> Self {
        Self {
            streams: if quick {
                10
            } else {
                load::env_number("TOLLGATE_SOAK_STALLS", 200)
            },
            timeout: Duration::from_millis(if quick {
                1000
            } else {
                load::env_number("TOLLGATE_SOAK_STALL_TIMEOUT_MS", 2000) as u64
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stalling upstream.

/// What the stalling upstream saw.
#[derive(Default)]
struct StallLog {
    /// Requests answered (one per connection).
    answered: AtomicUsize,
    /// For each connection the gateway closed: from the last event written to the close.
    closed_after: Mutex<Vec<Duration>>,
    /// Connections still open after [`UPSTREAM_PATIENCE`].
    never_closed: AtomicUsize,
}

/// An SSE upstream that answers every request with the head and the first events of an
/// Anthropic stream, then stalls with the connection open until the gateway closes it.
pub struct StallUpstream {
    pub addr: std::net::SocketAddr,
    log: Arc<StallLog>,
}

impl StallUpstream {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("stall listener");
        let addr = listener.local_addr().expect("stall address");
        let log = Arc::new(StallLog::default());
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(stall(socket, shared.clone()));
            }
        });
        Self { addr, log }
    }

    fn answered(&self) -> usize {
        self.log.answered.load(Ordering::Relaxed)
    }

    fn closed(&self) -> usize {
        self.log.closed_after.lock().expect("lock").len()
    }
}

/// The events sent before the stall, each in its own chunk.
fn stalled_events() -> Vec<String> {
    let mut events = vec![
        sse(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_stall",
            "type": "message", "role": "assistant", "model": "stall-1", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for i in 0..DELTAS {
        events.push(sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": format!("{i} {DELTA_TEXT} ")}}),
        ));
    }
    events
}

fn sse(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Reads one request (head and `Content-Length` body), answers the stalled stream, and waits
/// for the gateway to close the connection.
async fn stall(mut socket: TcpStream, log: Arc<StallLog>) {
    if read_request(&mut socket).await.is_none() {
        return;
    }
    log.answered.fetch_add(1, Ordering::Relaxed);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for event in stalled_events() {
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stalled_at = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(UPSTREAM_PATIENCE, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    match closed {
        Ok(()) => log
            .closed_after
            .lock()
            .expect("lock")
            .push(stalled_at.elapsed()),
        Err(_) => {
            log.never_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads a request's head and its `Content-Length` body; `None` if the connection ended first.
async fn read_request(socket: &mut TcpStream) -> Option<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if request.len() >= end + 4 + length {
            return Some(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// What one stalled stream gave its client.
struct Stalled {
    status: u16,
    /// Events received before the cut.
    events: usize,
    /// The text of the deltas received.
    text: String,
    /// The body ended with an error (as it must), and the error's chain.
    error: Option<String>,
    /// From the last event received to the end of the body.
    cut_after: Duration,
}

/// One streamed request to `url`, read until the body ends.
async fn stalled_stream(client: reqwest::Client, url: String, token: Option<String>) -> Stalled {
    let body = json!({"model": "stall-1", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "tell me a long story"}]});
    let mut request = client.post(&url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut stalled = Stalled {
        status: 0,
        events: 0,
        text: String::new(),
        error: None,
        cut_after: Duration::ZERO,
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            stalled.error = Some(format!("no answer: {}", error_chain(&e)));
            return stalled;
        }
    };
    stalled.status = response.status().as_u16();
    let mut reader = SseReader::new(response);
    let mut last = Instant::now();
    loop {
        match reader.next_event().await {
            Ok(Some(event)) => {
                last = event.at;
                stalled.events += 1;
                stalled.text.push_str(&delta_text(&event.text));
            }
            Ok(None) => break,
            Err(e) => {
                stalled.error = Some(error_chain(&e));
                break;
            }
        }
    }
    stalled.cut_after = last.elapsed();
    stalled
}

/// The text of a `content_block_delta` event ("" for other events).
fn delta_text(event: &str) -> String {
    event
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|data| Some(data.pointer("/delta/text")?.as_str()?.to_string()))
        .collect()
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The audit records of `route` once there are `count` of them (up to 5 s).
async fn audit_records(gateway: &RunningGateway, route: &str, count: usize) -> Vec<Value> {
    let path = gateway.dir().join("audit.jsonl");
    let read = || -> Vec<Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["route"] == route)
            .collect()
    };
    setup::settles(Duration::from_secs(5), || read().len() >= count).await;
    read()
}

/// Figures of one route's stalled streams.
struct RouteFigures {
    route: &'static str,
    streams: usize,
    status_200: usize,
    /// Streams whose body ended with an error, as it must.
    cut: usize,
    /// Streams that received every event the upstream sent.
    all_events: usize,
    /// Fewest and most events received.
    events: (usize, usize),
    /// Shortest text received (deltas joined).
    shortest_text: usize,
    /// Last event → end of the body, per stream.
    cut_after: Figures,
    /// The first error a client saw.
    error: String,
    /// Audit records with `error = upstream.timeout`, of `streams`.
    audited_timeouts: usize,
    /// Upstream connections the gateway closed (of those it opened), and after how long.
    upstream_closed: usize,
    upstream_opened: usize,
    upstream_closed_after: Figures,
    fds: (usize, usize),
    fds_settled: bool,
}

async fn run_route(
    gateway: &RunningGateway,
    upstreams: &Upstreams,
    route: &'static str,
    settings: &StallSettings,
    token: &str,
) -> RouteFigures {
    let fds_before = gateway.open_fds();
    let (answered_before, closed_before) = (upstreams.stall.answered(), upstreams.stall.closed());
    let client = reqwest::Client::builder()
        .timeout(settings.timeout * 10 + Duration::from_secs(10))
        .build()
        .expect("client");
    let url = gateway.url(&format!("/{route}/v1/messages"));
    let token = (route == "stall").then(|| token.to_string());
    let streams: Vec<_> = (0..settings.streams)
        .map(|_| tokio::spawn(stalled_stream(client.clone(), url.clone(), token.clone())))
        .collect();
    let mut results = Vec::new();
    for stream in streams {
        results.push(stream.await.expect("stalled stream"));
    }
    drop(client);
    let sent = DELTAS + 2;
    let mut cut_after = Figures::default();
    for r in results.iter().filter(|r| r.error.is_some()) {
        cut_after.record(r.cut_after);
    }
    let audited = audit_records(gateway, route, settings.streams).await;
    // The gateway closes its upstream connection when it gives up (the verdict counts them).
    setup::settles(settings.timeout + Duration::from_secs(5), || {
        upstreams.stall.closed() - closed_before >= upstreams.stall.answered() - answered_before
    })
    .await;
    let fds_settled =
        setup::settles(Duration::from_secs(5), || gateway.open_fds() <= fds_before).await;
    let mut upstream_closed_after = Figures::default();
    for held in &upstreams.stall.log.closed_after.lock().expect("lock")[closed_before..] {
        upstream_closed_after.record(*held);
    }
    RouteFigures {
        route,
        streams: settings.streams,
        status_200: results.iter().filter(|r| r.status == 200).count(),
        cut: results.iter().filter(|r| r.error.is_some()).count(),
        all_events: results.iter().filter(|r| r.events == sent).count(),
        events: (
            results.iter().map(|r| r.events).min().unwrap_or(0),
            results.iter().map(|r| r.events).max().unwrap_or(0),
        ),
        shortest_text: results.iter().map(|r| r.text.len()).min().unwrap_or(0),
        cut_after: cut_after.finish(0.0),
        error: results
            .iter()
            .find_map(|r| r.error.clone())
            .unwrap_or_default(),
        audited_timeouts: audited
            .iter()
            .filter(|r| r["error"] == "upstream.timeout" && r["status"] == 200)
            .count(),
        upstream_closed: upstreams.stall.closed() - closed_before,
        upstream_opened: upstreams.stall.answered() - answered_before,
        upstream_closed_after: upstream_closed_after.finish(0.0),
        fds: (fds_before, gateway.open_fds()),
        fds_settled,
    }
}

/// Runs the scenario on a gateway of its own.
pub async fn run(upstreams: &Upstreams, routes: &str, threads: usize, quick: bool) -> Outcome {
    let settings = StallSettings::from_env(quick);
    let gateway = setup::start_gateway(routes, threads, &[]).await;
    let token = setup::token("stall-user", "math-users", Duration::from_secs(3600));
    let mut figures = Vec::new();
    for route in ["stall-plain", "stall"] {
        figures.push(run_route(&gateway, upstreams, route, &settings, &token).await);
    }
    let timeout_ms = settings.timeout.as_secs_f64() * 1000.0;
    let sent = DELTAS + 2;
    let full_text = (0..DELTAS)
        .map(|i| format!("{i} {DELTA_TEXT} ").len())
        .sum::<usize>();
    println!(
        "\n## stall: an upstream that stops mid-stream ({} streams per route at once, \
         upstream.timeout {timeout_ms:.0} ms)\n",
        settings.streams
    );
    println!(
        "The upstream sends the head, `message_start`, `content_block_start` and {DELTAS} text \
         deltas ({full_text} characters), then nothing, its connection open.\n"
    );
    println!(
        "| route | 200 | cut short (error) | all {sent} events | events received min–max | \
         text received (min, of {full_text}) | last event → cut p50 / max ms | audit \
         `upstream.timeout` | upstream conns closed by the gateway | after p50 / max ms | \
         gateway fds before → after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {} | {} | {}–{} | {} | {:.0} / {:.0} | {} | {} of {} | {:.0} / {:.0} | {} → {} |",
            f.route,
            f.status_200,
            f.cut,
            f.all_events,
            f.events.0,
            f.events.1,
            f.shortest_text,
            f.cut_after.ms(0.5),
            f.cut_after.ms(1.0),
            f.audited_timeouts,
            f.upstream_closed,
            f.upstream_opened,
            f.upstream_closed_after.ms(0.5),
            f.upstream_closed_after.ms(1.0),
            f.fds.0,
            f.fds.1
        );
    }
    if let Some(f) = figures.first() {
        println!(
            "\nWhat the client's HTTP library reports at the cut: `{}`",
            f.error
        );
    }
    let (warnings, first) = setup::log_warnings(&gateway);
    println!("Gateway log: {warnings} warning lines, e.g. {first:?}");
    let mut verdicts = Vec::new();
    let on_time = |f: &Figures| {
        f.requests > 0 && f.ms(0.0) >= timeout_ms * 0.9 && f.ms(1.0) <= timeout_ms + 1500.0
    };
    for f in &figures {
        let n = f.streams;
        let plain = f.route == "stall-plain";
        verdicts.push(Verdict::new(
            f.status_200 == n && f.cut == n,
            format!(
                "{}: every stream answered 200 and then cut short with an error ({} and {} of {n})",
                f.route, f.status_200, f.cut
            ),
        ));
        verdicts.push(if plain {
            Verdict::new(
                f.all_events == n,
                format!(
                    "{}: the client kept every event sent before the stall ({} of {n})",
                    f.route, f.all_events
                ),
            )
        } else {
            Verdict::new(
                f.events.0 >= 2 && f.shortest_text > 0,
                format!(
                    "{}: the client kept the events the gateway had released (at least {} \
                     events, {} of {full_text} characters: prompt-guard holds the last 64 back \
                     and drops them at the cut)",
                    f.route, f.events.0, f.shortest_text
                ),
            )
        });
        verdicts.push(Verdict::new(
            on_time(&f.cut_after),
            format!(
                "{}: cut at the route's timeout (last event → cut {:.0}–{:.0} ms, timeout \
                 {timeout_ms:.0} ms)",
                f.route,
                f.cut_after.ms(0.0),
                f.cut_after.ms(1.0)
            ),
        ));
        verdicts.push(Verdict::new(
            f.audited_timeouts == n,
            format!(
                "{}: audit records with status 200 and error `upstream.timeout`: {} of {n}",
                f.route, f.audited_timeouts
            ),
        ));
        verdicts.push(Verdict::new(
            f.upstream_closed == f.upstream_opened && f.fds_settled,
            format!(
                "{}: no leak: {} of {} upstream connections closed by the gateway, its fds {} \
                 before and {} after",
                f.route, f.upstream_closed, f.upstream_opened, f.fds.0, f.fds.1
            ),
        ));
    }
    let report = json!({
        "streams_per_route": settings.streams, "timeout_ms": timeout_ms,
        "events_sent": sent, "text_sent": full_text,
        "routes": figures.iter().map(|f| json!({
            "route": f.route, "status_200": f.status_200, "cut": f.cut,
            "all_events": f.all_events, "events_min": f.events.0, "events_max": f.events.1,
            "shortest_text": f.shortest_text, "cut_after": f.cut_after.json(),
            "audited_timeouts": f.audited_timeouts, "upstream_closed": f.upstream_closed,
            "upstream_opened": f.upstream_opened,
            "upstream_closed_after": f.upstream_closed_after.json(),
            "fds_before": f.fds.0, "fds_after": f.fds.1, "error": f.error,
        })).collect::<Vec<_>>(),
        "never_closed": upstreams.stall.log.never_closed.load(Ordering::Relaxed),
        "log_warnings": warnings,
    });
    let outcome = Outcome {
        scenario: "stall",
        verdicts,
        report,
    };
    outcome.print_verdicts();
    outcome
}

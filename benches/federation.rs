//! Federation benchmark: what a federated MCP route costs over a plain one, through the release
//! gateway binary on loopback. Three measurements, each against a target of the federation issue
//! (see docs/benchmarks.md):
//!
//! 1. `tools/call` of the demo math server's `multiply` directly, through a plain MCP route,
//!    through a federated route over that one server (2025-era session), and through the
//!    federated route as a stateless 2026-07-28 client: sequential and closed-loop latencies,
//!    and the gateway's CPU per call. Target: federated − plain under 0.3 ms at p50.
//! 2. `tools/list` through a federated route over five stub servers answering after 5 to 25 ms:
//!    latency over the slowest server's (asked directly), and where it goes (before and after
//!    that server). Target: at most 1 ms.
//! 3. 10,000 client sessions opened (and one call each) through the five-server route: the
//!    gateway's resident memory before and after. Target: no growth beyond noise.
//!
//! `cargo bench -p tollgate --bench federation`; knobs: TOLLGATE_BENCH_CONNECTIONS (8),
//! TOLLGATE_BENCH_SECONDS (5), TOLLGATE_BENCH_THREADS (gateway threads, 1),
//! TOLLGATE_BENCH_SESSIONS (10000), TOLLGATE_BENCH_QUICK=1 or `--test` for a smoke run of a few
//! seconds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tollgate::demo::{serve_mcp_math, DemoUpstreams, EchoOptions};
use tollgate_testkit::load::{self, table_head, Figures, LoopSettings};
use tollgate_testkit::mcp::{self, Session};
use tollgate_testkit::{GatewayBuilder, RunningGateway};

/// How long each stub server takes to answer `tools/list`.
const LIST_DELAYS_MS: [u64; 5] = [5, 10, 15, 20, 25];
/// Tools each stub server lists.
const STUB_TOOLS: usize = 20;

struct Settings {
    quick: bool,
    /// The closed loops (also: how many connections open sessions at once).
    load: LoopSettings,
    /// Gateway worker threads.
    threads: usize,
    /// Sequential measurements are made in this many rounds, the paths alternating, so that a
    /// slow minute of the machine falls on all of them.
    rounds: usize,
    /// Sequential `tools/call`s per path and round.
    calls: usize,
    /// Sequential `tools/list`s per path and round.
    lists: usize,
    /// Client sessions per batch of the memory measurement.
    sessions: usize,
}

impl Settings {
    fn from_env() -> Self {
        let quick = load::quick();
        Self {
            quick,
            load: LoopSettings::from_env(8, 5, Duration::from_secs(1)),
            threads: load::gateway_threads(),
            rounds: if quick { 1 } else { 5 },
            calls: if quick { 20 } else { 400 },
            lists: if quick { 5 } else { 40 },
            sessions: if quick {
                200
            } else {
                load::env_number("TOLLGATE_BENCH_SESSIONS", 10_000)
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stub MCP servers: hand-written JSON-RPC, handshake era only, answers as JSON.

/// A 2025-era MCP server that keeps no state: `initialize` hands out a fresh session id (any id
/// is accepted later), `server/discover` is an unknown method (so the gateway speaks the
/// handshake era with it), `tools/list` answers after `list_delay`, `tools/call` at once.
struct StubServer {
    name: String,
    list_delay: Duration,
    /// `{"tools": [...]}`, serialized once.
    tools: String,
    sessions: AtomicU64,
    /// When the last `tools/list` arrived, and when its answer was handed to the server.
    last_list: Mutex<Option<(Instant, Instant)>>,
}

/// A running stub.
struct Stub {
    addr: SocketAddr,
    server: Arc<StubServer>,
}

impl StubServer {
    /// Serves a stub named `name` at `/mcp` on a free loopback port.
    async fn start(name: &str, list_delay: Duration) -> Stub {
        let tools: Vec<Value> = (0..STUB_TOOLS)
            .map(|i| {
                json!({
                    "name": format!("tool_{i:02}"),
                    "description": format!("Tool {i} of the {name} stub: takes a query and a limit."),
                    "inputSchema": {"type": "object", "properties": {
                        "query": {"type": "string", "description": "What to look for"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100}},
                        "required": ["query"]},
                })
            })
            .collect();
        let stub = Arc::new(StubServer {
            name: name.to_string(),
            list_delay,
            tools: json!({ "tools": tools }).to_string(),
            sessions: AtomicU64::new(0),
            last_list: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route(
                "/mcp",
                axum::routing::post(answer)
                    .delete(|| async { StatusCode::OK })
                    .get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
            )
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("stub listener");
        let addr = listener.local_addr().expect("stub address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { addr, server: stub }
    }

    /// When the last `tools/list` arrived and when it was answered.
    fn last_list(&self) -> Option<(Instant, Instant)> {
        *self.last_list.lock().expect("lock")
    }
}

/// A JSON-RPC answer as a JSON body.
fn json_answer(status: StatusCode, id: &Value, outcome: &str) -> Response {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},{outcome}}}"#);
    (status, [("content-type", "application/json")], body).into_response()
}

async fn answer(State(stub): State<Arc<StubServer>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        let error = r#""error":{"code":-32700,"message":"Parse error"}"#;
        return json_answer(StatusCode::BAD_REQUEST, &Value::Null, error);
    };
    let Some(id) = message.get("id") else {
        return StatusCode::ACCEPTED.into_response();
    };
    let method = message["method"].as_str().unwrap_or_default();
    let unknown = || {
        let error = format!(r#""error":{{"code":-32601,"message":"Method not found: {method}"}}"#);
        json_answer(StatusCode::OK, id, &error)
    };
    match method {
        "initialize" => {
            let version = message["params"]["protocolVersion"]
                .as_str()
                .unwrap_or(mcp::HANDSHAKE_VERSION);
            let result = json!({"protocolVersion": version, "capabilities": {"tools": {}},
                                "serverInfo": {"name": stub.name, "version": "1.0.0"}});
            let session = stub.sessions.fetch_add(1, Ordering::Relaxed);
            let mut response = json_answer(StatusCode::OK, id, &format!(r#""result":{result}"#));
            let session = format!("{session:032x}").parse().expect("session header");
            response.headers_mut().insert("mcp-session-id", session);
            response
        }
        "server/discover" => unknown(),
        _ if !headers.contains_key("mcp-session-id") => {
            let error = r#""error":{"code":-32600,"message":"Bad Request: Missing session ID"}"#;
            json_answer(StatusCode::BAD_REQUEST, &Value::Null, error)
        }
        "tools/list" => {
            let received = Instant::now();
            tokio::time::sleep(stub.list_delay).await;
            let response = json_answer(StatusCode::OK, id, &format!(r#""result":{}"#, stub.tools));
            *stub.last_list.lock().expect("lock") = Some((received, Instant::now()));
            response
        }
        "tools/call" => {
            let tool = message["params"]["name"].as_str().unwrap_or_default();
            let result = json!({"content": [{"type": "text", "text": format!("{} ran {tool}", stub.name)}],
                                "isError": false});
            json_answer(StatusCode::OK, id, &format!(r#""result":{result}"#))
        }
        _ => unknown(),
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway and its clients.

/// The gateway's routes: `/plain` (the demo math server proxied), `/federated` (the same server
/// federated with prefix `math`) and `/five` (the five stubs federated, prefixes `s1`…`s5`).
fn routes(math: SocketAddr, stubs: &[SocketAddr]) -> String {
    let mut config = format!(
        r#"
[mcp_server.math]
url = "http://{math}/mcp"
prefix = "math"

[[route]]
name = "plain"
match = {{ path_prefix = "/plain" }}
upstream = {{ url = "http://{math}/mcp", kind = "mcp" }}

[[route]]
name = "federated"
match = {{ path_prefix = "/federated" }}
upstream = {{ kind = "mcp", servers = ["math"] }}
"#
    );
    let names: Vec<String> = (1..=stubs.len()).map(|i| format!("\"s{i}\"")).collect();
    for (i, stub) in stubs.iter().enumerate() {
        config.push_str(&format!(
            "\n[mcp_server.s{}]\nurl = \"http://{stub}/mcp\"\ntimeout = \"5s\"\n",
            i + 1
        ));
    }
    config.push_str(&format!(
        "\n[[route]]\nname = \"five\"\nmatch = {{ path_prefix = \"/five\" }}\nupstream = {{ kind = \"mcp\", servers = [{}] }}\n",
        names.join(", ")
    ));
    config
}

async fn start_gateway(routes: &str, threads: usize) -> RunningGateway {
    GatewayBuilder::new(env!("CARGO_BIN_EXE_tollgate"), routes)
        .threads(threads)
        .log_filter("warn")
        .telemetry_line("audit_log = \"off\"")
        .start()
        .await
}

/// How a client speaks: within the 2025-era session it opened, or statelessly (2026-07-28).
#[derive(Clone)]
enum Caller {
    Session(Session),
    Stateless,
}

impl Caller {
    /// A 2025-era session at `url` (the run stops if it cannot be opened).
    async fn session(client: &reqwest::Client, url: &str) -> Self {
        match Session::open(client, url).await {
            Ok(session) => Caller::Session(session),
            Err(e) => panic!("cannot open a session at {url}: {e}"),
        }
    }

    fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        message: &Value,
    ) -> reqwest::RequestBuilder {
        match self {
            Caller::Session(session) => session.post(client, url, message),
            Caller::Stateless => mcp::post_modern(client, url, message.clone()),
        }
    }
}

/// Sends `request`; whether it was answered 200 with a JSON-RPC result.
async fn answered(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(response) if response.status() == 200 => response
            .text()
            .await
            .is_ok_and(|text| text.contains(r#""result""#) && !text.contains(r#""error""#)),
        _ => false,
    }
}

/// One way of calling a tool: where, as whom, which tool.
struct CallPath {
    name: &'static str,
    url: String,
    tool: &'static str,
    stateless: bool,
}

impl CallPath {
    fn message(&self) -> Value {
        mcp::tool_call(1, self.tool, json!({"a": 6, "b": 7}))
    }

    async fn caller(&self, client: &reqwest::Client) -> Caller {
        if self.stateless {
            Caller::Stateless
        } else {
            Caller::session(client, &self.url).await
        }
    }

    /// Calls once and fails the run unless the answer is the product.
    async fn check(&self, client: &reqwest::Client) {
        let caller = self.caller(client).await;
        let response = caller.post(client, &self.url, &self.message()).send().await;
        let answer = mcp::Answer::read(response.expect("call"))
            .await
            .expect("answer");
        let messages = answer.messages();
        let text = messages
            .iter()
            .find_map(|m| m.pointer("/result/content/0/text")?.as_str());
        assert_eq!(text, Some("42"), "{}: {answer:?}", self.name);
    }
}

/// `calls` sequential calls on one connection and one caller.
async fn sequential_calls(
    path: &CallPath,
    caller: &Caller,
    client: &reqwest::Client,
    calls: usize,
) -> Figures {
    let message = path.message();
    load::sequential(calls, |_| {
        load::timed(answered(caller.post(client, &path.url, &message)))
    })
    .await
}

/// The closed loop on `path`, a caller (a session of its own, or none) per connection.
async fn closed_loop_calls(path: &CallPath, settings: &Settings) -> Figures {
    let client = reqwest::Client::new();
    let mut callers = Vec::new();
    for _ in 0..settings.load.connections {
        callers.push(path.caller(&client).await);
    }
    let (url, message) = (path.url.clone(), path.message());
    load::closed_loop(&settings.load, move |worker, client| {
        answered(callers[worker].post(&client, &url, &message))
    })
    .await
}

/// One path's figures, with the gateway's CPU time over its requests where it was measured.
struct Row {
    name: &'static str,
    figures: Figures,
    gateway_cpu: Option<Duration>,
}

impl Row {
    /// The gateway's CPU time per request in µs (`/proc` counts in 10 ms ticks: an estimate
    /// over many requests).
    fn cpu_us(&self) -> Option<f64> {
        let requests = (self.figures.requests + self.figures.errors).max(1) as f64;
        Some(self.gateway_cpu?.as_secs_f64() * 1e6 / requests)
    }
}

/// Sequential measurements in interleaved rounds: each round runs every path once, in order
/// (`run(i)` runs path `i`), so that a slow minute of the machine falls on all paths; the
/// gateway's CPU time is summed over each path's runs.
async fn in_rounds<F, Fut>(
    gateway: &RunningGateway,
    names: &[&'static str],
    rounds: usize,
    mut run: F,
) -> Vec<Row>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Figures>,
{
    let mut rows: Vec<Row> = names
        .iter()
        .map(|&name| Row {
            name,
            figures: Figures::default(),
            gateway_cpu: Some(Duration::ZERO),
        })
        .collect();
    for _ in 0..rounds {
        for (i, row) in rows.iter_mut().enumerate() {
            let cpu = gateway.cpu_time();
            row.figures.merge(run(i).await);
            row.gateway_cpu = Some(row.gateway_cpu.unwrap_or_default() + gateway.cpu_time() - cpu);
        }
    }
    for row in &mut rows {
        row.figures = std::mem::take(&mut row.figures).finish(0.0);
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// 1. tools/call: plain vs federated.

struct CallFigures {
    sequential: Vec<Row>,
    closed: Vec<Row>,
}

/// The demo math server on a loopback port of its own. Its connections have `TCP_NODELAY`
/// (inherited from the listening socket on Linux): as `DemoUpstreams` serves it, without, the
/// last bytes of each streamed answer wait for the peer's delayed ACK, about 40 ms (see
/// [`stock_demo_calls`]).
async fn start_math_server() -> SocketAddr {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_nodelay(true).expect("TCP_NODELAY");
    socket.bind(any).expect("bind");
    let listener = socket.listen(1024).expect("listen");
    let addr = listener.local_addr().expect("math server address");
    tokio::spawn(serve_mcp_math(listener, std::future::pending()));
    addr
}

/// Sequential calls straight to the demo math server as `DemoUpstreams` serves it (no
/// `TCP_NODELAY`): a figure for the record, not a target.
async fn stock_demo_calls(calls: usize) -> Figures {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let demo = DemoUpstreams::start(any, any, EchoOptions::default()).expect("demo upstreams");
    let path = CallPath {
        name: "stock demo server",
        url: format!("http://{}/mcp", demo.mcp_addr()),
        tool: "multiply",
        stateless: false,
    };
    let client = reqwest::Client::new();
    let caller = path.caller(&client).await;
    let figures = sequential_calls(&path, &caller, &client, calls).await;
    demo.shutdown();
    figures
}

async fn tool_calls(
    gateway: &RunningGateway,
    math: SocketAddr,
    settings: &Settings,
) -> CallFigures {
    let paths = [
        CallPath {
            name: "math server directly, 2025 session",
            url: format!("http://{math}/mcp"),
            tool: "multiply",
            stateless: false,
        },
        CallPath {
            name: "plain MCP route, 2025 session",
            url: gateway.url("/plain"),
            tool: "multiply",
            stateless: false,
        },
        CallPath {
            name: "federated (1 server), 2025 session",
            url: gateway.url("/federated"),
            tool: "math__multiply",
            stateless: false,
        },
        CallPath {
            name: "federated (1 server), 2026-07-28 stateless",
            url: gateway.url("/federated"),
            tool: "math__multiply",
            stateless: true,
        },
    ];
    let client = reqwest::Client::new();
    let mut callers = Vec::new();
    for path in &paths {
        path.check(&client).await;
        let caller = path.caller(&client).await;
        // Warm-up: pooled connections on both sides, the route's caches.
        sequential_calls(path, &caller, &client, settings.calls / 4).await;
        callers.push(caller);
    }
    let names: Vec<&str> = paths.iter().map(|p| p.name).collect();
    let mut sequential = in_rounds(gateway, &names, settings.rounds, |i| {
        sequential_calls(&paths[i], &callers[i], &client, settings.calls)
    })
    .await;
    let mut closed = Vec::new();
    for path in &paths {
        closed.push(Row {
            name: path.name,
            figures: closed_loop_calls(path, settings).await,
            gateway_cpu: None,
        });
    }
    // The gateway does nothing for the direct path: its CPU then is the idle process's.
    sequential[0].gateway_cpu = None;
    CallFigures { sequential, closed }
}

// ---------------------------------------------------------------------------------------------
// 2. tools/list over five servers.

/// Where a list's time goes, medians over sequential lists: from the client's send to the
/// slowest server's receipt, and from its answer to the client's last byte.
struct ListBreakdown {
    to_server: Duration,
    back: Duration,
}

struct ListFigures {
    rows: Vec<Row>,
    breakdown: Vec<ListBreakdown>,
}

async fn tool_lists(gateway: &RunningGateway, slowest: &Stub, settings: &Settings) -> ListFigures {
    let client = reqwest::Client::new();
    let direct_url = format!("http://{}/mcp", slowest.addr);
    let five = gateway.url("/five");
    let list = mcp::request(1, "tools/list", None);
    let paths = [
        (
            "slowest server directly (25 ms), 2025 session",
            direct_url.clone(),
            Caller::session(&client, &direct_url).await,
        ),
        (
            "federated (5 servers), 2025 session",
            five.clone(),
            Caller::session(&client, &five).await,
        ),
        (
            "federated (5 servers), 2026-07-28 stateless",
            five.clone(),
            Caller::Stateless,
        ),
    ];
    for (name, url, caller) in &paths[1..] {
        let answer =
            mcp::Answer::read(caller.post(&client, url, &list).send().await.expect("list"))
                .await
                .expect("list answer");
        let tools = answer
            .messages()
            .first()
            .and_then(|m| Some(m.pointer("/result/tools")?.as_array()?.len()));
        assert_eq!(
            tools,
            Some(LIST_DELAYS_MS.len() * STUB_TOOLS),
            "{name}: {answer:?}"
        );
    }
    let names: Vec<&str> = paths.iter().map(|(name, ..)| *name).collect();
    let mut rows = in_rounds(gateway, &names, settings.rounds, |i| {
        let (_, url, caller) = &paths[i];
        load::sequential(settings.lists, |_| {
            load::timed(answered(caller.post(&client, url, &list)))
        })
    })
    .await;
    rows[0].gateway_cpu = None;
    let mut breakdown = Vec::new();
    for (_, url, caller) in &paths {
        let (mut to_server, mut back) = (Vec::new(), Vec::new());
        for _ in 0..settings.lists {
            let sent = Instant::now();
            let ok = answered(caller.post(&client, url, &list)).await;
            let done = Instant::now();
            if let (true, Some((received, answered))) = (ok, slowest.server.last_list()) {
                to_server.push(received.saturating_duration_since(sent));
                back.push(done.saturating_duration_since(answered));
            }
        }
        breakdown.push(ListBreakdown {
            to_server: median(&mut to_server),
            back: median(&mut back),
        });
    }
    ListFigures { rows, breakdown }
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// 3. Sealed sessions and the gateway's memory.

/// Resident memory around two batches of sessions.
struct SessionMemory {
    sessions: usize,
    /// KiB: after the warm-up, after the first batch, after the second.
    rss_kib: [u64; 3],
    peak_kib: u64,
    /// Each session's `initialize`, `notifications/initialized` and one `tools/call`.
    open_and_call: Figures,
    id_bytes: usize,
}

/// Opens `count` sessions at `url` over `workers` connections, one `tools/call` on each (of
/// server `n % 5`'s first tool); the time each took, and the length of the last session id.
async fn open_sessions(url: &str, count: usize, workers: usize) -> (Figures, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let url = url.to_string();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut figures, mut id_bytes) = (Figures::default(), 0);
                for n in (worker..count).step_by(workers) {
                    let begun = Instant::now();
                    let Ok(session) = Session::open(&client, &url).await else {
                        figures.fail();
                        continue;
                    };
                    id_bytes = session.id.len();
                    let call = mcp::tool_call(
                        1,
                        &format!("s{}__tool_00", n % 5 + 1),
                        json!({"query": "x"}),
                    );
                    if answered(session.post(&client, &url, &call)).await {
                        figures.record(begun.elapsed());
                    } else {
                        figures.fail();
                    }
                }
                (figures, id_bytes)
            })
        })
        .collect();
    let (mut figures, mut id_bytes) = (Figures::default(), 0);
    for task in tasks {
        let (part, bytes) = task.await.expect("session worker");
        figures.merge(part);
        id_bytes = id_bytes.max(bytes);
    }
    (figures.finish(started.elapsed().as_secs_f64()), id_bytes)
}

async fn session_memory(
    stubs: &[SocketAddr],
    math: SocketAddr,
    settings: &Settings,
) -> SessionMemory {
    // A gateway of its own, so that the other measurements leave nothing in its memory.
    let gateway = start_gateway(&routes(math, stubs), settings.threads).await;
    let url = gateway.url("/five");
    let settle = || tokio::time::sleep(Duration::from_secs(if settings.quick { 0 } else { 2 }));
    let (warm, _) = open_sessions(&url, settings.sessions / 10, settings.load.connections).await;
    settle().await;
    let before = gateway.rss_kib();
    let (first, id_bytes) = open_sessions(&url, settings.sessions, settings.load.connections).await;
    settle().await;
    let after_first = gateway.rss_kib();
    let (second, _) = open_sessions(&url, settings.sessions, settings.load.connections).await;
    settle().await;
    let after_second = gateway.rss_kib();
    let mut open_and_call = first;
    open_and_call.merge(second);
    open_and_call.errors += warm.errors;
    SessionMemory {
        sessions: settings.sessions,
        rss_kib: [before, after_first, after_second],
        peak_kib: gateway.peak_rss_kib(),
        open_and_call: open_and_call.finish(0.0),
        id_bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Reports: each measurement prints its tables and verdict and gives its part of the JSON report.

fn verdict(holds: bool) -> &'static str {
    if holds {
        "holds"
    } else {
        "DOES NOT HOLD"
    }
}

/// Rows of one table as JSON.
fn rows_json(rows: &[Row]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| json!({"path": row.name, "figures": row.figures.json(), "gateway_cpu_us": row.cpu_us()}))
        .collect();
    Value::Array(rows)
}

/// Prints one table of rows, with the gateway's CPU per request if any row has it.
fn print_table(rate: &str, rows: &[Row]) {
    let with_cpu = rows.iter().any(|r| r.gateway_cpu.is_some());
    let head = table_head("path", rate);
    if with_cpu {
        let (names, rule) = head.split_once('\n').expect("two lines");
        println!("{names} gateway CPU µs/request |\n{rule}---|");
    } else {
        println!("{head}");
    }
    for row in rows {
        let cpu = match (with_cpu, row.cpu_us()) {
            (false, _) => String::new(),
            (true, Some(us)) => format!(" {us:.0} |"),
            (true, None) => " – |".to_string(),
        };
        println!("{}{cpu}", row.figures.row(row.name));
    }
}

/// Target 1: federated − plain under 0.3 ms at p50 (sequential, 2025 session).
fn report_calls(calls: &CallFigures, stock: &Figures, settings: &Settings) -> Value {
    println!(
        "\n1. tools/call `multiply` of the demo math server, {} sequential calls per path ({} rounds), gateway threads {}:\n",
        settings.rounds * settings.calls,
        settings.rounds,
        settings.threads
    );
    print_table("calls/s", &calls.sequential);
    println!(
        "\nClosed loop, {} connections, {} s:\n",
        settings.load.connections,
        settings.load.measure.as_secs()
    );
    print_table("calls/s", &calls.closed);
    // Rows: 0 directly, 1 plain route, 2 federated 2025, 3 federated 2026.
    let over = |rows: &[Row], row: usize, base: usize, p: f64| {
        rows[row].figures.ms(p) - rows[base].figures.ms(p)
    };
    let (seq, closed) = (&calls.sequential, &calls.closed);
    let overhead = over(seq, 2, 1, 0.5);
    println!(
        "\nPlain route − directly, sequential p50: {:+.3} ms.\nFederated − plain, sequential: p50 {overhead:+.3} ms (2025 session), {:+.3} ms (2026 stateless); p99 {:+.3} / {:+.3} ms; closed loop p50 {:+.3} / {:+.3} ms.\nTarget: federated − plain < 0.3 ms at p50: {}",
        over(seq, 1, 0, 0.5),
        over(seq, 3, 1, 0.5),
        over(seq, 2, 1, 0.99),
        over(seq, 3, 1, 0.99),
        over(closed, 2, 1, 0.5),
        over(closed, 3, 1, 0.5),
        verdict(overhead < 0.3)
    );
    println!(
        "\n(The demo math server as DemoUpstreams serves it, without TCP_NODELAY, directly: {} sequential calls, p50 {:.3} ms, p99 {:.3} ms.)",
        stock.requests,
        stock.ms(0.5),
        stock.ms(0.99)
    );
    json!({
        "sequential": rows_json(seq), "closed_loop": rows_json(closed),
        "federated_minus_plain_p50_ms": overhead, "target_ms": 0.3,
        "stock_demo_server_directly": stock.json(),
    })
}

/// Target 2: a merged list at most 1 ms slower than the slowest server.
fn report_lists(figures: &ListFigures, settings: &Settings) -> Value {
    let lists = &figures.rows;
    println!(
        "\n2. tools/list over 5 servers answering after {LIST_DELAYS_MS:?} ms ({STUB_TOOLS} tools each), {} sequential lists per path:\n",
        settings.rounds * settings.lists
    );
    print_table("lists/s", lists);
    // Rows: 0 the slowest server directly, 1 federated 2025, 2 federated 2026.
    let over = |row: usize, p: f64| lists[row].figures.ms(p) - lists[0].figures.ms(p);
    let nominal = LIST_DELAYS_MS[LIST_DELAYS_MS.len() - 1] as f64;
    let overheads = [over(1, 0.5), over(2, 0.5)];
    println!(
        "\nOver the slowest server answering directly: p50 {:+.3} ms (2025 session), {:+.3} ms (2026 stateless); p99 {:+.3} / {:+.3} ms. Over its nominal {nominal} ms: p50 {:+.3} / {:+.3} ms.\nTarget: at most 1 ms over the slowest server: {}",
        overheads[0],
        overheads[1],
        over(1, 0.99),
        over(2, 0.99),
        lists[1].figures.ms(0.5) - nominal,
        lists[2].figures.ms(0.5) - nominal,
        verdict(overheads.iter().all(|o| *o <= 1.0))
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nWhere the time goes ({} more lists per path, medians): from sending to the slowest server's receipt of its tools/list, and from its answer to the client's last byte:\n",
        settings.lists
    );
    println!("| path | to the slowest server ms | back to the client ms |\n|---|---|---|");
    let mut breakdown = Vec::new();
    for (row, part) in lists.iter().zip(&figures.breakdown) {
        let (to_server, back) = (ms(part.to_server), ms(part.back));
        println!("| {} | {to_server:.3} | {back:.3} |", row.name);
        breakdown.push(json!({"path": row.name, "to_server_ms": to_server, "back_ms": back}));
    }
    json!({
        "server_delays_ms": LIST_DELAYS_MS, "rows": rows_json(lists),
        "overhead_p50_ms": overheads, "target_ms": 1.0, "breakdown": breakdown,
    })
}

/// Target 3: no memory growth with the number of sessions.
fn report_sessions(memory: &SessionMemory, settings: &Settings) -> Value {
    let [before, first, second] = memory.rss_kib;
    let per_session =
        |from: u64, to: u64| (to as f64 - from as f64) * 1024.0 / memory.sessions as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "\n3. {} sessions opened through the five-server route, twice ({} connections; each: initialize, notifications/initialized, one tools/call); sealed ids of {} bytes:\n",
        memory.sessions, settings.load.connections, memory.id_bytes
    );
    println!("{}", table_head("what", "sessions/s"));
    println!("{}", memory.open_and_call.row("open + one call"));
    println!("\n| gateway RSS | MiB | bytes per session since the row above |\n|---|---|---|");
    println!(
        "| after {} warm-up sessions | {:.1} | |",
        memory.sessions / 10,
        mib(before)
    );
    for (kib, from) in [(first, before), (second, first)] {
        println!(
            "| after {} more | {:.1} | {:.0} |",
            memory.sessions,
            mib(kib),
            per_session(from, kib)
        );
    }
    println!("| peak (VmHWM) | {:.1} | |", mib(memory.peak_kib));
    json!({
        "per_batch": memory.sessions, "sealed_id_bytes": memory.id_bytes,
        "rss_kib": memory.rss_kib, "peak_kib": memory.peak_kib,
        "bytes_per_session": [per_session(before, first), per_session(first, second)],
        "open_and_call": memory.open_and_call.json(),
    })
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (calls, stock, lists, memory) = runtime.block_on(async {
        let math = start_math_server().await;
        let mut stubs = Vec::new();
        for (i, delay) in LIST_DELAYS_MS.iter().enumerate() {
            let name = format!("s{}", i + 1);
            stubs.push(StubServer::start(&name, Duration::from_millis(*delay)).await);
        }
        let slowest = stubs.last().expect("stubs");
        let stubs: Vec<SocketAddr> = stubs.iter().map(|s| s.addr).collect();
        let gateway = start_gateway(&routes(math, &stubs), settings.threads).await;
        let calls = tool_calls(&gateway, math, &settings).await;
        let stock = stock_demo_calls(settings.calls / 4).await;
        let lists = tool_lists(&gateway, slowest, &settings).await;
        drop(gateway);
        let memory = session_memory(&stubs, math, &settings).await;
        (calls, stock, lists, memory)
    });
    let report = json!({
        "gateway_threads": settings.threads, "connections": settings.load.connections,
        "tools_call": report_calls(&calls, &stock, &settings),
        "tools_list": report_lists(&lists, &settings),
        "sessions": report_sessions(&memory, &settings),
    });
    load::write_report("federation", &report);
    let errors: usize = [&calls.sequential, &calls.closed, &lists.rows]
        .iter()
        .flat_map(|rows| rows.iter().map(|row| row.figures.errors))
        .sum::<usize>()
        + stock.errors
        + memory.open_and_call.errors;
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}

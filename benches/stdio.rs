//! Stdio benchmark: what the gateway adds to a `tools/call` of a stdio MCP server, against the
//! same server called directly over its stdin and stdout. The server is
//! `tests/python/mcp_stdio_server.py` (the Python SDK over stdio), its tool `echo`; the gateway
//! is the release binary (1 worker thread, audit off) with the server as
//! `[mcp_server.stdio] command = [...]` (`sharing` per-session, the default) federated alone on
//! a route, the tool called `stdio__echo`. Both protocol eras, sequential calls:
//!
//! 1. **The Python SDK as the client** (`benches/stdio_calls.py`, the same script both ways, so
//!    both sides pay the same client-side SDK cost): directly it starts the server itself
//!    (`mcp.client.stdio`); through the gateway it speaks Streamable HTTP to the route. `auto`
//!    (2026-07-28, stateless calls) and `legacy` (a 2025-11-25 session). Each run is one
//!    connection: warm-up calls, then the timed ones, with the client's own CPU time per call.
//! 2. **A raw client**, the benchmark's own JSON-RPC without an SDK: lines written to and read
//!    from a server process it started, against `reqwest` POSTs to the gateway's route
//!    (stateless, or within a session), with the gateway's CPU time per call.
//!
//! Overhead = through the gateway − directly, per era and client. The paths alternate within
//! each round, so that a slow minute of the machine falls on all of them.
//!
//! `cargo bench -p tollgate --bench stdio`; knobs: TOLLGATE_BENCH_CALLS (timed calls per path and
//! round, 300), TOLLGATE_BENCH_ROUNDS (5), TOLLGATE_BENCH_THREADS (gateway threads, 1),
//! TOLLGATE_BENCH_QUICK=1 or `--test` for a smoke run of a few seconds. The figures also go to
//! `target/bench/stdio.json`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tollgate_testkit::load::{self, Figures};
use tollgate_testkit::mcp::{self, Session};
use tollgate_testkit::python::{python, script_path};
use tollgate_testkit::{GatewayBuilder, RunningGateway};

/// The stdio server's `--name`: its `[mcp_server.<name>]`, its tools' prefix, its answers'.
const SERVER: &str = "stdio";
/// The gateway's route federating it.
const ROUTE: &str = "/stdio";
/// What every call sends to `echo`, and what it answers.
const TEXT: &str = "ping";

struct Settings {
    /// Rounds; in each, every path runs once.
    rounds: usize,
    /// Timed calls per path and round.
    calls: usize,
    /// Calls before the timed ones: per Python run (a new connection each time), once per raw
    /// client.
    warmup: usize,
    /// Gateway worker threads.
    threads: usize,
}

impl Settings {
    fn from_env() -> Self {
        let quick = load::quick();
        Self {
            rounds: if quick {
                1
            } else {
                load::env_number("TOLLGATE_BENCH_ROUNDS", 5).max(1)
            },
            calls: if quick {
                20
            } else {
                load::env_number("TOLLGATE_BENCH_CALLS", 300).max(1)
            },
            warmup: if quick { 5 } else { 50 },
            threads: load::gateway_threads(),
        }
    }
}

/// `echo`'s answer.
fn expected() -> String {
    format!("{SERVER}:{TEXT}")
}

/// The command that starts the stdio server, as the gateway's `command` and the raw client run it.
fn server_command() -> Vec<String> {
    vec![
        python().display().to_string(),
        script_path("mcp_stdio_server.py").display().to_string(),
        "--name".to_string(),
        SERVER.to_string(),
    ]
}

fn config() -> String {
    format!(
        r#"
[mcp_server.{SERVER}]
command = {command:?}

[[route]]
name = "stdio"
match = {{ path_prefix = "{ROUTE}" }}
upstream = {{ kind = "mcp", servers = ["{SERVER}"] }}
"#,
        command = server_command()
    )
}

/// The two protocol eras, as the SDK's `mode` names them.
#[derive(Clone, Copy, PartialEq)]
enum Era {
    /// 2026-07-28: stateless calls, each carrying the `_meta` envelope.
    Modern,
    /// 2025-11-25: `initialize`, then calls within the session.
    Legacy,
}

impl Era {
    fn mode(self) -> &'static str {
        match self {
            Era::Modern => "auto",
            Era::Legacy => "legacy",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Era::Modern => "2026-07-28 stateless",
            Era::Legacy => "2025 session",
        }
    }
}

/// One path's figures; the latencies' sum is `figures.seconds` (so the mean is its quotient).
struct Row {
    name: String,
    figures: Figures,
    /// CPU time over the timed calls, where measured: the SDK client's own (its process), or
    /// the gateway's (raw client).
    cpu: Option<Duration>,
}

impl Row {
    fn new(name: String, cpu: bool) -> Self {
        Self {
            name,
            figures: Figures::default(),
            cpu: cpu.then_some(Duration::ZERO),
        }
    }

    /// Adds one run's figures and CPU time.
    fn add(&mut self, figures: Figures, cpu: Duration) {
        self.figures.merge(figures);
        self.cpu = self.cpu.map(|total| total + cpu);
    }

    fn mean_ms(&self) -> f64 {
        self.figures.seconds * 1000.0 / self.figures.requests.max(1) as f64
    }

    /// CPU per call in µs (the gateway's from `/proc`, in 10 ms ticks: an estimate over many).
    fn cpu_us(&self) -> Option<f64> {
        let calls = (self.figures.requests + self.figures.errors).max(1) as f64;
        Some(self.cpu?.as_secs_f64() * 1e6 / calls)
    }

    fn json(&self, cpu_key: &str) -> Value {
        let mut figures = self.figures.json();
        figures["mean_ms"] = json!(self.mean_ms());
        json!({"path": self.name, "figures": figures, cpu_key: self.cpu_us()})
    }
}

/// Figures of latencies recorded one by one, their sum as the run's seconds.
#[derive(Default)]
struct Timed {
    figures: Figures,
    total: Duration,
}

impl Timed {
    fn record(&mut self, latency: Option<Duration>) {
        match latency {
            Some(latency) => {
                self.figures.record(latency);
                self.total += latency;
            }
            None => self.figures.fail(),
        }
    }

    fn finish(self) -> Figures {
        self.figures.finish(self.total.as_secs_f64())
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The Python SDK as the client.

/// `benches/stdio_calls.py`.
fn sdk_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/stdio_calls.py")
}

/// One run of the SDK client: `calls` timed calls directly (`url` None) or at `url`; its
/// figures, its CPU time over them, and what it printed.
async fn sdk_run(url: Option<&str>, era: Era, settings: &Settings) -> (Figures, Duration, Value) {
    let mut command = Command::new(python());
    command.arg(sdk_script());
    match url {
        Some(url) => command.args(["--url", url, "--tool", &format!("{SERVER}__echo")]),
        None => command.args(["--direct", "--name", SERVER]),
    };
    command.args(["--mode", era.mode()]);
    command.args(["--calls", &settings.calls.to_string()]);
    command.args(["--warmup", &settings.warmup.to_string()]);
    let output = command.output().await.expect("run the SDK client");
    let out: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let mut timed = Timed::default();
    match out["latencies_us"].as_array() {
        Some(latencies) if output.status.success() => {
            for us in latencies {
                timed.record(us.as_u64().map(Duration::from_micros));
            }
        }
        _ => {
            eprintln!(
                "SDK client ({} {}) failed: {}\n{}",
                url.unwrap_or("directly"),
                era.mode(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            for _ in 0..settings.calls {
                timed.record(None);
            }
        }
    }
    let era_seen = out["protocol_version"].clone();
    let want = match era {
        Era::Modern => mcp::MODERN_VERSION,
        Era::Legacy => mcp::HANDSHAKE_VERSION,
    };
    assert!(
        out.is_null() || era_seen == want,
        "{} {}: spoke {era_seen}, not {want}",
        url.unwrap_or("directly"),
        era.mode()
    );
    let cpu = Duration::from_micros(out["client_cpu_us"].as_u64().unwrap_or(0));
    (timed.finish(), cpu, out)
}

// ---------------------------------------------------------------------------------------------
// 2. A raw client: JSON-RPC lines on the server's pipes, or POSTs to the gateway.

/// The stdio server run by the benchmark, spoken to line by line.
struct StdioClient {
    era: Era,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    _child: Child,
}

impl StdioClient {
    /// Starts the server; for the 2025 era does the handshake.
    async fn start(era: Era) -> Self {
        let command = server_command();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the stdio server");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut client = Self {
            era,
            stdin,
            lines,
            next_id: 1,
            _child: child,
        };
        if era == Era::Legacy {
            let params = json!({"protocolVersion": mcp::HANDSHAKE_VERSION, "capabilities": {},
                                "clientInfo": {"name": "tollgate-bench", "version": "1"}});
            let answer = client
                .exchange(mcp::request(0, "initialize", Some(params)))
                .await;
            assert!(answer.get("result").is_some(), "initialize: {answer}");
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            client.write(&initialized).await;
        }
        client
    }

    async fn write(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the server");
        self.stdin.flush().await.expect("flush");
    }

    /// Sends `message` (a request) and reads lines until its answer.
    async fn exchange(&mut self, message: Value) -> Value {
        let id = message["id"].clone();
        self.write(&message).await;
        loop {
            let line = self.lines.next_line().await.expect("read from the server");
            let line = line.expect("the server closed its stdout");
            match serde_json::from_str::<Value>(&line) {
                Ok(answer) if answer.get("id") == Some(&id) && answer.get("method").is_none() => {
                    return answer
                }
                _ => continue,
            }
        }
    }

    /// One `echo` call; whether it answered as expected.
    async fn call(&mut self) -> bool {
        self.next_id += 1;
        let params = json!({"name": "echo", "arguments": {"text": TEXT}});
        let message = match self.era {
            Era::Modern => mcp::modern_request(self.next_id, "tools/call", Some(params)),
            Era::Legacy => mcp::request(self.next_id, "tools/call", Some(params)),
        };
        let answer = self.exchange(message).await;
        answer
            .pointer("/result/content/0/text")
            .and_then(Value::as_str)
            == Some(&expected())
    }

    async fn calls(&mut self, count: usize) -> Figures {
        let mut timed = Timed::default();
        for _ in 0..count {
            timed.record(load::timed(self.call()).await);
        }
        timed.finish()
    }
}

/// A raw client of the gateway's route: its own connection, and its session in the 2025 era.
struct HttpClient {
    client: reqwest::Client,
    url: String,
    session: Option<Session>,
}

impl HttpClient {
    async fn open(gateway: &RunningGateway, era: Era) -> Self {
        let client = reqwest::Client::new();
        let url = gateway.url(ROUTE);
        let session = match era {
            Era::Modern => None,
            Era::Legacy => Some(
                Session::open(&client, &url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open a session at {url}: {e}")),
            ),
        };
        Self {
            client,
            url,
            session,
        }
    }

    /// One `stdio__echo` call; whether it answered as expected.
    async fn call(&self) -> bool {
        let message = mcp::tool_call(1, &format!("{SERVER}__echo"), json!({"text": TEXT}));
        let request = match &self.session {
            Some(session) => session.post(&self.client, &self.url, &message),
            None => mcp::post_modern(&self.client, &self.url, message),
        };
        let Ok(response) = request.send().await else {
            return false;
        };
        if response.status() != 200 {
            return false;
        }
        let Ok(answer) = mcp::Answer::read(response).await else {
            return false;
        };
        answer.messages().iter().any(|m| {
            m.pointer("/result/content/0/text").and_then(Value::as_str) == Some(&expected())
        })
    }

    async fn calls(&self, count: usize) -> Figures {
        let mut timed = Timed::default();
        for _ in 0..count {
            timed.record(load::timed(self.call()).await);
        }
        timed.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The rounds.

const ERAS: [Era; 2] = [Era::Modern, Era::Legacy];

struct Measured {
    /// Per era: directly, through the gateway.
    sdk: Vec<Row>,
    raw: Vec<Row>,
    /// What the SDK client said of itself (its version), from its first run.
    sdk_version: Value,
}

async fn measure(gateway: &RunningGateway, settings: &Settings) -> Measured {
    let url = gateway.url(ROUTE);
    let mut sdk = Vec::new();
    let mut raw = Vec::new();
    for era in ERAS {
        let label = era.label();
        sdk.push(Row::new(format!("directly over stdio, {label}"), true));
        sdk.push(Row::new(format!("through the gateway, {label}"), true));
        raw.push(Row::new(format!("directly over stdio, {label}"), false));
        raw.push(Row::new(format!("through the gateway, {label}"), true));
    }
    let mut stdio_clients = Vec::new();
    let mut http_clients = Vec::new();
    for era in ERAS {
        let mut stdio = StdioClient::start(era).await;
        let http = HttpClient::open(gateway, era).await;
        // Warm-up; and a wrong answer stops the run here, not in the figures.
        assert!(stdio.call().await, "raw stdio client: first call failed");
        assert!(http.call().await, "raw gateway client: first call failed");
        stdio.calls(settings.warmup).await;
        http.calls(settings.warmup).await;
        stdio_clients.push(stdio);
        http_clients.push(http);
    }
    let mut sdk_version = Value::Null;
    for round in 0..settings.rounds {
        eprintln!("round {} of {}", round + 1, settings.rounds);
        for (i, era) in ERAS.into_iter().enumerate() {
            let (figures, cpu, out) = sdk_run(None, era, settings).await;
            if sdk_version.is_null() {
                sdk_version = out["sdk_version"].clone();
            }
            sdk[2 * i].add(figures, cpu);
            let (figures, cpu, _) = sdk_run(Some(&url), era, settings).await;
            sdk[2 * i + 1].add(figures, cpu);

            let figures = stdio_clients[i].calls(settings.calls).await;
            raw[2 * i].add(figures, Duration::ZERO);
            let cpu = gateway.cpu_time();
            let figures = http_clients[i].calls(settings.calls).await;
            raw[2 * i + 1].add(figures, gateway.cpu_time().saturating_sub(cpu));
        }
    }
    for row in sdk.iter_mut().chain(raw.iter_mut()) {
        row.figures = std::mem::take(&mut row.figures).finish(0.0);
    }
    Measured {
        sdk,
        raw,
        sdk_version,
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Prints `rows` as a table; `cpu` names the CPU column (per call).
fn print_table(rows: &[Row], cpu: &str) {
    println!("| path | p50 ms | p90 ms | p99 ms | mean ms | max ms | errors | {cpu} µs/call |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        let f = &row.figures;
        print!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            row.name,
            f.ms(0.5),
            f.ms(0.9),
            f.ms(0.99),
            row.mean_ms(),
            f.ms(1.0),
            f.errors
        );
        match row.cpu_us() {
            Some(us) => println!(" {us:.0} |"),
            None => println!(" – |"),
        }
    }
}

/// Through the gateway − directly, per era (rows in pairs: directly, through the gateway).
fn overheads(rows: &[Row]) -> Value {
    let mut out = serde_json::Map::new();
    println!("\nThrough the gateway − directly:\n");
    println!("| era | p50 ms | p90 ms | p99 ms | mean ms |\n|---|---|---|---|---|");
    for (pair, era) in rows.chunks(2).zip(ERAS) {
        let (direct, gateway) = (&pair[0], &pair[1]);
        let over = |p: f64| gateway.figures.ms(p) - direct.figures.ms(p);
        let mean = gateway.mean_ms() - direct.mean_ms();
        println!(
            "| {} | {:+.3} | {:+.3} | {:+.3} | {mean:+.3} |",
            era.label(),
            over(0.5),
            over(0.9),
            over(0.99)
        );
        out.insert(
            era.mode().to_string(),
            json!({"p50_ms": over(0.5), "p90_ms": over(0.9), "p99_ms": over(0.99), "mean_ms": mean}),
        );
    }
    Value::Object(out)
}

fn report(measured: &Measured, settings: &Settings) -> Value {
    let per_path = settings.rounds * settings.calls;
    println!(
        "\nstdio MCP server (tests/python/mcp_stdio_server.py), `echo` called sequentially: {per_path} timed calls per path ({} × {} in alternating rounds, {} warm-up calls per connection), gateway threads {}.",
        settings.rounds, settings.calls, settings.warmup, settings.threads
    );
    println!(
        "\n1. The Python SDK as the client (mcp {}, benches/stdio_calls.py; directly over stdio vs Streamable HTTP to the gateway):\n",
        measured.sdk_version.as_str().unwrap_or("?")
    );
    print_table(&measured.sdk, "client CPU");
    let sdk_over = overheads(&measured.sdk);
    println!(
        "\n2. A raw client (JSON-RPC lines on the server's pipes vs reqwest POSTs to the gateway):\n"
    );
    print_table(&measured.raw, "gateway CPU");
    let raw_over = overheads(&measured.raw);
    let rows = |rows: &[Row], key: &str| Value::Array(rows.iter().map(|r| r.json(key)).collect());
    json!({
        "gateway_threads": settings.threads, "rounds": settings.rounds,
        "calls_per_round": settings.calls, "warmup": settings.warmup,
        "sdk": {"version": measured.sdk_version, "rows": rows(&measured.sdk, "client_cpu_us"), "overhead": sdk_over},
        "raw": {"rows": rows(&measured.raw, "gateway_cpu_us"), "overhead": raw_over},
    })
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let measured = runtime.block_on(async {
        let gateway = GatewayBuilder::new(env!("CARGO_BIN_EXE_tollgate"), &config())
            .threads(settings.threads)
            .log_filter("warn")
            .telemetry_line("audit_log = \"off\"")
            .start()
            .await;
        measure(&gateway, &settings).await
    });
    let report = report(&measured, &settings);
    load::write_report("stdio", &report);
    let errors: usize = measured
        .sdk
        .iter()
        .chain(&measured.raw)
        .map(|row| row.figures.errors)
        .sum();
    if errors > 0 {
        eprintln!("{errors} calls failed");
        std::process::exit(1);
    }
}

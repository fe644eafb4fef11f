//! Load benchmark: the demo echo model reached directly vs through the gateway (binary, release
//! build), on loopback. Reports requests/s and latency percentiles for a small JSON POST, and the
//! time to the first SSE event of a streamed answer. See docs/benchmarks.md.
//!
//! `cargo bench -p tollgate --bench proxy_load`; knobs: TOLLGATE_BENCH_CONNECTIONS (16),
//! TOLLGATE_BENCH_SECONDS (10), TOLLGATE_BENCH_THREADS (gateway threads, 1),
//! TOLLGATE_BENCH_QUICK=1 or `--test` for a one-second smoke run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::demo::{DemoUpstreams, EchoOptions};
use tollgate_testkit::load::{self, table_head, Figures, LoopSettings};
use tollgate_testkit::otlp::OtlpReceiver;
use tollgate_testkit::sse::SseReader;
use tollgate_testkit::{GatewayBuilder, RedisServer, RunningGateway};

const PROVIDER_KEY: &str = "bench-provider-key";

struct Settings {
    load: LoopSettings,
    threads: usize,
    stream_requests: usize,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            load: LoopSettings::from_env(16, 10, Duration::from_secs(2)),
            threads: load::gateway_threads(),
            stream_requests: if load::quick() { 10 } else { 200 },
        }
    }
}

/// What the gateway records besides its metrics.
#[derive(Clone, Copy)]
struct Telemetry {
    /// Audit records to a file (otherwise off).
    audit_file: bool,
    /// Every request traced to this OTLP/HTTP endpoint.
    otlp: Option<SocketAddr>,
}

/// Metrics only.
const METRICS_ONLY: Telemetry = Telemetry {
    audit_file: false,
    otlp: None,
};

async fn start_gateway(
    llm: SocketAddr,
    threads: usize,
    redis: Option<&str>,
    telemetry: Telemetry,
) -> RunningGateway {
    let config = format!(
        r#"
[plugin.key]
type = "secret-injection"
header = "x-api-key"
value = {{ env = "BENCH_PROVIDER_KEY" }}

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://{llm}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["key"]

[plugin.guard]
type = "prompt-guard"
rules = [
  {{ regex = "(?i)ignore (previous|all) instructions", action = "reject" }},
  {{ builtin = "anthropic_api_key", action = "reject" }},
  {{ builtin = "private_key", action = "reject" }},
  {{ builtin = "email", action = "mask" }},
  {{ builtin = "credit_card", action = "mask" }},
]

[[route]]
name = "guarded"
match = {{ path_prefix = "/guarded" }}
upstream = {{ url = "http://{llm}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["guard", "key"]

[plugin.limit-local]
type = "token-ratelimit"
unit = "tokens"
key = "header:x-user"
max_tokens = 1000000000
refill_tokens = 1000000000
refill_interval = "1s"

[[route]]
name = "limited-local"
match = {{ path_prefix = "/limited-local" }}
upstream = {{ url = "http://{llm}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["limit-local", "key"]
{redis_part}"#,
        redis_part = redis
            .map(redis_routes)
            .unwrap_or_default()
            .replace("LLM", &llm.to_string())
    );
    let mut gateway = GatewayBuilder::new(env!("CARGO_BIN_EXE_tollgate"), &config)
        .threads(threads)
        .env("BENCH_PROVIDER_KEY", PROVIDER_KEY)
        .log_filter("warn");
    gateway = if telemetry.audit_file {
        gateway.audit_log()
    } else {
        gateway.telemetry_line("audit_log = \"off\"")
    };
    if let Some(sink) = telemetry.otlp {
        gateway = gateway.telemetry_line(&format!(
            "otlp_endpoint = \"http://{sink}\"\notlp_protocol = \"http/protobuf\""
        ));
    }
    gateway.start().await
}

/// Where the load goes, with which key and body.
#[derive(Clone)]
struct Target {
    url: String,
    key: &'static str,
    body: String,
}

/// The Redis-backed limiter plugin and route (`LLM` stands for the upstream address).
fn redis_routes(redis: &str) -> String {
    format!(
        r#"
[plugin.limit-redis]
type = "token-ratelimit"
unit = "tokens"
key = "header:x-user"
max_tokens = 1000000000
refill_tokens = 1000000000
refill_interval = "1s"
store = {{ redis = "{redis}" }}

[[route]]
name = "limited-redis"
match = {{ path_prefix = "/limited-redis" }}
upstream = {{ url = "http://LLM", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["limit-redis", "key"]
"#
    )
}

/// A prompt of about `bytes` bytes of prose with nothing for the guard to find.
fn prompt_body(bytes: usize) -> String {
    let sentence = "The quarterly report covers revenue, churn and the hiring plan for next year. ";
    let text = sentence.repeat(bytes / sentence.len() + 1);
    json!({"model": "tollgate-echo-1", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}).to_string()
}

fn request_body(stream: bool) -> Value {
    json!({"model": "tollgate-echo-1", "max_tokens": 16, "stream": stream,
           "messages": [{"role": "user", "content": "hello gateway"}]})
}

/// Closed loop: each connection sends its next request when the previous answer is read.
async fn closed_loop(target: &Target, settings: &Settings) -> Figures {
    let target = target.clone();
    load::closed_loop(&settings.load, move |_, client| {
        let request = client
            .post(&target.url)
            .header("x-api-key", target.key)
            .header("x-user", "bench")
            .header("content-type", "application/json")
            .body(target.body.clone())
            .send();
        async move {
            match request.await {
                Ok(resp) => resp.status() == 200 && resp.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}

/// Sequential streamed requests: time from sending to the first complete SSE event.
async fn first_event_latency(target: &Target, settings: &Settings) -> Figures {
    let client = reqwest::Client::new();
    let body = request_body(true).to_string();
    load::sequential(settings.stream_requests, |_| {
        let request = client
            .post(&target.url)
            .header("x-api-key", target.key)
            .body(body.clone());
        async move {
            let started = Instant::now();
            let mut events = SseReader::new(request.send().await.ok()?);
            let first = events.next_event().await.ok().flatten()?;
            // The rest of the stream is read as a client would, but not timed.
            let _ = events.read_to_end().await;
            Some(first.at - started)
        }
    })
    .await
}

/// Memory of a gateway idle, then with `streams` SSE streams open at once through it (each to a
/// model that pauses 200 ms between words). Returns (idle KiB, KiB with the streams open, how
/// many were open).
async fn memory(llm: SocketAddr, threads: usize, streams: usize) -> (u64, u64, usize) {
    let gateway = start_gateway(llm, threads, None, METRICS_ONLY).await;
    let url = gateway.url("/anthropic/v1/messages");
    let client = reqwest::Client::new();
    let words = "one two three four five six seven eight nine ten ".repeat(4);
    let body = json!({"model": "tollgate-echo-1", "max_tokens": 40, "stream": true,
                      "messages": [{"role": "user", "content": words}]})
    .to_string();
    // A few requests first, so that idle means "warmed up", not "never used".
    for _ in 0..10 {
        let _ = client
            .post(&url)
            .header("x-api-key", "client-key")
            .body(request_body(false).to_string())
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = gateway.rss_kib();
    let (opened, release) = (
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let holders: Vec<_> = (0..streams)
        .map(|_| {
            let (client, url, body) = (reqwest::Client::new(), url.clone(), body.clone());
            let (opened, release) = (opened.clone(), release.clone());
            tokio::spawn(async move {
                let response = client
                    .post(&url)
                    .header("x-api-key", "client-key")
                    .body(body)
                    .send()
                    .await;
                if let Ok(mut response) = response {
                    if let Ok(Some(_)) = response.chunk().await {
                        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        release.notified().await;
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(6);
    while opened.load(std::sync::atomic::Ordering::Relaxed) < streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_now = opened.load(std::sync::atomic::Ordering::Relaxed);
    let with_streams = gateway.rss_kib();
    release.notify_waiters();
    for holder in holders {
        let _ = holder.await;
    }
    (idle, with_streams, open_now)
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let echo = EchoOptions {
        event_delay: Duration::ZERO,
        expected_api_key: Some(PROVIDER_KEY.into()),
    };
    let demo = DemoUpstreams::start(any, any, echo).expect("demo upstreams");
    // Without Redis the run goes on; the Redis limiter row is left out.
    let redis = runtime.block_on(RedisServer::try_start()).ok();
    let result = runtime.block_on(async {
        let redis_url = redis.as_ref().map(RedisServer::url);
        let gateway = start_gateway(
            demo.llm_addr(),
            settings.threads,
            redis_url.as_deref(),
            METRICS_ONLY,
        )
        .await;
        let small = request_body(false).to_string();
        let target = |path: &str, key: &'static str, body: &str| Target {
            url: gateway.url(path),
            key,
            body: body.to_string(),
        };
        let direct = Target {
            url: format!("http://{}/v1/messages", demo.llm_addr()),
            key: PROVIDER_KEY,
            body: small.clone(),
        };
        let through = target("/anthropic/v1/messages", "client-key", &small);
        let json_direct = closed_loop(&direct, &settings).await;
        let json_gateway = closed_loop(&through, &settings).await;
        let stream_direct = first_event_latency(&direct, &settings).await;
        let stream_gateway = first_event_latency(&through, &settings).await;
        // Plugin costs: the same route with and without the plugin.
        let big = prompt_body(100 * 1024);
        let mut plugins = vec![
            (
                "100 KB prompt, no plugin",
                closed_loop(
                    &target("/anthropic/v1/messages", "client-key", &big),
                    &settings,
                )
                .await,
            ),
            (
                "100 KB prompt, prompt-guard (5 rules)",
                closed_loop(
                    &target("/guarded/v1/messages", "client-key", &big),
                    &settings,
                )
                .await,
            ),
            (
                "small prompt, token-ratelimit local",
                closed_loop(
                    &target("/limited-local/v1/messages", "client-key", &small),
                    &settings,
                )
                .await,
            ),
        ];
        if redis.is_some() {
            plugins.push((
                "small prompt, token-ratelimit Redis",
                closed_loop(
                    &target("/limited-redis/v1/messages", "client-key", &small),
                    &settings,
                )
                .await,
            ));
        }
        plugins.push((
            "small prompt, telemetry off (metrics only)",
            closed_loop(&through, &settings).await,
        ));
        drop(gateway);
        // Telemetry on: audit records to a file and every request traced to an OTLP endpoint.
        let sink = OtlpReceiver::sink().await;
        let observed = start_gateway(
            demo.llm_addr(),
            settings.threads,
            None,
            Telemetry {
                audit_file: true,
                otlp: Some(sink.addr),
            },
        )
        .await;
        let traced = Target {
            url: observed.url("/anthropic/v1/messages"),
            key: "client-key",
            body: small.clone(),
        };
        plugins.push((
            "small prompt, telemetry on (metrics + audit file + OTLP traces)",
            closed_loop(&traced, &settings).await,
        ));
        drop(observed);
        // The two halves on their own.
        for (name, telemetry) in [
            (
                "small prompt, audit file only",
                Telemetry {
                    audit_file: true,
                    otlp: None,
                },
            ),
            (
                "small prompt, OTLP traces only",
                Telemetry {
                    audit_file: false,
                    otlp: Some(sink.addr),
                },
            ),
        ] {
            let gateway = start_gateway(demo.llm_addr(), settings.threads, None, telemetry).await;
            let target = Target {
                url: gateway.url("/anthropic/v1/messages"),
                key: "client-key",
                body: small.clone(),
            };
            plugins.push((name, closed_loop(&target, &settings).await));
        }
        (
            json_direct,
            json_gateway,
            stream_direct,
            stream_gateway,
            plugins,
        )
    });
    let (json_direct, json_gateway, stream_direct, stream_gateway, plugins) = result;
    println!(
        "\nSmall JSON POST, closed loop, {} connections, {} s, gateway threads {}:\n",
        settings.load.connections,
        settings.load.measure.as_secs(),
        settings.threads
    );
    println!("{}", table_head("path", "req/s"));
    println!(
        "{}\n{}",
        json_direct.row("direct"),
        json_gateway.row("gateway")
    );
    println!(
        "\nTime to first SSE event, {} sequential streams:\n",
        settings.stream_requests
    );
    println!("{}", table_head("path", "streams/s"));
    println!(
        "{}\n{}",
        stream_direct.row("direct"),
        stream_gateway.row("gateway")
    );
    let added = |g: &Figures, d: &Figures, p: f64| g.ms(p) - d.ms(p);
    println!(
        "\nGateway overhead: p50 +{:.3} ms, p99 +{:.3} ms, throughput {:.0}% of direct; first event p50 +{:.3} ms",
        added(&json_gateway, &json_direct, 0.5),
        added(&json_gateway, &json_direct, 0.99),
        json_gateway.rps() / json_direct.rps() * 100.0,
        added(&stream_gateway, &stream_direct, 0.5)
    );
    println!("\nPlugin costs (same closed loop; compare with the gateway rows above and with each other):\n");
    println!("{}", table_head("scenario", "req/s"));
    for (name, figures) in &plugins {
        println!("{}", figures.row(name));
    }
    if redis.is_none() {
        println!("(redis-server not found: the Redis limiter was not measured)");
    }
    let report = json!({
        "connections": settings.load.connections, "seconds": settings.load.measure.as_secs(), "gateway_threads": settings.threads,
        "json_post": {"direct": json_direct.json(), "gateway": json_gateway.json()},
        "first_event": {"direct": stream_direct.json(), "gateway": stream_gateway.json()},
        "plugins": plugins.iter().map(|(name, f)| json!({"scenario": name, "figures": f.json()})).collect::<Vec<_>>(),
    });
    load::write_report("proxy_load", &report);
    demo.shutdown();
    // Memory: idle, and with many streams open at once.
    let streams = if settings.stream_requests < 200 {
        50
    } else {
        1000
    };
    let slow = EchoOptions {
        event_delay: Duration::from_millis(200),
        expected_api_key: Some(PROVIDER_KEY.into()),
    };
    let slow_model = DemoUpstreams::start(any, any, slow).expect("slow model");
    let (idle, busy, open) =
        runtime.block_on(memory(slow_model.llm_addr(), settings.threads, streams));
    slow_model.shutdown();
    println!("\nMemory (resident set of the gateway process):\n");
    println!("| state | RSS MiB |\n|---|---|");
    println!("| idle, after warm-up | {:.1} |", idle as f64 / 1024.0);
    println!(
        "| {open} of {streams} SSE streams open at once | {:.1} |",
        busy as f64 / 1024.0
    );
    let errors = json_direct.errors
        + json_gateway.errors
        + stream_direct.errors
        + stream_gateway.errors
        + plugins.iter().map(|(_, f)| f.errors).sum::<usize>();
    drop(redis);
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}

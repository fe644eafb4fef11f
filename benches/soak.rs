//! Soak and overload benchmark: the release gateway binary on loopback, against the demo
//! upstreams (MCP servers, an echo model) and stubs of the benchmark, in four scenarios (see
//! docs/benchmarks.md):
//!
//! 1. `soak`: mixed MCP and LLM traffic (JSON and SSE) through the full plugin chain for
//!    TOLLGATE_SOAK_MINUTES after an 11-minute warm-up, the gateway's RSS and open fds sampled
//!    every 10 s. Pass: RSS grows less than 5 % after the warm-up, no fd growth, no unexpected
//!    answer.
//! 2. `idle`: 10,000 client connections that send nothing or their head a byte a second, while a
//!    normal client must be served with normal latency. Reports peak RSS, the normal client's
//!    latency before and during, the connections `header_timeout` cut.
//! 3. `streams`: 10,000 SSE streams open at once. Target: RSS under 300 MiB.
//! 4. `stall`: an upstream that stops mid-stream: the client keeps the events sent, the gateway
//!    ends the stream at the route's `upstream.timeout`, nothing leaks.
//!
//! `cargo bench -p tollgate --bench soak`; knobs: TOLLGATE_SOAK_SCENARIOS
//! (`stall,idle,streams,soak`: any of them, in that order), TOLLGATE_SOAK_MINUTES (30),
//! TOLLGATE_SOAK_WARMUP_SECONDS (660), TOLLGATE_SOAK_SAMPLE_SECONDS (10), TOLLGATE_SOAK_RATE
//! (requests/s, 200), TOLLGATE_SOAK_WORKERS (16), TOLLGATE_SOAK_IDLE_CONNECTIONS (10000),
//! TOLLGATE_SOAK_IDLE_SECONDS (40), TOLLGATE_SOAK_IDLE_AFTER_SECONDS (30),
//! TOLLGATE_SOAK_STREAMS (10000), TOLLGATE_SOAK_STALLS (200 per route),
//! TOLLGATE_SOAK_STALL_TIMEOUT_MS (2000), TOLLGATE_BENCH_THREADS (gateway threads, 2),
//! TOLLGATE_SOAK_SERVER (extra `[server]` lines, `;` between them, e.g. `read_buffer = 0`);
//! TOLLGATE_BENCH_QUICK=1 or `--test` runs all four at a tiny scale in about 30 s.
//!
//! The process raises its open-file limit (the hard one too, when it may) for itself and the
//! gateways it starts; many connections come from several loopback addresses (127.0.0.10, ...).

#[path = "soak/idle.rs"]
mod idle;
#[path = "soak/mixed.rs"]
mod mixed;
#[path = "soak/setup.rs"]
mod setup;
#[path = "soak/stall.rs"]
mod stall;
#[path = "soak/streams.rs"]
mod streams;

use serde_json::{json, Value};
use tollgate_testkit::load;

/// The scenarios in the order they run.
const SCENARIOS: [&str; 4] = ["stall", "idle", "streams", "soak"];

fn main() {
    setup::serve_slow_model_if_asked();
    let quick = load::quick();
    let wanted = std::env::var("TOLLGATE_SOAK_SCENARIOS").unwrap_or_else(|_| SCENARIOS.join(","));
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    if let Some(unknown) = wanted.iter().find(|w| !SCENARIOS.contains(w)) {
        eprintln!(
            "unknown scenario `{unknown}`; known: {}",
            SCENARIOS.join(", ")
        );
        std::process::exit(2);
    }
    let threads = load::env_number("TOLLGATE_BENCH_THREADS", 2);
    let idle_settings = idle::IdleSettings::from_env(quick);
    let stream_settings = streams::StreamSettings::from_env(quick);
    let stall_settings = stall::StallSettings::from_env(quick);
    // Each connection costs the benchmark up to two fds (client and upstream ends), the gateway
    // two as well.
    let most = idle_settings.connections.max(stream_settings.streams);
    let fd_limit = setup::raise_fd_limit((2 * most + 4096).max(65_536) as u64);
    println!(
        "# Soak and overload (gateway threads {threads}, open-file limit {fd_limit}{})",
        if quick { ", quick mode" } else { "" }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes = runtime.block_on(async {
        let upstreams = setup::Upstreams::start(stream_settings.event_delay).await;
        let routes = setup::routes(&upstreams, stall_settings.timeout);
        let mut outcomes = Vec::new();
        for scenario in SCENARIOS.iter().filter(|s| wanted.contains(s)) {
            outcomes.push(match *scenario {
                "stall" => stall::run(&upstreams, &routes, threads, quick).await,
                "idle" => idle::run(&routes, upstreams.demo.llm_addr(), threads, quick).await,
                "streams" => streams::run(&routes, threads, quick, fd_limit as usize).await,
                _ => mixed::run(&routes, threads, quick).await,
            });
        }
        upstreams.shutdown();
        outcomes
    });
    println!("\n## Verdicts\n");
    let mut failed = 0;
    for outcome in &outcomes {
        for verdict in &outcome.verdicts {
            let mark = if verdict.holds { "holds" } else { "FAILS" };
            println!("- {}: **{mark}**: {}", outcome.scenario, verdict.what);
            failed += usize::from(!verdict.holds);
        }
    }
    let report: Value = outcomes
        .iter()
        .map(|o| (o.scenario.to_string(), o.report.clone()))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    load::write_report(
        "soak",
        &json!({"gateway_threads": threads, "quick": quick, "fd_limit": fd_limit,
                "scenarios": report}),
    );
    // At the quick mode's scale the thresholds mean little: it only proves the scenarios run.
    if failed > 0 && !quick {
        eprintln!("{failed} criteria failed");
        std::process::exit(1);
    }
}

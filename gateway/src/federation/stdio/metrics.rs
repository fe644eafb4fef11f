//! The stdio servers' process metrics, shared by every configuration the process loads (a
//! server's series outlive reloads) and registered in the gateway's registry.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::process::ExitCause;

static LIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new("mcp_processes", "Live processes of stdio MCP servers"),
        &["server"],
    )
    .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

static STARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "mcp_process_starts_total",
            "Processes of stdio MCP servers started",
        ),
        &["server"],
    )
    .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

static EXITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "mcp_process_exits_total",
            "Processes of stdio MCP servers that ended, by cause",
        ),
        &["server", "cause"],
    )
    .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

/// The collectors to register in the gateway's registry.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(LIVE.clone()),
        Box::new(STARTS.clone()),
        Box::new(EXITS.clone()),
    ]
}

/// Counts a process of `server` started.
pub(super) fn started(server: &str) {
    STARTS.with_label_values(&[server]).inc();
    LIVE.with_label_values(&[server]).inc();
}

/// Counts a process of `server` ended (`was_live`: it had started).
pub(super) fn ended(server: &str, cause: ExitCause, was_live: bool) {
    EXITS.with_label_values(&[server, cause.label()]).inc();
    if was_live {
        LIVE.with_label_values(&[server]).dec();
    }
}

//! Client connection metrics, registered in the gateway's registry.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

static LIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new("client_connections", "Client connections open")
        .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "client_connections_refused_total",
            "Client connections closed at once because a cap was reached",
        ),
        &["cause"],
    )
    .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

static HEADER_TIMEOUTS: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "client_header_timeouts_total",
        "Client connections closed because a request head did not arrive in time",
    )
    .unwrap_or_else(|e| unreachable!("a fixed, valid metric: {e}"))
});

/// The collectors to register in the gateway's registry.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(LIVE.clone()),
        Box::new(REFUSED.clone()),
        Box::new(HEADER_TIMEOUTS.clone()),
    ]
}

/// Counts a connection opened (`true`) or closed.
pub(super) fn live(opened: bool) {
    if opened {
        LIVE.inc();
    } else {
        LIVE.dec();
    }
}

/// Counts a connection refused because of `cause` (`max_connections`,
/// `max_connections_per_client`).
pub(super) fn refused(cause: &str) {
    REFUSED.with_label_values(&[cause]).inc();
}

/// Counts a head that did not arrive in time.
pub(super) fn header_timeout() {
    HEADER_TIMEOUTS.inc();
}

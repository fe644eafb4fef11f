//! Telemetry: Prometheus metrics with bounded labels.

pub mod labels;
pub mod metrics;

pub use metrics::{ExchangeReport, Metrics};

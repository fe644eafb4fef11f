//! Telemetry: Prometheus metrics with bounded labels, OpenTelemetry traces, and the audit log.

pub mod audit;
pub mod labels;
pub mod metrics;
pub mod plugin_gauges;
pub mod semconv;
pub mod series_cache;
pub mod traces;

pub use audit::{AuditLog, AuditSink};
pub use metrics::{ExchangeReport, Metrics};
pub use traces::{TraceSettings, Tracing};

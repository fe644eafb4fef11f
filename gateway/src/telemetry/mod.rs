//! Telemetry: Prometheus metrics with bounded labels, and the audit log.

pub mod audit;
pub mod labels;
pub mod metrics;

pub use audit::{AuditLog, AuditSink};
pub use metrics::{ExchangeReport, Metrics};

//! `[telemetry]`: metric labels, the audit log and trace export.

use tollgate_plugin_api::NamePattern;
use toml::Spanned;

use super::defaults;
use super::report::Report;
use super::schema::TelemetrySection;
use crate::telemetry::traces::OtlpProtocol;
use crate::telemetry::{AuditSink, TraceSettings};

/// Telemetry settings from `[telemetry]`.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Model label allow-list.
    pub metric_models: Vec<NamePattern>,
    /// Tool label allow-list.
    pub metric_tools: Vec<NamePattern>,
    /// Where audit records go.
    pub audit: AuditSink,
    /// Whether audit records carry prompts and tool arguments (as forwarded, i.e. masked).
    pub audit_bodies: bool,
    /// Trace export.
    pub traces: TraceSettings,
}

/// The settings of `section`, its problems added to `report`.
pub(super) fn telemetry_settings(
    section: &TelemetrySection,
    report: &mut Report<'_>,
) -> TelemetrySettings {
    TelemetrySettings {
        metric_models: name_patterns(section.metric_models.as_deref(), report),
        metric_tools: name_patterns(section.metric_tools.as_deref(), report),
        audit: AuditSink::parse(&section.audit_log),
        audit_bodies: section.audit_bodies,
        traces: trace_settings(section, report),
    }
}

/// The allow-list of metric label values; absent, every value.
fn name_patterns(list: Option<&[Spanned<String>]>, report: &mut Report<'_>) -> Vec<NamePattern> {
    let Some(list) = list else {
        return vec![NamePattern::Any];
    };
    list.iter()
        .filter_map(|text| match NamePattern::parse(text.get_ref()) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                report.error(
                    text.span(),
                    e.to_string(),
                    Some("use an exact name, `*`, or `prefix*`".into()),
                );
                None
            }
        })
        .collect()
}

fn trace_settings(t: &TelemetrySection, report: &mut Report<'_>) -> TraceSettings {
    if let Some(endpoint) = &t.otlp_endpoint {
        check_endpoint(endpoint, report);
    }
    let otlp_protocol = t
        .otlp_protocol
        .as_ref()
        .and_then(|p| otlp_protocol(p, report));
    let sample_ratio = t
        .trace_sample_ratio
        .as_ref()
        .map_or(defaults::TRACE_SAMPLE_RATIO, |r| sample_ratio(r, report));
    TraceSettings {
        otlp_endpoint: t.otlp_endpoint.as_ref().map(|e| e.get_ref().clone()),
        otlp_protocol,
        service_name: t.service_name.clone(),
        sample_ratio,
    }
}

fn check_endpoint(endpoint: &Spanned<String>, report: &mut Report<'_>) {
    let scheme_ok = endpoint
        .get_ref()
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.scheme_str().map(|s| s == "http" || s == "https"))
        .unwrap_or(false);
    if !scheme_ok {
        report.error(
            endpoint.span(),
            format!("`{}` is not an http:// or https:// URL", endpoint.get_ref()),
            Some(
                "e.g. \"http://otel-collector:4317\" (gRPC) or \"http://otel-collector:4318\" (HTTP)"
                    .into(),
            ),
        );
    }
}

fn otlp_protocol(protocol: &Spanned<String>, report: &mut Report<'_>) -> Option<OtlpProtocol> {
    match protocol.get_ref().as_str() {
        "grpc" => Some(OtlpProtocol::Grpc),
        "http/protobuf" | "http" => Some(OtlpProtocol::HttpProtobuf),
        other => {
            report.error(
                protocol.span(),
                format!("unknown OTLP protocol `{other}`"),
                Some("use \"grpc\" or \"http/protobuf\"".into()),
            );
            None
        }
    }
}

fn sample_ratio(ratio: &Spanned<f64>, report: &mut Report<'_>) -> f64 {
    if !(0.0..=1.0).contains(ratio.get_ref()) {
        report.error(
            ratio.span(),
            "trace_sample_ratio must be between 0.0 and 1.0",
            None,
        );
    }
    ratio.get_ref().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors;

    #[test]
    fn a_problem_in_telemetry_points_at_its_value() {
        let source = "\
[telemetry]
otlp_endpoint = \"otel-collector:4317\"
otlp_protocol = \"thrift\"
trace_sample_ratio = 1.5
";
        assert_eq!(
            errors(source),
            [
                "t.toml:2:17: `otel-collector:4317` is not an http:// or https:// URL",
                "t.toml:3:17: unknown OTLP protocol `thrift`",
                "t.toml:4:22: trace_sample_ratio must be between 0.0 and 1.0",
            ]
        );
    }

    #[test]
    fn a_star_inside_a_label_pattern_is_refused_where_it_is_written() {
        let source = "\
[telemetry]
metric_models = [\"claude-*\", \"gpt*4\"]
metric_tools = [\"*\"]
";
        assert_eq!(
            errors(source),
            ["t.toml:2:30: pattern `gpt*4`: `*` is only allowed at the end"]
        );
    }
}

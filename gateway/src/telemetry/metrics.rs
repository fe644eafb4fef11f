//! Prometheus metrics, served on the admin listener at `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tollgate_plugin_api::{Decision, McpMethod, NamePattern, RequestCtx, RouteKind};

use super::labels::{mcp_method, LabelFilter};
use super::series_cache::{CallKey, ModelSeries, SeriesCache, CACHED_CALLS, CACHED_MODELS};

/// Buckets from sub-millisecond proxy overhead to ten-minute LLM streams.
const DURATION_BUCKETS: [f64; 19] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0,
];

/// Distinct model and tool label values kept at most (per label).
pub const LABEL_CAP: usize = 100;

/// The series of one route whose labels the route alone fixes, looked up once per route. Each
/// lookup in a labelled metric takes that metric's lock, which every worker thread shares: a
/// request pays for the lookups whose labels it decides (status, model, tool), not for these.
#[derive(Debug)]
pub struct RouteSeries {
    /// `requests_total` with status 200.
    answered_ok: IntCounter,
    /// `request_duration_seconds`.
    request_duration: Histogram,
    /// `upstream_duration_seconds`.
    upstream_duration: Histogram,
    /// The tokens and time-to-first-token series of the models seen on the route.
    models: SeriesCache<Box<str>, ModelSeries>,
    /// `mcp_requests_total` by method, tool and outcome seen on the route.
    calls: SeriesCache<CallKey, IntCounter>,
}

/// Everything an exchange reports when it ends.
#[derive(Debug)]
pub struct ExchangeReport<'a> {
    /// The request context.
    pub cx: &'a RequestCtx,
    /// The route's series, from [`Metrics::route_series`] of the same `Metrics`.
    pub series: &'a RouteSeries,
    /// Status sent to the client (0: none).
    pub status: u16,
    /// The chain's decision.
    pub decision: &'a Decision,
    /// Time from connecting upstream to the end of its response, if it was contacted.
    pub upstream: Option<Duration>,
    /// The gateway gave an error of its own (an upstream that failed, a client that left),
    /// even if the status says 200 (a federated route's in-band JSON-RPC error).
    pub failed: bool,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    plugin_rejections: IntCounterVec,
    mcp_requests: IntCounterVec,
    tokens: IntCounterVec,
    time_to_first_token: HistogramVec,
    config_reloads: IntCounterVec,
    plugin_warnings: IntCounterVec,
    audit_dropped: IntCounter,
    trace_spans: IntCounterVec,
    models: LabelFilter,
    tools: LabelFilter,
}

/// The `kind` label of a route.
fn kind_label(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Http => "http",
        RouteKind::Mcp => "mcp",
        RouteKind::Llm => "llm",
    }
}

/// Errors setting up the registry (a programming error: duplicate or malformed metric names).
pub type MetricsError = prometheus::Error;

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
    let metric = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// A registry with every tollgate metric; `models` and `tools` are the label allow-lists.
    pub fn new(models: Vec<NamePattern>, tools: Vec<NamePattern>) -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("tollgate".into()), None)?;
        let build_info =
            IntGaugeVec::new(Opts::new("build_info", "Build information"), &["version"])?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for collector in crate::federation::stdio::metrics::collectors()
            .into_iter()
            .chain(crate::connections::metrics::collectors())
        {
            registry.register(collector)?;
        }
        Ok(Self {
            requests: counter(
                &registry,
                "requests_total",
                "Requests by route, kind and status",
                &["route", "kind", "status"],
            )?,
            request_duration: histogram(
                &registry,
                "request_duration_seconds",
                "Time from request head to the end of the exchange",
                &["route"],
            )?,
            upstream_duration: histogram(
                &registry,
                "upstream_duration_seconds",
                "Time from connecting upstream to the end of its response",
                &["route"],
            )?,
            plugin_rejections: counter(
                &registry,
                "plugin_rejections_total",
                "Requests refused by a plugin",
                &["route", "plugin", "reason"],
            )?,
            mcp_requests: counter(
                &registry,
                "mcp_requests_total",
                "MCP JSON-RPC messages by method, tool, outcome and (federated routes) server",
                &["route", "method", "tool", "outcome", "server"],
            )?,
            tokens: counter(
                &registry,
                "gen_ai_tokens_total",
                "LLM tokens reported by the provider",
                &["route", "provider", "model", "type"],
            )?,
            time_to_first_token: histogram(
                &registry,
                "gen_ai_time_to_first_token_seconds",
                "Time from request to the first streamed token",
                &["route", "model"],
            )?,
            config_reloads: counter(
                &registry,
                "config_reloads_total",
                "Configuration loads by result",
                &["result"],
            )?,
            plugin_warnings: counter(&registry, "plugin_warnings_total", "Requests a plugin let through degraded (store or classifier unreachable, fail-open) or whose answer it stopped (too long to check)", &["route", "reason"])?,
            audit_dropped: {
                let metric = IntCounter::new(
                    "audit_dropped_total",
                    "Audit records dropped because the writer fell behind",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            trace_spans: counter(
                &registry,
                "trace_spans_total",
                "Spans handed to the OTLP collector (exported) or lost because it failed (dropped)",
                &["result"],
            )?,
            registry,
            models: LabelFilter::new(models, LABEL_CAP),
            tools: LabelFilter::new(tools, LABEL_CAP),
        })
    }

    /// Counts a configuration load (`ok` or `error`).
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The series of the route named `route`, of kind `kind`, for its exchanges' reports.
    pub fn route_series(&self, route: &str, kind: RouteKind) -> RouteSeries {
        RouteSeries {
            answered_ok: self
                .requests
                .with_label_values(&[route, kind_label(kind), "200"]),
            request_duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            models: SeriesCache::new(CACHED_MODELS),
            calls: SeriesCache::new(CACHED_CALLS),
        }
    }

    /// Records one finished exchange.
    pub fn exchange(&self, report: &ExchangeReport<'_>) {
        let cx = report.cx;
        let route = &*cx.route().name;
        let series = report.series;
        match report.status {
            200 => series.answered_ok.inc(),
            0 => self
                .requests
                .with_label_values(&[route, kind_label(cx.route().kind), "none"])
                .inc(),
            status => self
                .requests
                .with_label_values(&[route, kind_label(cx.route().kind), &status.to_string()])
                .inc(),
        }
        series
            .request_duration
            .observe(cx.started().elapsed().as_secs_f64());
        if let Some(upstream) = report.upstream {
            series.upstream_duration.observe(upstream.as_secs_f64());
        }
        for reason in &cx.warnings {
            self.plugin_warnings
                .with_label_values(&[route, reason])
                .inc();
        }
        if let Decision::Rejected { plugin, reason, .. } = report.decision {
            self.plugin_rejections
                .with_label_values(&[route, plugin, reason])
                .inc();
        }
        if let Some(mcp) = cx.mcp() {
            let server = cx.mcp_server();
            let outcome = match (report.decision, report.status) {
                (Decision::Allowed, 200..=299) if !report.failed => "ok",
                (Decision::Allowed, _) => "error",
                _ => "rejected",
            };
            for (message, mcp_call) in mcp
                .messages
                .iter()
                .filter_map(|m| Some((m, m.method.as_ref()?)))
            {
                let method = mcp_method(mcp_call);
                let target = match mcp_call {
                    McpMethod::ToolsCall => message.target.as_deref().unwrap_or_default(),
                    _ => "",
                };
                let is = |key: &CallKey| {
                    &*key.0 == method
                        && &*key.1 == target
                        && key.2 == outcome
                        && key.3.as_deref() == server
                };
                let make = || {
                    let tool = match (mcp_call.is_tool_call(), outcome) {
                        (false, _) => "",
                        // A refused call's name is the client's to make up: it takes no slot.
                        (true, "rejected") => self.tools.existing_label(target),
                        (true, _) => self.tools.label(target),
                    };
                    let counter = self.mcp_requests.with_label_values(&[
                        route,
                        method,
                        tool,
                        outcome,
                        server.unwrap_or(""),
                    ]);
                    // A tool counted as `other` stands for any number of names: not kept.
                    let key = (tool == target)
                        .then(|| (method.into(), target.into(), outcome, server.map(Arc::from)));
                    (counter, key)
                };
                series.calls.with(is, make, IntCounter::inc);
            }
        }
        if cx.route().kind == RouteKind::Llm
            && (cx.usage().reported || cx.first_token_at().is_some())
        {
            let model = cx
                .response_model()
                .or(cx.llm().and_then(|l| l.model.as_deref()))
                .unwrap_or("");
            let make = || {
                let label = self.models.label(model);
                let provider = cx.route().provider.as_deref().unwrap_or("");
                let series = ModelSeries {
                    input_tokens: self
                        .tokens
                        .with_label_values(&[route, provider, label, "input"]),
                    output_tokens: self
                        .tokens
                        .with_label_values(&[route, provider, label, "output"]),
                    time_to_first_token: self
                        .time_to_first_token
                        .with_label_values(&[route, label]),
                };
                // `other` stands for any number of names: those are not kept.
                let key = (!label.is_empty() && label == model).then(|| model.into());
                (series, key)
            };
            series.models.with(
                |kept| **kept == *model,
                make,
                |model| {
                    if cx.usage().reported {
                        model.input_tokens.inc_by(cx.usage().input_tokens);
                        model.output_tokens.inc_by(cx.usage().output_tokens);
                    }
                    if let Some(first) = cx.first_token_at() {
                        let ttft = first.saturating_duration_since(cx.started());
                        model.time_to_first_token.observe(ttft.as_secs_f64());
                    }
                },
            );
        }
    }

    /// Counts a batch of `count` spans the collector took (`exported`) or did not.
    pub fn spans_exported(&self, count: u64, exported: bool) {
        self.trace_spans
            .with_label_values(&[if exported { "exported" } else { "dropped" }])
            .inc_by(count);
    }

    /// Counts an audit record dropped on a full queue.
    pub fn audit_dropped(&self) {
        self.audit_dropped.inc();
    }

    /// Records a request no route took (404/405).
    pub fn unrouted(&self, status: u16) {
        self.requests
            .with_label_values(&["", "none", &status.to_string()])
            .inc();
    }

    /// Adds the gauges of the plugins of `config` to every scrape.
    pub fn report_plugin_gauges(
        &self,
        config: crate::config::SharedConfig,
    ) -> Result<(), MetricsError> {
        self.registry
            .register(Box::new(super::plugin_gauges::PluginGauges::new(config)))
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

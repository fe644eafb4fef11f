//! OpenTelemetry traces: one server span per request, a client span for the upstream call (its
//! context goes upstream in `traceparent`), and the plugins' I/O spans, exported over OTLP (gRPC
//! or HTTP/protobuf) in batches from a background thread. A request never waits on the
//! exporter; spans the collector did not take are dropped and counted.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};
use opentelemetry_sdk::Resource;
use pingora::http::RequestHeader;
use tollgate_plugin_api::trace::TRACER_NAME;

use super::Metrics;

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
}

/// Trace export settings from `[telemetry]` and the `OTEL_*` environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Collector endpoint; `None`: from `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, else off.
    pub otlp_endpoint: Option<String>,
    /// Transport; `None`: from `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, else by port.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// `service.name`; `None`: `OTEL_SERVICE_NAME`, else `tollgate`.
    pub service_name: Option<String>,
    /// Share of new traces recorded (a sampled parent is always followed).
    pub sample_ratio: f64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl TraceSettings {
    /// The endpoint in effect, if tracing is on.
    fn endpoint(&self) -> Option<String> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        self.otlp_endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    }

    fn protocol(&self, endpoint: &str) -> OtlpProtocol {
        if let Some(protocol) = self.otlp_protocol {
            return protocol;
        }
        match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            Some("grpc") => OtlpProtocol::Grpc,
            Some(_) => OtlpProtocol::HttpProtobuf,
            None if endpoint.trim_end_matches('/').ends_with(":4317") => OtlpProtocol::Grpc,
            None => OtlpProtocol::HttpProtobuf,
        }
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start trace export: {0}")]
pub struct TraceError(String);

/// The running trace pipeline.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// Drives the gRPC exporter's connection; lives as long as the pipeline.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

impl Tracing {
    /// Starts exporting per `settings`; `Ok(None)` when no endpoint is configured.
    pub fn start(
        settings: &TraceSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Self>>, TraceError> {
        let Some(endpoint) = settings.endpoint() else {
            return Ok(None);
        };
        let protocol = settings.protocol(&endpoint);
        let (exporter, runtime) = match protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(configured) = &settings.otlp_endpoint {
                    builder = builder.with_endpoint(http_traces_url(configured));
                }
                let exporter = builder.build().map_err(|e| TraceError(e.to_string()))?;
                (exporter, None)
            }
            OtlpProtocol::Grpc => {
                // tonic needs a Tokio reactor; the batch thread drives exports on this one.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("tollgate-otlp")
                    .enable_all()
                    .build()
                    .map_err(|e| TraceError(e.to_string()))?;
                let configured = settings.otlp_endpoint.clone();
                let exporter = runtime.block_on(async move {
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_protocol(opentelemetry_otlp::Protocol::Grpc);
                    if let Some(configured) = configured {
                        builder = builder.with_endpoint(configured);
                    }
                    builder.build()
                });
                let exporter = exporter.map_err(|e| TraceError(e.to_string()))?;
                (exporter, Some(runtime))
            }
        };
        let exporter = CountingExporter {
            inner: exporter,
            metrics,
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(8192)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        resource = match &settings.service_name {
            Some(name) => resource.with_service_name(name.clone()),
            None if env("OTEL_SERVICE_NAME").is_none() => resource.with_service_name("tollgate"),
            None => resource,
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let tracer = provider.tracer(TRACER_NAME);
        tracing::info!(endpoint = %endpoint, ?protocol, "exporting traces over OTLP");
        Ok(Some(Arc::new(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            _runtime: runtime,
        })))
    }

    /// Starts the server span of a request, continuing the client's `traceparent`.
    pub fn server_span(&self, method: &http::Method, headers: &HeaderMap) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Starts the client span of the upstream call under `parent`.
    pub fn upstream_span(&self, parent: &Context, name: Cow<'static, str>) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    /// Writes `context` into the upstream request as `traceparent` / `tracestate` (W3C Trace
    /// Context, as the SDK's propagator writes them, without its per-call string formatting).
    pub fn inject(&self, context: &Context, request: &mut RequestHeader) {
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        let mut failed = match traceparent(span_context) {
            Some(value) => request.insert_header(TRACEPARENT, value).is_err(),
            None => true,
        };
        let state = span_context.trace_state().header();
        if state.is_empty() {
            // A new trace (or a client state that did not parse) starts without one: never
            // forward the client's next to our `traceparent`.
            request.remove_header(&TRACESTATE);
        } else {
            failed |= request.insert_header(TRACESTATE, state).is_err();
        }
        if failed {
            tracing::debug!("could not write traceparent upstream");
        }
    }

    /// Exports what is queued (before the process exits).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::debug!(error = %e, "flushing spans failed");
        }
    }
}

/// `otlp_endpoint` is a base URL like `OTEL_EXPORTER_OTLP_ENDPOINT`: HTTP adds `/v1/traces`.
fn http_traces_url(base: &str) -> String {
    if base.trim_end_matches('/').ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{}/v1/traces", base.trim_end_matches('/'))
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `00-{trace id}-{span id}-{flags}`; only the sampled flag is propagated, as the SDK does.
fn traceparent(span_context: &SpanContext) -> Option<HeaderValue> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let flags = span_context.trace_flags() & TraceFlags::SAMPLED;
    let mut value = [b'-'; 55];
    value[..2].copy_from_slice(b"00");
    let fields: [(&[u8], usize); 3] = [
        (&span_context.trace_id().to_bytes(), 3),
        (&span_context.span_id().to_bytes(), 36),
        (&[flags.to_u8()], 53),
    ];
    for (bytes, at) in fields {
        for (i, byte) in bytes.iter().enumerate() {
            value[at + 2 * i] = HEX[usize::from(byte >> 4)];
            value[at + 2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
    }
    HeaderValue::from_bytes(&value).ok()
}

/// Whether the span of `context` is recorded (sampled): only then are its name and attributes
/// worth building.
pub fn is_recording(context: &Context) -> bool {
    context.span().is_recording()
}

/// The method as a span name, without an allocation for the standard methods.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    match method.as_str() {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        "PUT" => Cow::Borrowed("PUT"),
        "DELETE" => Cow::Borrowed("DELETE"),
        "PATCH" => Cow::Borrowed("PATCH"),
        "HEAD" => Cow::Borrowed("HEAD"),
        "OPTIONS" => Cow::Borrowed("OPTIONS"),
        other => Cow::Owned(other.to_string()),
    }
}

/// Sets `attributes` on the span of `context`, its status, and ends it.
pub fn end_span(
    context: &Context,
    name: Option<String>,
    attributes: Vec<KeyValue>,
    error: Option<Cow<'static, str>>,
) {
    let span = context.span();
    if let Some(name) = name {
        span.update_name(name);
    }
    span.set_attributes(attributes);
    if let Some(error) = error {
        span.set_attribute(KeyValue::new("error.type", error.clone()));
        span.set_status(Status::error(error));
    }
    span.end_with_timestamp(SystemTime::now());
}

/// Counts what the collector took and what it did not.
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    metrics: Arc<Metrics>,
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.metrics.spans_exported(count, result.is_ok());
        if let Err(e) = &result {
            tracing::debug!(error = %e, spans = count, "span export failed; spans dropped");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::Injector;
    use opentelemetry::trace::{SpanId, TraceId, TraceState};
    use std::collections::HashMap;

    struct Headers(HashMap<String, String>);

    impl Injector for Headers {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }
    }

    #[test]
    fn traceparent_is_written_as_the_sdk_propagator_writes_it() {
        for flags in [
            TraceFlags::SAMPLED,
            TraceFlags::default(),
            TraceFlags::new(0xff),
        ] {
            let span_context = SpanContext::new(
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
                SpanId::from_hex("b7ad6b7169203331").unwrap(),
                flags,
                true,
                TraceState::from_key_value([("vendor", "x")]).unwrap(),
            );
            let context = Context::new().with_remote_span_context(span_context.clone());
            let mut expected = Headers(HashMap::new());
            TraceContextPropagator::new().inject_context(&context, &mut expected);
            let ours = traceparent(&span_context).unwrap();
            assert_eq!(ours.to_str().unwrap(), expected.0["traceparent"]);
            assert_eq!(
                span_context.trace_state().header(),
                expected.0["tracestate"]
            );
        }
    }
}

//! A request's place in a distributed trace, so that plugins record their own I/O (a JWKS fetch,
//! a Redis round trip, a classifier call) as child spans of the gateway's request span. When
//! tracing is off the context is empty and spans cost nothing.

use std::borrow::Cow;
use std::fmt;

use opentelemetry::global::{self, BoxedSpan};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};

/// Name of the instrumentation scope the gateway and its plugins record spans under.
pub const TRACER_NAME: &str = "tollgate";

/// The trace context of one request; empty when tracing is off.
#[derive(Clone, Default)]
pub struct TraceCtx {
    context: Option<Context>,
}

impl fmt::Debug for TraceCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceCtx")
            .field("trace_id", &self.trace_id())
            .finish()
    }
}

impl TraceCtx {
    /// A trace context whose active span is the request's span.
    pub fn new(context: Context) -> Self {
        Self {
            context: Some(context),
        }
    }

    /// The OpenTelemetry context, when tracing is on.
    pub fn context(&self) -> Option<&Context> {
        self.context.as_ref()
    }

    /// The trace id in W3C form (32 hex digits), when tracing is on.
    pub fn trace_id(&self) -> Option<String> {
        let context = self.context.as_ref()?;
        let span = context.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string())
    }

    /// Starts a child span for I/O a plugin does on this request's behalf (`"redis reserve"`,
    /// `"jwks fetch"`); it ends when dropped.
    pub fn io_span(&self, name: &'static str) -> IoSpan {
        let Some(parent) = &self.context else {
            return IoSpan { span: None };
        };
        let tracer = global::tracer(TRACER_NAME);
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, parent);
        IoSpan { span: Some(span) }
    }
}

/// A span around a plugin's I/O; ends when dropped. Never give it secrets as attributes.
pub struct IoSpan {
    span: Option<BoxedSpan>,
}

impl fmt::Debug for IoSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSpan")
            .field("recording", &self.span.is_some())
            .finish()
    }
}

impl IoSpan {
    /// Records an attribute (`server.address`, `db.operation.name`, ...).
    pub fn set_attribute(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the operation failed with a short description (no secrets, no payloads).
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.span {
            let description = description.into();
            span.set_attribute(KeyValue::new("error.type", description.clone()));
            span.set_status(Status::error(description));
        }
    }
}

impl Drop for IoSpan {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
        }
    }
}

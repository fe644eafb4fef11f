//! The proxy's per-request state, from the request head to the audit record.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::Context;
use pingora::http::RequestHeader;
use tollgate_plugin_api::{Decision, RequestCtx};

use crate::lifecycle::InFlight;
use crate::protocol::observer::ResponseObserver;
use crate::routing::Route;
use crate::telemetry::traces::{self, Tracing};
use tollgate_plugin_api::protocol_error::ErrorStyle;

/// Per-request state of the proxy.
pub struct ProxyCtx {
    /// The matched route, once routed.
    pub(super) route: Option<Arc<Route>>,
    /// The plugins' view of the request, once routed.
    pub(super) cx: Option<RequestCtx>,
    /// Allowed, or who refused the request and why.
    pub(super) decision: Decision,
    /// The reason code of what went wrong, if anything.
    pub(super) error: Option<Cow<'static, str>>,
    /// The status sent to the client (0 while none was).
    pub(super) status: u16,
    /// Reads usage and the model from the answer.
    pub(super) observer: ResponseObserver,
    /// The first plugin of the chain that changed a JSON answer so far (`usize::MAX`: none).
    pub(super) altered_from: usize,
    /// Request body bytes seen so far on `http` routes.
    pub(super) request_body_bytes: usize,
    /// When the gateway started contacting the upstream.
    pub(super) upstream_started: Option<std::time::Instant>,
    /// Keeps the request counted until the context is dropped (shutdown waits for it).
    _in_flight: InFlight,
    /// The trace pipeline, when tracing is on.
    pub(super) tracing: Option<Arc<Tracing>>,
    /// The request's server span, when tracing is on.
    pub(super) span: Option<Context>,
    /// The upstream call's client span.
    pub(super) upstream_span: Option<Context>,
    /// Whether the audit record carries the forwarded prompt or tool arguments.
    pub(super) audit_bodies: bool,
    /// Prompt or tool arguments as forwarded (after masking), for the audit record.
    pub(super) audit_body: Option<serde_json::Value>,
}

impl ProxyCtx {
    /// The state of a request that has not been routed yet.
    pub(super) fn new(in_flight: InFlight, tracing: Option<Arc<Tracing>>) -> Self {
        Self {
            route: None,
            cx: None,
            decision: Decision::Allowed,
            error: None,
            status: 0,
            observer: ResponseObserver::Ignore,
            altered_from: usize::MAX,
            request_body_bytes: 0,
            upstream_started: None,
            _in_flight: in_flight,
            tracing,
            span: None,
            upstream_span: None,
            audit_bodies: false,
            audit_body: None,
        }
    }

    /// Marks the start of the upstream call (and its client span).
    pub(super) fn start_upstream(&mut self, route: &Route) {
        self.upstream_started = Some(std::time::Instant::now());
        if let (Some(tracing), Some(parent)) = (&self.tracing, &self.span) {
            // An unsampled request still gets its (non-recording) span: its context carries
            // the sampling decision upstream in `traceparent`. Only a recorded one needs a name.
            let name = if traces::is_recording(parent) {
                Cow::Owned(format!("upstream {}", route.info.name))
            } else {
                Cow::Borrowed("upstream")
            };
            self.upstream_span = Some(tracing.upstream_span(parent, name));
        }
    }

    /// Writes the upstream span's context into the upstream request (`traceparent`).
    pub(super) fn propagate(&self, request: &mut RequestHeader) {
        if let (Some(tracing), Some(span)) = (&self.tracing, &self.upstream_span) {
            tracing.inject(span, request);
        }
    }

    pub(super) fn style(&self) -> ErrorStyle {
        self.route
            .as_ref()
            .map_or(ErrorStyle::Plain, |r| ErrorStyle::for_route(r.info.kind))
    }

    pub(super) fn jsonrpc_id(&self) -> Option<&serde_json::Value> {
        self.cx.as_ref()?.mcp()?.first()?.id.as_ref()
    }
}

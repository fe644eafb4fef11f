//! The Pingora `ProxyHttp` service: routing, the plugin chain, and the upstream exchange.
//!
//! `http` routes use Pingora's own proxy loop (bodies stream both ways). MCP and LLM routes
//! read the request body whole in `request_filter`, run the body phase, and only then open the
//! upstream exchange (see `exchange.rs` and docs/architecture.md): a rejected request never
//! reaches the upstream at all.

mod admit;
pub mod chain;
pub mod client_watch;
pub mod connector;
pub mod context;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod respond;
pub mod well_known;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use opentelemetry::KeyValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use tollgate_plugin_api::{Decision, Outcome, RequestCtx, ResponseChunk, RouteKind};

use crate::config::SharedConfig;
use crate::ip_text::ip_text;
use crate::lifecycle::Lifecycle;
use crate::routing::Route;
use crate::telemetry::audit::{self, AuditFacts};
use crate::telemetry::semconv;
use crate::telemetry::traces::{self, Tracing};
use crate::telemetry::{AuditLog, ExchangeReport, Metrics};
use admit::Admission;
use connector::UpstreamConnector;
use context::ProxyCtx;
use error::GatewayError;

/// The tollgate proxy service.
pub struct TollgateProxy {
    config: SharedConfig,
    connector: UpstreamConnector,
    metrics: Arc<Metrics>,
    audit: AuditLog,
    lifecycle: Arc<Lifecycle>,
    tracing: Option<Arc<Tracing>>,
}

impl TollgateProxy {
    /// A proxy serving from `config`, counting its requests in `lifecycle`.
    pub fn new(
        config: SharedConfig,
        metrics: Arc<Metrics>,
        audit: AuditLog,
        lifecycle: Arc<Lifecycle>,
        tracing: Option<Arc<Tracing>>,
    ) -> Self {
        Self {
            config,
            metrics,
            audit,
            lifecycle,
            tracing,
            connector: UpstreamConnector::new(),
        }
    }
}

#[async_trait]
impl ProxyHttp for TollgateProxy {
    /// Boxed: Pingora keeps the context inline in its per-request future (one allocation of
    /// about 16 KiB per request, alive as long as a stream is). Without the context's 960
    /// bytes that future shrinks below 16 KiB, and each open SSE stream costs about 5 KiB less
    /// (soak benchmark, 3,000 streams: 67.9 -> 62.9 KiB over HTTP/1.1, 46.6 -> 41.7 over h2c),
    /// more than the bytes moved: jemalloc serves 16 KiB and up from whole pages.
    type CTX = Box<ProxyCtx>;

    fn new_ctx(&self) -> Box<ProxyCtx> {
        Box::new(ProxyCtx::new(self.lifecycle.track(), self.tracing.clone()))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<ProxyCtx>) -> Result<bool> {
        if self.lifecycle.is_draining() {
            // Send keep-alive clients to another replica for their next request.
            session.set_keepalive(None);
        } else {
            // A request the client sent before reading this answer (HTTP/1.1 pipelining) is
            // served next, in order (RFC 9112 §9.3.2), instead of dropped with the connection.
            session.downstream_session.set_pipelining_enabled(true);
        }
        if let Some(tracing) = &self.tracing {
            let req = session.req_header();
            ctx.span = Some(tracing.server_span(&req.method, &req.headers));
        }
        let config = self.config.load();
        ctx.audit_bodies = config.telemetry.audit_bodies && self.audit.enabled();
        let route = match admit::admit(session, ctx, &config) {
            Admission::Routed(route) => route,
            Admission::WellKnown(doc) => {
                respond::send_json(session, StatusCode::OK, &doc).await?;
                ctx.status = 200;
                return Ok(true);
            }
            Admission::Refused(GatewayError::TooLarge { limit: Some(limit) }) => {
                respond::refuse_too_large(session, ctx, limit).await?;
                return Ok(true);
            }
            Admission::Refused(error) => {
                respond::refuse(session, ctx, &error).await?;
                return Ok(true);
            }
        };
        let stopped = match ctx.cx.as_mut() {
            Some(cx) => chain::on_request(&route, cx).await.err(),
            None => None,
        };
        if let Some(stop) = stopped {
            respond::refuse_for_plugin(session, ctx, stop).await?;
            return Ok(true);
        }
        if route.info.kind == RouteKind::Http {
            return Ok(false);
        }
        exchange::serve(&self.connector, session, ctx, &route).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<ProxyCtx>,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .clone()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        ctx.start_upstream(&route);
        let peer = headers::proxied(&route)?
            .peer()
            .await
            .map_err(|e| Error::because(ErrorType::ConnectNoRoute, "resolving the upstream", e))?;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Box<ProxyCtx>,
    ) -> Result<()> {
        match (&ctx.route, &ctx.cx) {
            (Some(route), Some(cx)) => headers::rewrite_request(req, route, cx)?,
            _ => {
                return Error::e_explain(ErrorType::InternalError, "no route in the upstream phase")
            }
        }
        ctx.propagate(req);
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<ProxyCtx>,
    ) -> Result<()> {
        ctx.request_body_bytes += body.as_ref().map_or(0, Bytes::len);
        let limit = ctx.route.as_ref().map_or(usize::MAX, |r| r.max_body);
        if ctx.request_body_bytes > limit {
            ctx.error = Some(Cow::Borrowed(
                GatewayError::TooLarge { limit: None }.reason(),
            ));
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over the route's max_body",
            );
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<ProxyCtx>,
    ) -> Result<()> {
        headers::clean_response(resp);
        ctx.status = resp.status.as_u16();
        if let (Some(route), Some(cx)) = (&ctx.route, ctx.cx.as_mut()) {
            if chain::on_response(route, cx, resp).await? {
                // HTTP/2 clients get their own framing: Pingora drops the header there.
                headers::frame_as_chunked(resp)?;
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<ProxyCtx>,
    ) -> Result<Option<Duration>> {
        if let (Some(route), Some(cx)) = (&ctx.route, ctx.cx.as_mut()) {
            if let Some(data) = body.take() {
                let chunk = ResponseChunk::new(data, end_of_stream);
                *body = Some(chain::on_response_chunk(route, cx, chunk, None));
            } else if end_of_stream {
                let end = ResponseChunk::new(Bytes::new(), true);
                let data = chain::on_response_chunk(route, cx, end, None);
                *body = (!data.is_empty()).then_some(data);
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<ProxyCtx>,
    ) -> FailToProxy {
        let error = GatewayError::from_pingora(e);
        if ctx.error.is_none() {
            ctx.error = Some(Cow::Borrowed(error.reason()));
        }
        let status = match error.status() {
            Some(status) if session.response_written().is_none() => status,
            _ => {
                return FailToProxy {
                    error_code: ctx.status,
                    can_reuse_downstream: false,
                }
            }
        };
        if let Err(write_error) = respond::refuse(session, ctx, &error).await {
            tracing::debug!(%write_error, "could not send the error response");
        }
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<ProxyCtx>) {
        let (Some(route), Some(cx)) = (&ctx.route, &ctx.cx) else {
            self.metrics.unrouted(ctx.status);
            self.audit_unrouted(session, ctx);
            if let Some(span) = &ctx.span {
                let status = KeyValue::new("http.response.status_code", i64::from(ctx.status));
                traces::end_span(span, None, vec![status], None);
            }
            return;
        };
        let series = route
            .series
            .get_or_init(|| self.metrics.route_series(&route.info.name, route.info.kind));
        self.metrics.exchange(&ExchangeReport {
            cx,
            series,
            status: ctx.status,
            decision: &ctx.decision,
            upstream: ctx.upstream_started.map(|t| t.elapsed()),
            failed: ctx.error.is_some(),
        });
        let error = ctx
            .error
            .clone()
            .or_else(|| e.map(|e| Cow::Borrowed(GatewayError::from_pingora(e).reason())));
        let outcome = Outcome {
            status: ctx.status,
            decision: ctx.decision.clone(),
            error,
        };
        chain::on_complete(route, cx, &outcome).await;
        self.end_spans(ctx, route, cx, &outcome);
        if self.audit.enabled() {
            let facts = AuditFacts {
                status: ctx.status,
                decision: &ctx.decision,
                error: outcome.error.as_deref(),
                upstream: ctx.upstream_started.map(|t| t.elapsed()),
                body: ctx.audit_body.as_ref(),
            };
            if !self.audit.submit(audit::record(cx, &facts)) {
                self.metrics.audit_dropped();
            }
        }
        tracing::debug!(
            route = %route.info.name,
            status = outcome.status,
            decision = ?outcome.decision,
            error = outcome.error.as_deref(),
            input_tokens = cx.usage().input_tokens,
            output_tokens = cx.usage().output_tokens,
            "request done"
        );
    }
}

impl TollgateProxy {
    /// Ends the upstream and server spans with what the exchange came to.
    fn end_spans(&self, ctx: &ProxyCtx, route: &Route, cx: &RequestCtx, outcome: &Outcome) {
        let failed = outcome.error.clone();
        let server_error = failed
            .clone()
            .or_else(|| (outcome.status >= 500).then(|| Cow::Owned(outcome.status.to_string())));
        if let Some(upstream) = ctx
            .upstream_span
            .as_ref()
            .filter(|s| traces::is_recording(s))
        {
            let mut attributes = vec![KeyValue::new(
                "http.request.method",
                cx.method().as_str().to_string(),
            )];
            if let Some(upstream) = route.upstream() {
                attributes.push(KeyValue::new(
                    "server.address",
                    upstream.authority().to_string(),
                ));
            }
            if outcome.status != 0 {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(outcome.status),
                ));
            }
            traces::end_span(upstream, None, attributes, failed);
        }
        if let Some(span) = ctx.span.as_ref().filter(|s| traces::is_recording(s)) {
            let (name, attributes) = semconv::server_span(cx, outcome.status, &outcome.decision);
            traces::end_span(span, Some(name), attributes, server_error);
        }
    }

    /// Audits a request no route took (it has no request context).
    fn audit_unrouted(&self, session: &Session, ctx: &ProxyCtx) {
        if !self.audit.enabled() {
            return;
        }
        let req = session.req_header();
        let reason = match &ctx.decision {
            Decision::Invalid { reason } => Some(reason.as_str()),
            _ => None,
        };
        let record = serde_json::json!({
            "route": null,
            "client": session.client_addr().and_then(|a| a.as_inet()).map(|a| ip_text(a.ip())),
            "method": req.method.as_str(),
            "path": req.uri.path(),
            "status": ctx.status,
            "decision": "invalid",
            "reason": reason,
        });
        if !self.audit.submit(record.to_string()) {
            self.metrics.audit_dropped();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_context_stays_out_of_pingoras_request_future() {
        assert_eq!(
            std::mem::size_of::<<TollgateProxy as ProxyHttp>::CTX>(),
            std::mem::size_of::<usize>(),
            "a pointer, not the context"
        );
    }
}

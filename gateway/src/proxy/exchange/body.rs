//! The request body: read whole within the route's limit, parsed once for the route's protocol,
//! and put through the plugins' body phase.

use bytes::{Bytes, BytesMut};
use http::Method;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use serde_json::Value;
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::{RequestBody, RequestCtx, RouteKind};

use crate::protocol::{anthropic, mcp, mcp_headers, strict_json};
use crate::proxy::context::ProxyCtx;
use crate::proxy::error::GatewayError;
use crate::proxy::{chain, respond};
use crate::routing::Route;
use crate::telemetry::audit;

/// Reads the body whole, bounded by the route's limit and `body_timeout`; `None` when a 413 or
/// a 408 was sent.
pub(super) async fn read(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
) -> Result<Option<Bytes>> {
    let mut buffer = BytesMut::new();
    let deadline = tokio::time::Instant::now() + route.body_timeout;
    loop {
        // The client's errors are marked as the client's: a broken body is a 400, not a
        // gateway (500) or upstream (504) failure.
        let next = session.read_request_body();
        let chunk = match tokio::time::timeout_at(deadline, next).await {
            Ok(read) => read.map_err(|e| e.into_down())?,
            Err(_) => {
                // A body trickled in slowly holds a connection and a buffer: it gets a time
                // limit of its own, whatever the pace of each read.
                session.set_keepalive(None);
                respond::refuse(session, ctx, &GatewayError::ClientTimeout).await?;
                return Ok(None);
            }
        };
        let Some(chunk) = chunk else {
            break;
        };
        if buffer.len() + chunk.len() > route.max_body {
            respond::refuse_too_large(session, ctx, route.max_body).await?;
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer.freeze()))
}

/// Parses the body for the route's protocol and runs the body phase; `None` when refused.
pub(super) async fn parse_and_decide(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    raw: Bytes,
) -> Result<Option<RequestBody>> {
    let audit_bodies = ctx.audit_bodies;
    let Some(cx) = ctx.cx.as_mut() else {
        return Error::e_explain(ErrorType::InternalError, "no request context");
    };
    let json = match parse(route, cx, &raw, audit_bodies) {
        Ok(json) => json,
        Err(error) => {
            respond::refuse(session, ctx, &error).await?;
            return Ok(None);
        }
    };
    let mut body = RequestBody::new(raw, json);
    if let Err(stop) = chain::on_request_body(route, cx, &mut body).await {
        respond::refuse_for_plugin(session, ctx, stop).await?;
        return Ok(None);
    }
    // Only what passed the whole chain is recorded: as forwarded, i.e. after any masking.
    if audit_bodies {
        ctx.audit_body = body
            .json()
            .and_then(|json| audit::body_excerpt(route.info.kind, json));
    }
    Ok(Some(body))
}

/// Reads the protocol facts of the body into `cx`; the JSON tree when one was built.
fn parse(
    route: &Route,
    cx: &mut RequestCtx,
    raw: &Bytes,
    audit_bodies: bool,
) -> Result<Option<Value>, GatewayError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if cx.method() != Method::POST && route.info.kind != RouteKind::Http {
        // Plugins judge POST bodies only: any other body would pass unjudged.
        return Err(GatewayError::UnexpectedBody);
    }
    match route.info.kind {
        RouteKind::Mcp => {
            let (json, request) = mcp::parse(raw).map_err(|e| GatewayError::InvalidJsonRpc {
                code: e.code(),
                message: e.to_string(),
            })?;
            // Known before the check, so that its refusal answers the request's id.
            facts_mut(cx).mcp = Some(request);
            // Before any plugin reads the body: what it is judged on is what is served.
            if let Some(message) = mcp_headers::mismatch(cx.headers(), &json) {
                return Err(GatewayError::InvalidJsonRpc {
                    code: mcp_headers::HEADER_MISMATCH,
                    message: message.to_string(),
                });
            }
            Ok(Some(json))
        }
        // No plugin reads the body and it is not audited: read the few facts the gateway
        // needs without building the JSON tree.
        RouteKind::Llm if !audit_bodies && !route.chain.iter().any(|p| p.inspects_body()) => {
            facts_mut(cx).llm =
                Some(anthropic::describe_raw(raw).ok_or(GatewayError::InvalidJson)?);
            Ok(None)
        }
        RouteKind::Llm => match strict_json::from_slice(raw) {
            Ok(json) if json.is_object() => {
                facts_mut(cx).llm = Some(anthropic::describe_request(&json));
                Ok(Some(json))
            }
            Ok(_) => Err(GatewayError::InvalidJson),
            Err(error) if error.is_data() => Err(GatewayError::DuplicateKey),
            Err(_) => Err(GatewayError::InvalidJson),
        },
        RouteKind::Http => Ok(None),
    }
}

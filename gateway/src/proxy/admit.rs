//! The first stage of every request: the well-known documents, routing, the plugins' view of
//! the request, the declared body size, and the plugins' head phase.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::StatusCode;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::trace::TraceCtx;
use tollgate_plugin_api::RequestCtx;

use super::context::ProxyCtx;
use super::error::GatewayError;
use super::{chain, respond, well_known};
use crate::config::RuntimeConfig;
use crate::routing::{NoRoute, Route};

/// Routes the request and runs the head phase. `None` when the request has been answered here
/// (a well-known document, or a refusal).
pub(super) async fn admit(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    config: &RuntimeConfig,
) -> Result<Option<Arc<Route>>> {
    if let Some(doc) = well_known::protected_resource(config, session.req_header()) {
        respond::send_json(session, StatusCode::OK, &doc).await?;
        ctx.status = 200;
        return Ok(None);
    }
    let route = match find_route(config, session.req_header()) {
        Ok(route) => route,
        Err(error) => {
            respond::refuse(session, ctx, &error).await?;
            return Ok(None);
        }
    };
    let mut cx = request_ctx(session, &route, ctx);
    ctx.route = Some(route.clone());

    if let Some(len) = declared_length(session.req_header()) {
        if len > route.max_body {
            ctx.cx = Some(cx);
            respond::refuse_too_large(session, ctx, route.max_body).await?;
            return Ok(None);
        }
    }

    let stopped = chain::on_request(&route, &mut cx).await.err();
    ctx.cx = Some(cx);
    if let Some(stop) = stopped {
        respond::refuse_for_plugin(session, ctx, stop).await?;
        return Ok(None);
    }
    Ok(Some(route))
}

/// The route for the request, or why there is none.
fn find_route(config: &RuntimeConfig, req: &RequestHeader) -> Result<Arc<Route>, GatewayError> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(req.uri.host());
    match config.routes.find(host, &req.method, req.uri.path()) {
        Ok(route) => Ok(route.clone()),
        Err(NoRoute::NotFound) => Err(GatewayError::RouteNotFound),
        Err(NoRoute::MethodNotAllowed) => Err(GatewayError::MethodNotAllowed),
    }
}

/// The plugins' view of the request, with the facts only the gateway knows.
fn request_ctx(session: &Session, route: &Route, ctx: &ProxyCtx) -> RequestCtx {
    let req = session.req_header();
    let mut cx = RequestCtx::new(
        route.info.clone(),
        req.method.clone(),
        req.uri.clone(),
        req.headers.clone(),
    );
    let facts = facts_mut(&mut cx);
    facts.client_addr = session.client_addr().and_then(|a| a.as_inet()).copied();
    if let Some(span) = &ctx.span {
        facts.trace = TraceCtx::new(span.clone());
    }
    cx
}

/// The body size the client declared, if any.
fn declared_length(req: &RequestHeader) -> Option<usize> {
    req.headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

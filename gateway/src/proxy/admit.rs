//! The first stage of every request: the well-known documents, routing, the plugins' view of
//! the request, and the declared body size.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderName;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::trace::TraceCtx;
use tollgate_plugin_api::RequestCtx;

use super::context::ProxyCtx;
use super::error::GatewayError;
use super::well_known;
use crate::config::RuntimeConfig;
use crate::routing::{path, NoRoute, Route};

/// What the first look at a request decided.
pub(super) enum Admission {
    /// A well-known document answers it.
    WellKnown(serde_json::Value),
    /// The gateway refuses it.
    Refused(GatewayError),
    /// Routed: `ctx` holds the route and the plugins' view of the request; the head phase is
    /// next.
    Routed(Arc<Route>),
}

/// Routes the request and builds the plugins' view of it. Synchronous: the caller answers what
/// it decided, so no future of this stage sits between Pingora's and the answer's.
pub(super) fn admit(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    config: &RuntimeConfig,
) -> Admission {
    if let Err(error) = normalize_path(session.req_header_mut()) {
        return Admission::Refused(error);
    }
    drop_untrusted_forwarding(session, config);
    if let Some(doc) = well_known::protected_resource(config, session.req_header()) {
        return Admission::WellKnown(doc);
    }
    let route = match find_route(config, session.req_header()) {
        Ok(route) => route,
        Err(error) => return Admission::Refused(error),
    };
    ctx.cx = Some(request_ctx(session, &route, ctx));
    ctx.route = Some(route.clone());
    if !route.serves_endpoint(session.req_header().uri.path()) {
        return Admission::Refused(GatewayError::EndpointNotServed);
    }
    if declared_length(session.req_header()).is_some_and(|len| len > route.max_body) {
        return Admission::Refused(GatewayError::TooLarge {
            limit: Some(route.max_body),
        });
    }
    Admission::Routed(route)
}

/// Headers in which a proxy says what its client asked for (the public host, scheme, port,
/// prefix): the RFC 9728 document's URL is built from them, and upstreams build links from them.
const FORWARDING: [HeaderName; 5] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("forwarded"),
];

/// Removes the forwarding headers of a request that does not come from one of
/// `[server] trusted_proxies`: any client could otherwise name the host that URLs point at.
fn drop_untrusted_forwarding(session: &mut Session, config: &RuntimeConfig) {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    if peer.is_some_and(|ip| config.server.trusted_proxies.trusts(ip)) {
        return;
    }
    let req = session.req_header_mut();
    for name in &FORWARDING {
        if req.headers.contains_key(name) {
            req.remove_header(name);
        }
    }
}

/// Puts the request's path in its normal form (`routing::path`), which routes match and
/// upstreams receive; the query is kept as sent.
fn normalize_path(req: &mut RequestHeader) -> Result<(), GatewayError> {
    let normal = match path::normalize(req.uri.path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(normal) => normal,
    };
    let path_and_query = match req.uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = req.uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| GatewayError::InvalidPath(path::PathError::BadEscape))?,
    );
    let uri = http::Uri::from_parts(parts)
        .map_err(|_| GatewayError::InvalidPath(path::PathError::BadEscape))?;
    req.set_uri(uri);
    Ok(())
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

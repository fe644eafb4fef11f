//! The exchange of a federated MCP route: the federation answers the request (after the
//! plugins' body phase), and its answer goes through the same response phases and streaming as
//! a proxied upstream's.

use std::borrow::Cow;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;
use serde_json::Value;
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::RequestBody;

use super::source::FederatedSource;
use super::stream;
use crate::federation::{AnswerBody, Federation, Inbound};
use crate::protocol::mcp_headers;
use crate::proxy::context::ProxyCtx;
use crate::proxy::error::GatewayError;
use crate::proxy::respond;
use crate::routing::Route;

/// Serves the request from `federation` and streams its answer to the client.
pub(super) async fn serve(
    federation: &std::sync::Arc<Federation>,
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    mut body: RequestBody,
) -> Result<()> {
    let json = request_json(&mut body);
    if let Some(refusal) = rebinding_refusal(session) {
        respond::refuse(session, ctx, &refusal).await?;
        return Ok(());
    }
    ctx.start_upstream(route);
    let traceparent = upstream_traceparent(ctx)?;
    let answer = {
        let request = session.req_header();
        federation
            .serve(Inbound {
                method: &request.method,
                headers: &request.headers,
                body: json,
                traceparent,
            })
            .await
    };
    if let Some(reason) = answer.reason {
        ctx.error = Some(Cow::Borrowed(reason));
    }
    if let (Some(server), Some(cx)) = (&answer.server, ctx.cx.as_mut()) {
        facts_mut(cx).mcp_server = Some(server.clone());
    }
    let mut head = ResponseHeader::build(answer.status, Some(4))?;
    match &answer.body {
        AnswerBody::Json(bytes) => {
            head.insert_header(CONTENT_TYPE, "application/json")?;
            head.insert_header(http::header::CONTENT_LENGTH, bytes.len())?;
        }
        AnswerBody::Stream(_) => {
            head.insert_header(CONTENT_TYPE, "text/event-stream")?;
            head.insert_header(CACHE_CONTROL, "no-cache")?;
            // Framed, so that the client's connection serves its next request (an HTTP/2
            // client's stream is framed by the protocol; Pingora drops the header there).
            head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        AnswerBody::Empty => {
            head.insert_header(http::header::CONTENT_LENGTH, 0)?;
        }
    }
    if let Some(id) = &answer.session {
        head.insert_header(mcp_headers::SESSION_ID, id.as_str())?;
    }
    if let Some(reason) = answer.reason {
        head.insert_header("x-tollgate-reason", reason)?;
    }
    let mut source = FederatedSource::new(head, answer.body);
    stream::stream_response(session, ctx, route, &mut source).await?;
    Ok(())
}

/// The `traceparent` that makes the servers' spans children of the gateway's upstream span.
fn upstream_traceparent(ctx: &ProxyCtx) -> Result<Option<http::HeaderValue>> {
    let mut carrier = RequestHeader::build("POST", b"/", Some(1))?;
    ctx.propagate(&mut carrier);
    Ok(carrier.headers.get("traceparent").cloned())
}

/// DNS rebinding: a web page whose name an attacker pointed at 127.0.0.1 makes a browser send
/// the gateway requests with the page's `Host` and `Origin`. On a loopback connection, a request
/// that carries an `Origin` (every browser POST does) must name a loopback host in both.
/// Connections from the network are not concerned (their `Host` is whatever the operator
/// routes).
fn rebinding_refusal(session: &Session) -> Option<GatewayError> {
    let local = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())?;
    if !local.is_loopback() {
        return None;
    }
    let headers = &session.req_header().headers;
    let origin = headers.get(http::header::ORIGIN)?;
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.parse::<http::Uri>().ok())
        .and_then(|u| u.host().map(str::to_string));
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| format!("http://{h}").parse::<http::Uri>().ok())
        .and_then(|u| u.host().map(str::to_string));
    let loopback = |host: Option<&str>| {
        host.is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
    };
    if loopback(origin_host.as_deref()) && loopback(host.as_deref()) {
        None
    } else {
        Some(GatewayError::CrossOrigin(
            "a browser request from another site to a loopback listener (DNS rebinding protection)",
        ))
    }
}

/// The request's JSON after the body phase (parsed again only if a plugin replaced the bytes).
fn request_json(body: &mut RequestBody) -> Option<Value> {
    match body.take_json() {
        Some(json) => Some(json),
        None if body.raw().is_empty() => None,
        None => serde_json::from_slice(body.raw()).ok(),
    }
}

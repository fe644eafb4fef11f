//! The upstream exchange of body-inspecting (MCP and LLM) routes.
//!
//! Pingora 0.9 hands the request body to `request_body_filter` only after the upstream is
//! connected and the request head sent, and a body read in `request_filter` is not replayed
//! beyond its 64 KiB retry buffer. So for these routes tollgate reads the body whole here,
//! parses it once, runs the body phase, and only then connects with Pingora's own connector,
//! sends the (possibly rewritten) body with an exact `Content-Length`, and streams the answer
//! back chunk by chunk through the same response phases. A rejected request never opens an
//! upstream connection.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::{Decision, RejectKind, Rejection, RequestBody, ResponseChunk, RouteKind};

use super::client_watch::ClientWatch;
use super::connector::UpstreamConnector;
use super::headers::ClientResponse;
use super::{chain, classify_failure, gateway_rejection, headers, invalid, ProxyCtx, Route};
use crate::protocol::observer::ResponseObserver;
use crate::protocol::{anthropic, mcp};
use crate::telemetry::audit;

/// Most bytes of already-arrived response chunks sent to the client in one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// How many times a request is resent when a pooled connection turns out to be dead.
const STALE_CONNECTION_RETRIES: usize = 2;

/// Serves the whole exchange; the response (or an error) has been written when it returns Ok.
pub async fn serve(
    connector: &UpstreamConnector,
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Arc<Route>,
) -> Result<()> {
    let Some(raw) = read_body(session, ctx, route).await? else {
        return Ok(());
    };
    let Some(body) = parse_and_decide(session, ctx, route, raw).await? else {
        return Ok(());
    };
    let Some(mut upstream) = send_request(connector, session, ctx, route, body).await? else {
        return Ok(());
    };
    let reusable = stream_response(session, ctx, route, &mut upstream.session).await?;
    if reusable {
        connector.release(upstream.session, &upstream.peer).await;
    } else {
        upstream.session.shutdown().await;
    }
    Ok(())
}

/// Reads the body whole, bounded by the route's limit; `None` when a 413 was sent.
async fn read_body(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
) -> Result<Option<Bytes>> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buffer.len() + chunk.len() > route.max_body {
            ctx.reject_too_large(session, route.max_body).await?;
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer.freeze()))
}

/// Parses the body for the route's protocol and runs the body phase; `None` when rejected.
async fn parse_and_decide(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    raw: Bytes,
) -> Result<Option<Bytes>> {
    let Some(cx) = ctx.cx.as_mut() else {
        return Error::e_explain(ErrorType::InternalError, "no request context");
    };
    let has_json_body = cx.method() == Method::POST && !raw.is_empty();
    let json = if !has_json_body {
        None
    } else {
        match route.info.kind {
            RouteKind::Mcp => match mcp::parse(&raw) {
                Ok((json, request)) => {
                    facts_mut(cx).mcp = Some(request);
                    Some(json)
                }
                Err(e) => {
                    let rejection = Rejection::new(
                        RejectKind::InvalidRequest,
                        "request.invalid_jsonrpc",
                        e.to_string(),
                    )
                    .with_jsonrpc_code(e.code());
                    ctx.reject(session, invalid("request.invalid_jsonrpc"), &rejection)
                        .await?;
                    return Ok(None);
                }
            },
            // No plugin reads the body and it is not audited: read the few facts the gateway
            // needs without building the JSON tree.
            RouteKind::Llm
                if !ctx.audit_bodies && !route.chain.iter().any(|p| p.inspects_body()) =>
            {
                match anthropic::describe_raw(&raw) {
                    Some(request) => {
                        facts_mut(cx).llm = Some(request);
                        None
                    }
                    None => {
                        let message = "the request body must be a JSON object";
                        let rejection = Rejection::new(
                            RejectKind::InvalidRequest,
                            "request.invalid_json",
                            message,
                        );
                        ctx.reject(session, invalid("request.invalid_json"), &rejection)
                            .await?;
                        return Ok(None);
                    }
                }
            }
            RouteKind::Llm => match serde_json::from_slice::<serde_json::Value>(&raw) {
                Ok(json) if json.is_object() => {
                    facts_mut(cx).llm = Some(anthropic::describe_request(&json));
                    Some(json)
                }
                Ok(_) | Err(_) => {
                    let message = "the request body must be a JSON object";
                    let rejection =
                        Rejection::new(RejectKind::InvalidRequest, "request.invalid_json", message);
                    ctx.reject(session, invalid("request.invalid_json"), &rejection)
                        .await?;
                    return Ok(None);
                }
            },
            RouteKind::Http => None,
        }
    };
    let mut body = RequestBody::new(raw, json);
    if let Err(stop) = chain::on_request_body(route, cx, &mut body).await {
        let decision = Decision::Rejected {
            plugin: stop.plugin,
            reason: stop.rejection.reason.to_string(),
            detail: stop.rejection.detail.clone(),
        };
        ctx.reject(session, decision, &stop.rejection).await?;
        return Ok(None);
    }
    // Only what passed the whole chain is recorded: as forwarded, i.e. after any masking.
    if ctx.audit_bodies {
        ctx.audit_body = body
            .json()
            .and_then(|json| audit::body_excerpt(route.info.kind, json));
    }
    Ok(Some(body.into_bytes()))
}

struct Upstream {
    session: HttpSession,
    peer: HttpPeer,
}

/// Connects, sends the request and reads the response head; `None` when an error was sent.
async fn send_request(
    connector: &UpstreamConnector,
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    body: Bytes,
) -> Result<Option<Upstream>> {
    let Some(cx) = ctx.cx.as_ref() else {
        return Error::e_explain(ErrorType::InternalError, "no request context");
    };
    let mut request = headers::upstream_request(session.req_header(), route, cx, body.len())?;
    ctx.start_upstream(route);
    ctx.propagate(&mut request);
    let peer = match route.upstream.peer().await {
        Ok(peer) => peer,
        Err(e) => {
            let rejection = gateway_rejection(
                RejectKind::Api,
                StatusCode::BAD_GATEWAY,
                "upstream.unavailable",
                e.to_string(),
            );
            ctx.error = Some(Cow::Borrowed("upstream.unavailable"));
            ctx.reject(session, invalid("upstream.unavailable"), &rejection)
                .await?;
            return Ok(None);
        }
    };
    let mut attempt = 0;
    let mut watch = ClientWatch::default();
    loop {
        let attempt_result =
            watch.guard(session, try_send(connector, &peer, route, &request, &body));
        let Some(result) = attempt_result.await else {
            ctx.error = Some(Cow::Borrowed("client.disconnected"));
            tracing::debug!(route = %route.info.name, "client went away while the upstream was working");
            return Ok(None);
        };
        match result {
            Ok(upstream) => {
                return Ok(Some(Upstream {
                    session: upstream,
                    peer,
                }))
            }
            Err((reused, e)) if reused && attempt < STALE_CONNECTION_RETRIES => {
                tracing::debug!(error = %e, "pooled upstream connection failed, retrying on a new one");
                attempt += 1;
            }
            Err((_, e)) => {
                answer_failure(session, ctx, route, &e).await?;
                return Ok(None);
            }
        }
    }
}

/// One attempt: the error says whether the connection came from the pool.
async fn try_send(
    connector: &UpstreamConnector,
    peer: &HttpPeer,
    route: &Route,
    request: &pingora::http::RequestHeader,
    body: &Bytes,
) -> std::result::Result<HttpSession, (bool, Box<Error>)> {
    let (mut upstream, reused) = connector
        .session(peer)
        .await
        .map_err(|e| (false, e.into_up()))?;
    upstream.set_read_timeout(Some(route.upstream.read_timeout()));
    upstream.set_write_timeout(Some(route.upstream.read_timeout()));
    let sent = async {
        upstream
            .write_request_header(Box::new(request.clone()))
            .await?;
        if !body.is_empty() {
            upstream.write_request_body(body.clone(), true).await?;
        }
        upstream.finish_request_body().await?;
        upstream.read_response_header().await
    }
    .await;
    match sent {
        Ok(()) => Ok(upstream),
        Err(e) => {
            upstream.shutdown().await;
            // Marked as the upstream's: an upstream that closes without answering is a 502,
            // not an internal error.
            Err((reused, e.into_up()))
        }
    }
}

/// Answers an upstream failure that happened before anything reached the client with the
/// route's protocol error, with the status `classify_failure` gives it (502 unless a timeout).
async fn answer_failure(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    e: &Error,
) -> Result<()> {
    let (status, reason, message) = classify_failure(e);
    tracing::warn!(route = %route.info.name, error = %e, reason, "upstream exchange failed");
    ctx.error = Some(Cow::Borrowed(reason));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let rejection = gateway_rejection(RejectKind::Api, status, reason, message);
    ctx.reject(session, invalid(reason), &rejection).await
}

/// Records an upstream failure after the response head went out. The error is returned so that
/// the client's response ends abruptly and the client sees the failure.
fn failed_mid_response(ctx: &mut ProxyCtx, route: &Route, e: Box<Error>) -> Box<Error> {
    ctx.error = Some(Cow::Borrowed(classify_failure(&e).1));
    tracing::warn!(route = %route.info.name, error = %e, "upstream failed mid-response");
    e
}

/// Streams the response to the client, chunk by chunk as it arrives. Returns whether the
/// upstream connection can go back to the pool.
///
/// The head goes out together with the body bytes that arrived with it (one write), never
/// later than that: an answer whose body is complete by then gets an exact `Content-Length`
/// even when a plugin rewrote it (instead of chunked framing, one more write).
async fn stream_response(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    upstream: &mut HttpSession,
) -> Result<bool> {
    let Some(upstream_head) = upstream.response_header() else {
        return Error::e_explain(ErrorType::InternalError, "no upstream response header");
    };
    let mut head = ClientResponse::from_upstream(upstream_head);
    let Some(cx) = ctx.cx.as_mut() else {
        return Error::e_explain(ErrorType::InternalError, "no request context");
    };
    let length_dropped = chain::on_response_head(route, cx, &mut head.head).await;
    let content_type = head
        .head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ctx.observer = ResponseObserver::for_response(route.info.kind, content_type);
    ctx.status = head.status().as_u16();
    let head_request = ctx
        .cx
        .as_ref()
        .is_some_and(|cx| cx.method() == Method::HEAD);
    let mut unsent_head = Some(head);
    let mut watch = ClientWatch::default();
    let mut ended = false;
    loop {
        // The first round takes only what has already arrived, so the head never waits.
        let mut data = if unsent_head.is_some() {
            Bytes::new()
        } else {
            let Some(next) = watch.guard(session, upstream.read_response_body()).await else {
                ctx.error = Some(Cow::Borrowed("client.disconnected"));
                tracing::debug!("client went away between response chunks");
                finish_observation(ctx);
                return Ok(false);
            };
            match next {
                Ok(Some(chunk)) => observe_and_filter(ctx, route, chunk),
                Ok(None) => {
                    ended = true;
                    Bytes::new()
                }
                Err(e) => return Err(failed_mid_response(ctx, route, e.into_up())),
            }
        };
        // What the upstream has already delivered goes out in the same write (one syscall, not
        // one per SSE event, when events arrive in a burst). Nothing waits for more: a chunk
        // that is not there yet ends the batch, so each event still leaves as it arrives.
        let mut batch: Option<BytesMut> = None;
        let mut failure = None;
        while !ended && batch.as_ref().map_or(data.len(), BytesMut::len) < COALESCE_LIMIT {
            match upstream.read_response_body().now_or_never() {
                Some(Ok(Some(more))) => {
                    let more = observe_and_filter(ctx, route, more);
                    if data.is_empty() {
                        data = more;
                    } else {
                        batch
                            .get_or_insert_with(|| BytesMut::from(&data[..]))
                            .extend_from_slice(&more);
                    }
                }
                Some(Ok(None)) => ended = true,
                Some(Err(e)) => {
                    // Whatever went wrong reading the body (framing, a reset) is the upstream's.
                    failure = Some(e.into_up());
                    break;
                }
                None => break,
            }
        }
        if ended {
            // The reading of a whole JSON answer is worth making only for plugins.
            let with_reading = !route.chain.is_empty();
            let answer = ctx
                .cx
                .as_mut()
                .and_then(|cx| ctx.observer.finish(cx, with_reading));
            if let Some(cx) = ctx.cx.as_mut() {
                let (end, watch) = match answer {
                    Some(answer) => (
                        ResponseChunk::with_answer(Bytes::new(), answer),
                        Some(&mut ctx.altered_from),
                    ),
                    None => (ResponseChunk::new(Bytes::new(), true), None),
                };
                let tail = chain::on_response_chunk(route, cx, end, watch);
                if !tail.is_empty() {
                    batch
                        .get_or_insert_with(|| BytesMut::from(&data[..]))
                        .extend_from_slice(&tail);
                }
            }
        }
        if let Some(batch) = batch {
            data = batch.freeze();
        }
        if let Some(mut head) = unsent_head.take() {
            if let Some(e) = failure {
                // The body failed before anything was sent (bad framing, a reset with the
                // head): a clear error in the route's protocol, not an answer cut off.
                finish_observation(ctx);
                if let Err(write) = answer_failure(session, ctx, route, &e).await {
                    ctx.error = Some(Cow::Borrowed("client.disconnected"));
                    tracing::debug!(error = %write, "client went away before the error answer");
                }
                return Ok(false);
            }
            if ended && may_have_body(head_request, head.status()) {
                head.frame_complete_body(data.len());
            } else if length_dropped {
                head.frame_as_chunked();
            }
            if let Err(e) = session
                .write_response_header(Box::new(head.into_header()?), false)
                .await
            {
                ctx.error = Some(Cow::Borrowed("client.disconnected"));
                tracing::debug!(error = %e, "client went away before the response head");
                finish_observation(ctx);
                return Ok(false);
            }
        }
        if !data.is_empty() || ended {
            if let Err(e) = session.write_response_body(Some(data), ended).await {
                ctx.error = Some(Cow::Borrowed("client.disconnected"));
                tracing::debug!(error = %e, "client went away mid-response");
                finish_observation(ctx);
                return Ok(false);
            }
        }
        if let Some(e) = failure {
            return Err(failed_mid_response(ctx, route, e));
        }
        if ended {
            return Ok(upstream.response_done());
        }
    }
}

/// Whether a response to this request with this status carries a body (RFC 9110 §6.4.1).
fn may_have_body(head_request: bool, status: StatusCode) -> bool {
    !head_request
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Feeds a response chunk to the usage observer and the plugins' chunk phase (with the events
/// the observer read, so that plugins need not read them again).
fn observe_and_filter(ctx: &mut ProxyCtx, route: &Route, chunk: Bytes) -> Bytes {
    match ctx.cx.as_mut() {
        Some(cx) => {
            // Where the events are is worth noting only for plugins that may read them.
            let events = ctx.observer.chunk(&chunk, !route.chain.is_empty(), cx);
            let chunk = match events {
                Some(events) => ResponseChunk::with_events(chunk, false, events),
                None => ResponseChunk::new(chunk, false),
            };
            // Which plugin changed the answer matters only for one read whole at its end.
            let watch = ctx.observer.reads_whole().then_some(&mut ctx.altered_from);
            chain::on_response_chunk(route, cx, chunk, watch)
        }
        None => chunk,
    }
}

fn finish_observation(ctx: &mut ProxyCtx) {
    if let Some(cx) = ctx.cx.as_mut() {
        ctx.observer.finish(cx, false);
    }
}

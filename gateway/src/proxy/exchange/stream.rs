//! Streaming the answer: each chunk through the usage observer and the plugins' chunk phase and
//! on to the client as it arrives, what has already arrived coalesced into one write.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tollgate_plugin_api::ResponseChunk;

use super::send::answer_failure;
use super::source::AnswerSource;
use crate::protocol::observer::ResponseObserver;
use crate::proxy::chain;
use crate::proxy::client_watch::ClientWatch;
use crate::proxy::context::ProxyCtx;
use crate::proxy::error::GatewayError;
use crate::proxy::headers::ClientResponse;
use crate::routing::Route;

/// Most bytes of already-arrived response chunks sent to the client in one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// The client's response head, held until the body bytes that arrived with it are known.
struct PendingHead {
    head: ClientResponse,
    /// A plugin dropped `Content-Length`: the body must be framed anew.
    length_dropped: bool,
    head_request: bool,
}

/// The bytes that go out in one write, and how the upstream's body stands after them.
#[derive(Default)]
struct Batch {
    data: Bytes,
    /// Set once a second chunk joins `data` (most writes carry one chunk: no copy then).
    joined: Option<BytesMut>,
    ended: bool,
    /// A plugin ended the answer before the upstream did: the rest is not read.
    cut: bool,
    failure: Option<Box<Error>>,
}

impl Batch {
    /// Ends the batch, and the answer, when a plugin ended it (an answer too long to check
    /// whose replacement went out): an upstream that never ends its body must not hold the
    /// client's response open.
    fn cut_if_a_plugin_ended(&mut self, ctx: &ProxyCtx) {
        if ctx.cx.as_ref().is_some_and(|cx| cx.answer_ended()) {
            self.ended = true;
            self.cut = true;
        }
    }

    fn push(&mut self, more: Bytes) {
        if self.data.is_empty() && self.joined.is_none() {
            self.data = more;
        } else if !more.is_empty() {
            self.joined
                .get_or_insert_with(|| BytesMut::from(&self.data[..]))
                .extend_from_slice(&more);
        }
    }

    fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.data.len(), BytesMut::len)
    }

    fn into_bytes(self) -> Bytes {
        match self.joined {
            Some(joined) => joined.freeze(),
            None => self.data,
        }
    }
}

/// Streams the response to the client, chunk by chunk as it arrives. Returns whether the
/// upstream connection can go back to the pool.
///
/// The head goes out together with the body bytes that arrived with it (one write), never
/// later than that: an answer whose body is complete by then gets an exact `Content-Length`
/// even when a plugin rewrote it (instead of chunked framing, one more write).
pub(super) async fn stream_response<A: AnswerSource>(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    upstream: &mut A,
) -> Result<bool> {
    let mut pending = Some(response_head(ctx, route, upstream.head()).await?);
    let mut watch = ClientWatch::default();
    loop {
        let mut batch = Batch::default();
        // The first round takes only what has already arrived, so the head never waits.
        if pending.is_none() {
            let Some(next) = watch.guard(session, upstream.next_chunk()).await else {
                tracing::debug!("client went away between response chunks");
                return Ok(client_gone(ctx));
            };
            match next {
                Ok(Some(chunk)) => {
                    batch.push(observe_and_filter(ctx, route, chunk));
                    batch.cut_if_a_plugin_ended(ctx);
                }
                Ok(None) => batch.ended = true,
                Err(e) => return Err(failed_mid_response(ctx, route, e.into_up())),
            }
        }
        take_arrived(ctx, route, upstream, &mut batch);
        if batch.ended {
            end_of_answer(ctx, route, &mut batch);
        }
        if let Some(head) = pending.take() {
            if let Some(e) = batch.failure.take() {
                // The body failed before anything was sent (bad framing, a reset with the
                // head): a clear error in the route's protocol, not an answer cut off. Boxed:
                // inline, this rare stage would size the future every open stream holds.
                finish_observation(ctx);
                if let Err(write) = Box::pin(answer_failure(session, ctx, route, &e)).await {
                    ctx.error = Some(Cow::Borrowed(GatewayError::ClientGone.reason()));
                    tracing::debug!(error = %write, "client went away before the error answer");
                }
                return Ok(false);
            }
            if let Err(e) = send_head(session, head, &batch).await {
                tracing::debug!(error = %e, "client went away before the response head");
                return Ok(client_gone(ctx));
            }
        }
        let (ended, cut, failure) = (batch.ended, batch.cut, batch.failure.take());
        let data = batch.into_bytes();
        if !data.is_empty() || ended {
            if let Err(e) = session.write_response_body(Some(data), ended).await {
                tracing::debug!(error = %e, "client went away mid-response");
                return Ok(client_gone(ctx));
            }
        }
        if let Some(e) = failure {
            return Err(failed_mid_response(ctx, route, e));
        }
        if ended {
            // An answer cut short leaves the rest of the upstream's body unread.
            return Ok(upstream.reusable() && !cut);
        }
    }
}

/// The client's response head from the upstream's, after the plugins' response phase.
async fn response_head(
    ctx: &mut ProxyCtx,
    route: &Route,
    upstream_head: Option<&ResponseHeader>,
) -> Result<PendingHead> {
    let Some(upstream_head) = upstream_head else {
        return Error::e_explain(ErrorType::InternalError, "no upstream response header");
    };
    let mut head = ClientResponse::from_upstream(upstream_head);
    let Some(cx) = ctx.cx.as_mut() else {
        return Error::e_explain(ErrorType::InternalError, "no request context");
    };
    let length_dropped = chain::on_response_head(route, cx, &mut head.head).await;
    let head_request = cx.method() == Method::HEAD;
    let content_type = head
        .head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ctx.observer = ResponseObserver::for_response(route.info.kind, content_type);
    ctx.status = head.status().as_u16();
    Ok(PendingHead {
        head,
        length_dropped,
        head_request,
    })
}

/// Adds what the upstream has already delivered to `batch` (one write, not one per SSE event,
/// when events arrive in a burst). Nothing waits for more: a chunk that is not there yet ends
/// the batch, so each event still leaves as it arrives.
fn take_arrived<A: AnswerSource>(
    ctx: &mut ProxyCtx,
    route: &Route,
    upstream: &mut A,
    batch: &mut Batch,
) {
    while !batch.ended && batch.len() < COALESCE_LIMIT {
        match upstream.arrived_chunk() {
            Some(Ok(Some(more))) => {
                batch.push(observe_and_filter(ctx, route, more));
                batch.cut_if_a_plugin_ended(ctx);
            }
            Some(Ok(None)) => batch.ended = true,
            Some(Err(e)) => {
                // Whatever went wrong reading the body (framing, a reset) is the upstream's.
                batch.failure = Some(e.into_up());
                break;
            }
            None => break,
        }
    }
}

/// The answer is complete: the plugins' last chunk call, with the gateway's reading of a JSON
/// answer read whole (worth making only for plugins).
fn end_of_answer(ctx: &mut ProxyCtx, route: &Route, batch: &mut Batch) {
    let with_reading = !route.chain.is_empty();
    let Some(cx) = ctx.cx.as_mut() else {
        return;
    };
    let (end, watch) = match ctx.observer.finish(cx, with_reading) {
        Some(answer) => (
            ResponseChunk::with_answer(Bytes::new(), answer),
            Some(&mut ctx.altered_from),
        ),
        None => (ResponseChunk::new(Bytes::new(), true), None),
    };
    let tail = chain::on_response_chunk(route, cx, end, watch);
    if !tail.is_empty() {
        batch.push(tail);
    }
}

/// Writes the head, framed for the body that follows: an exact length when the whole body is
/// in this first write, chunked when a plugin dropped the upstream's length or the upstream
/// gave none (HTTP/2), so that an HTTP/1.1 client's connection outlives the answer.
async fn send_head(session: &mut Session, pending: PendingHead, batch: &Batch) -> Result<()> {
    let PendingHead {
        mut head,
        length_dropped,
        head_request,
    } = pending;
    let has_body = may_have_body(head_request, head.status());
    if batch.ended && has_body {
        head.frame_complete_body(batch.len());
    } else if length_dropped || (has_body && head.is_unframed()) {
        head.frame_as_chunked();
    }
    session
        .write_response_header(Box::new(head.into_header()?), false)
        .await
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

/// Records that the client went away; returns `false`: the upstream connection, in the middle
/// of an answer, is not reused.
fn client_gone(ctx: &mut ProxyCtx) -> bool {
    ctx.error = Some(Cow::Borrowed(GatewayError::ClientGone.reason()));
    finish_observation(ctx);
    false
}

fn finish_observation(ctx: &mut ProxyCtx) {
    if let Some(cx) = ctx.cx.as_mut() {
        ctx.observer.finish(cx, false);
    }
}

/// Records an upstream failure after the response head went out. The error is returned so that
/// the client's response ends abruptly and the client sees the failure.
fn failed_mid_response(ctx: &mut ProxyCtx, route: &Route, e: Box<Error>) -> Box<Error> {
    ctx.error = Some(Cow::Borrowed(GatewayError::from_pingora(&e).reason()));
    tracing::warn!(route = %route.info.name, error = %e, "upstream failed mid-response");
    e
}

//! Sending the request: connecting (a pooled connection first), writing the head and body,
//! reading the response head; an upstream that fails before answering gets the client a clear
//! error in its protocol.

use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::proxy::client_watch::ClientWatch;
use crate::proxy::connector::UpstreamConnector;
use crate::proxy::context::ProxyCtx;
use crate::proxy::error::GatewayError;
use crate::proxy::{headers, respond};
use crate::routing::Route;

/// How many times a request is resent when a pooled connection turns out to be dead.
const STALE_CONNECTION_RETRIES: usize = 2;

/// A connection to the upstream with the response head read, and where it goes back to.
pub(super) struct Upstream {
    /// The connection.
    pub(super) session: HttpSession,
    /// The peer whose pool it belongs to.
    pub(super) peer: HttpPeer,
}

/// Connects, sends the request and reads the response head; `None` when an error was sent.
pub(super) async fn send_request(
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
    let peer = match headers::proxied(route)?.peer().await {
        Ok(peer) => peer,
        Err(e) => {
            respond::fail(
                session,
                ctx,
                &GatewayError::UpstreamUnresolved(e.to_string()),
            )
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
            ctx.error = Some(GatewayError::ClientGone.reason().into());
            tracing::debug!(route = %route.info.name, "client went away while the upstream was working");
            return Ok(None);
        };
        match result {
            Ok(mut upstream) if is_encoded(upstream.response_header()) => {
                // Asked for `identity`, answered compressed: what plugins and usage accounting
                // read would be unreadable, so nothing of it passes.
                upstream.shutdown().await;
                tracing::warn!(route = %route.info.name, "upstream answered with a Content-Encoding although asked for identity");
                respond::fail(session, ctx, &GatewayError::UpstreamEncoded).await?;
                return Ok(None);
            }
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

/// Whether an answer's body is encoded (`Content-Encoding` other than `identity`).
fn is_encoded(head: Option<&pingora::http::ResponseHeader>) -> bool {
    head.is_some_and(|head| {
        head.headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
    })
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
    let timeout = route.upstream().map(|u| u.read_timeout());
    upstream.set_read_timeout(timeout);
    upstream.set_write_timeout(timeout);
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
/// route's protocol error (502 unless a timeout).
pub(super) async fn answer_failure(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Route,
    e: &Error,
) -> Result<()> {
    let error = GatewayError::from_pingora(e);
    let reason = error.reason();
    tracing::warn!(route = %route.info.name, error = %e, reason, "upstream exchange failed");
    respond::fail(session, ctx, &error).await
}

//! Writes gateway-made responses to the client: refusals in the route's protocol, and the
//! well-known documents.

use std::borrow::Cow;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use tollgate_plugin_api::{Decision, Rejection};

use super::chain::Stop;
use super::context::ProxyCtx;
use super::error::GatewayError;
use tollgate_plugin_api::protocol_error::{self, ErrorResponse};

/// Answers a refusal of the gateway's own in the route's protocol, and records it as the
/// request's decision. Nothing is sent when the client is gone.
pub async fn refuse(session: &mut Session, ctx: &mut ProxyCtx, error: &GatewayError) -> Result<()> {
    ctx.decision = Decision::Invalid {
        reason: error.reason().to_string(),
    };
    match error.rejection() {
        Some(rejection) => answer(session, ctx, &rejection).await,
        None => Ok(()),
    }
}

/// Like `refuse`, for a failure of the exchange (kept as the request's error too).
pub async fn fail(session: &mut Session, ctx: &mut ProxyCtx, error: &GatewayError) -> Result<()> {
    ctx.error = Some(Cow::Borrowed(error.reason()));
    refuse(session, ctx, error).await
}

/// Answers 413 for a body over `limit` bytes, then drains and closes the connection.
pub async fn refuse_too_large(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    limit: usize,
) -> Result<()> {
    let error = GatewayError::TooLarge { limit: Some(limit) };
    refuse(session, ctx, &error).await?;
    drain_and_close(session).await;
    Ok(())
}

/// Answers a plugin's refusal in the route's protocol, and records who refused.
pub async fn refuse_for_plugin(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    stop: Stop,
) -> Result<()> {
    ctx.decision = Decision::Rejected {
        plugin: stop.plugin,
        reason: stop.rejection.reason.to_string(),
        detail: stop.rejection.detail.clone(),
    };
    answer(session, ctx, &stop.rejection).await
}

async fn answer(session: &mut Session, ctx: &mut ProxyCtx, rejection: &Rejection) -> Result<()> {
    let response = protocol_error::render(ctx.style(), rejection, ctx.jsonrpc_id());
    ctx.status = response.status.as_u16();
    send(session, &response).await
}

/// Sends `error` as a complete response.
pub async fn send(session: &mut Session, error: &ErrorResponse) -> Result<()> {
    let mut resp = ResponseHeader::build(error.status, Some(4 + error.headers.len()))?;
    resp.insert_header(CONTENT_TYPE, "application/json")?;
    resp.insert_header(CONTENT_LENGTH, error.body.len().to_string())?;
    for (name, value) in &error.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(error.body.clone()), true)
        .await
}

/// Most bytes of an unwanted request body read (and dropped) after an early answer.
const DRAIN_MAX_BYTES: usize = 64 << 20;
/// Longest time spent draining.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// After answering early (413), reads and drops the rest of the request body for a bounded time,
/// then marks the connection for closing. Without this the client, still uploading, would often
/// see a connection reset instead of the answer.
pub async fn drain_and_close(session: &mut Session) {
    session.set_keepalive(None);
    let drain = async {
        let mut drained = 0;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            drained += chunk.len();
            if drained > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
}

/// Sends a complete `application/json` response.
pub async fn send_json(
    session: &mut Session,
    status: http::StatusCode,
    doc: &serde_json::Value,
) -> Result<()> {
    let body = bytes::Bytes::from(doc.to_string());
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header(CONTENT_TYPE, "application/json")?;
    resp.insert_header(CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header("cache-control", "max-age=300")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

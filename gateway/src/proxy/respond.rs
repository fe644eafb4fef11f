//! Writes gateway-made responses (errors) to the client.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::protocol::errors::ErrorResponse;

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

//! A server's messages after the head of its answer, read one at a time: the events of an SSE
//! body (HTTP servers) or the messages a stdio process sent for one request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::sync::mpsc;

use super::LinkError;

/// How long the rest of an answer's stream is read after its response, for the connection's sake.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// Most bytes of one answer (or one event) the gateway reads whole.
pub(crate) const MAX_ANSWER: usize = tollgate_plugin_api::limits::MAX_HELD_ANSWER;

/// A stream of a server's messages, read event by event.
#[derive(Debug)]
pub struct EventStream {
    source: Source,
    /// Longest wait for the next message; `None` on long-lived streams.
    idle_timeout: Option<Duration>,
}

/// One message of a stdio process, or why there will be no more.
pub(crate) type Delivery = Result<Value, LinkError>;

#[derive(Debug)]
enum Source {
    /// An SSE body, with the bytes of the event not yet complete.
    Sse {
        response: reqwest::Response,
        buffer: BytesMut,
    },
    /// Messages a stdio process sent, the first already taken from the channel.
    Messages {
        first: Option<Value>,
        receiver: mpsc::Receiver<Delivery>,
    },
}

impl EventStream {
    /// The SSE body of `response`, each event awaited at most `idle_timeout`.
    pub(crate) fn sse(response: reqwest::Response, idle_timeout: Option<Duration>) -> Self {
        Self {
            source: Source::Sse {
                response,
                buffer: BytesMut::new(),
            },
            idle_timeout,
        }
    }

    /// `first`, then what `receiver` delivers, each awaited at most `idle_timeout`.
    pub(crate) fn messages(
        first: Option<Value>,
        receiver: mpsc::Receiver<Delivery>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            source: Source::Messages { first, receiver },
            idle_timeout,
        }
    }

    /// Reads what is left of the stream in the background (a server ends its answer's stream
    /// after the response), so that its connection goes back to the pool instead of being
    /// closed; a stream that does not end soon is dropped.
    pub fn drain_in_background(self) {
        if let Source::Sse { mut response, .. } = self.source {
            tokio::spawn(async move {
                let drained = async { while let Ok(Some(_)) = response.chunk().await {} };
                let _ = tokio::time::timeout(DRAIN_WAIT, drained).await;
            });
        }
    }

    /// The same stream without an idle timeout (a stream of notifications may be quiet for
    /// long).
    pub fn long_lived(mut self) -> Self {
        self.idle_timeout = None;
        self
    }

    /// The `data` of the next event that has any (events without data, such as priming events
    /// or comments, are skipped); `None` at the end of the stream.
    pub async fn next_data(&mut self) -> Result<Option<String>, LinkError> {
        match &mut self.source {
            Source::Sse { response, buffer } => {
                next_sse_data(response, buffer, self.idle_timeout).await
            }
            Source::Messages { first, receiver } => {
                let message = next_delivered(first, receiver, self.idle_timeout).await?;
                Ok(message.map(|m| m.to_string()))
            }
        }
    }

    /// The next JSON-RPC message of the stream; `None` at its end.
    pub async fn next_message(&mut self) -> Result<Option<Value>, LinkError> {
        match &mut self.source {
            Source::Sse { response, buffer } => {
                match next_sse_data(response, buffer, self.idle_timeout).await? {
                    Some(data) => serde_json::from_str(&data)
                        .map(Some)
                        .map_err(|e| LinkError::Protocol(format!("an event is not JSON: {e}"))),
                    None => Ok(None),
                }
            }
            Source::Messages { first, receiver } => {
                next_delivered(first, receiver, self.idle_timeout).await
            }
        }
    }
}

/// The next message a stdio process delivered.
async fn next_delivered(
    first: &mut Option<Value>,
    receiver: &mut mpsc::Receiver<Delivery>,
    idle_timeout: Option<Duration>,
) -> Result<Option<Value>, LinkError> {
    if let Some(first) = first.take() {
        return Ok(Some(first));
    }
    within(idle_timeout, receiver.recv()).await?.transpose()
}

/// The `data` of the next SSE event that has any.
async fn next_sse_data(
    response: &mut reqwest::Response,
    buffer: &mut BytesMut,
    idle_timeout: Option<Duration>,
) -> Result<Option<String>, LinkError> {
    {
        loop {
            if let Ok(text) = std::str::from_utf8(buffer) {
                if let Some((len, _, data)) = tollgate_plugin_api::sse::next_event(text) {
                    let data = data.into_owned();
                    let _ = buffer.split_to(len);
                    if data.is_empty() {
                        continue;
                    }
                    return Ok(Some(data));
                }
            }
            if buffer.len() > MAX_ANSWER {
                return Err(LinkError::Protocol("an event is too long".into()));
            }
            match within(idle_timeout, response.chunk())
                .await?
                .map_err(failed)?
            {
                Some(bytes) => buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// `future`, failed with [`LinkError::Timeout`] past `limit`.
async fn within<T>(
    limit: Option<Duration>,
    future: impl std::future::Future<Output = T>,
) -> Result<T, LinkError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future)
            .await
            .map_err(|_| LinkError::Timeout(limit)),
        None => Ok(future.await),
    }
}

/// Reads a body whole within `timeout` and [`MAX_ANSWER`].
pub(crate) async fn read_whole(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<Bytes, LinkError> {
    let mut body = BytesMut::new();
    loop {
        let chunk = within(Some(timeout), response.chunk())
            .await?
            .map_err(failed)?;
        let Some(chunk) = chunk else {
            return Ok(body.freeze());
        };
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(LinkError::Protocol("the answer is too long".into()));
        }
        body.extend_from_slice(&chunk);
    }
}

/// A failed HTTP exchange, without the URL (which may carry credentials).
pub(crate) fn failed(error: reqwest::Error) -> LinkError {
    LinkError::Unavailable(error_chain(&error.without_url()))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

//! Where an answer comes from: a proxied upstream's connection, or the federation's answer. The
//! response phases and the streaming to the client are the same for both (`stream`).

use std::future::Future;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::Result;

use crate::federation::AnswerBody;

/// An answer being read: its head, then its body chunk by chunk.
pub(super) trait AnswerSource: Send {
    /// The response head.
    fn head(&self) -> Option<&ResponseHeader>;
    /// The next chunk of the body; `None` at its end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// The next chunk if it has already arrived (`None`: not yet).
    fn arrived_chunk(&mut self) -> Option<Result<Option<Bytes>>> {
        self.next_chunk().now_or_never()
    }
    /// Whether the connection can serve another request after this answer.
    fn reusable(&mut self) -> bool;
}

impl AnswerSource for HttpSession {
    fn head(&self) -> Option<&ResponseHeader> {
        self.response_header()
    }

    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.read_response_body()
    }

    fn reusable(&mut self) -> bool {
        self.response_done()
    }
}

/// The federation's answer to a request.
pub(super) struct FederatedSource {
    head: ResponseHeader,
    body: AnswerBody,
}

impl FederatedSource {
    /// An answer with `head` and `body`.
    pub(super) fn new(head: ResponseHeader, body: AnswerBody) -> Self {
        Self { head, body }
    }
}

impl AnswerSource for FederatedSource {
    fn head(&self) -> Option<&ResponseHeader> {
        Some(&self.head)
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(match &mut self.body {
            AnswerBody::Empty => None,
            AnswerBody::Json(_) => match std::mem::replace(&mut self.body, AnswerBody::Empty) {
                AnswerBody::Json(bytes) => Some(bytes),
                _ => None,
            },
            AnswerBody::Stream(stream) => stream.next().await,
        })
    }

    fn reusable(&mut self) -> bool {
        false
    }
}

//! What the federation answers a client: a status, maybe a session id, and a body that is
//! empty, one JSON document, or an SSE stream produced as the servers' messages arrive.

use bytes::Bytes;
use futures::stream::BoxStream;
use http::StatusCode;
use serde_json::Value;

/// The answer to one client request.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// `Mcp-Session-Id` to send (the answer to `initialize`).
    pub session: Option<String>,
    /// The body.
    pub body: AnswerBody,
    /// The server that answered, for metrics and audit records (none for local answers).
    pub server: Option<std::sync::Arc<str>>,
    /// The gateway's reason when it answers an error itself (e.g. `upstream.unavailable`).
    pub reason: Option<&'static str>,
}

/// The body of an [`Answer`].
pub enum AnswerBody {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Bytes),
    /// `text/event-stream`: each item one or more whole events; the stream's end is the body's.
    Stream(BoxStream<'static, Bytes>),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            AnswerBody::Empty => "empty",
            AnswerBody::Json(_) => "json",
            AnswerBody::Stream(_) => "stream",
        };
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &body)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// A JSON-RPC message with HTTP 200.
    pub fn json(message: &Value) -> Self {
        Self::json_with_status(StatusCode::OK, message)
    }

    /// A JSON-RPC message with `status`.
    pub fn json_with_status(status: StatusCode, message: &Value) -> Self {
        Self::json_bytes(status, Bytes::from(message.to_string()))
    }

    /// A JSON-RPC message already written out.
    pub fn json_bytes(status: StatusCode, bytes: Bytes) -> Self {
        Self::with_body(status, AnswerBody::Json(bytes))
    }

    /// `202 Accepted` without a body (a notification or a response was taken).
    pub fn accepted() -> Self {
        Self::empty(StatusCode::ACCEPTED)
    }

    /// `status` without a body.
    pub fn empty(status: StatusCode) -> Self {
        Self::with_body(status, AnswerBody::Empty)
    }

    /// An SSE answer (HTTP 200) made of `events`.
    pub fn stream(events: futures::stream::BoxStream<'static, Bytes>) -> Self {
        Self::with_body(StatusCode::OK, AnswerBody::Stream(events))
    }

    fn with_body(status: StatusCode, body: AnswerBody) -> Self {
        Self {
            status,
            session: None,
            body,
            server: None,
            reason: None,
        }
    }

    /// A JSON-RPC error the gateway gives itself, with the HTTP status it goes with.
    pub fn error(
        status: StatusCode,
        id: &Value,
        code: i64,
        message: &str,
        reason: &'static str,
    ) -> Self {
        let data = serde_json::json!({ "reason": reason });
        let mut answer = Self::json_with_status(
            status,
            &super::jsonrpc::error(id, code, message, Some(data)),
        );
        answer.reason = Some(reason);
        answer
    }

    /// Notes the server that answered.
    pub fn answered_by(mut self, server: &std::sync::Arc<str>) -> Self {
        self.server = Some(server.clone());
        self
    }
}

/// One SSE event carrying a JSON-RPC message.
pub fn sse_event(message: &Value) -> Bytes {
    let mut out = String::with_capacity(64);
    out.push_str("event: message\ndata: ");
    out.push_str(&message.to_string());
    out.push_str("\n\n");
    Bytes::from(out)
}

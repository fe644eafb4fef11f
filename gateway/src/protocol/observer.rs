//! Watches a response body on its way to the client and records what plugins need (usage,
//! model) without holding any byte back.

use bytes::Bytes;
use tollgate_plugin_api::json_answer::JsonAnswer;
use tollgate_plugin_api::stream_events::StreamEvents;
use tollgate_plugin_api::{RequestCtx, RouteKind};

use super::anthropic;
use super::sse::SseFramer;

/// Non-streamed JSON bodies larger than this are not inspected for usage.
use tollgate_plugin_api::limits::MAX_HELD_ANSWER as MAX_JSON_BODY;

/// What the observer does with the body.
#[derive(Debug)]
pub enum ResponseObserver {
    /// Nothing to learn from this response.
    Ignore,
    /// An SSE stream: events are read as they pass.
    Sse(SseFramer),
    /// A JSON body, copied (bounded) to be parsed at its end.
    Json(Vec<u8>),
}

impl ResponseObserver {
    /// The observer for a response of `content_type` on a route of `kind`.
    pub fn for_response(kind: RouteKind, content_type: Option<&str>) -> Self {
        if kind != RouteKind::Llm {
            return ResponseObserver::Ignore;
        }
        let content_type = content_type.unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            ResponseObserver::Sse(SseFramer::new())
        } else if content_type.starts_with("application/json") {
            ResponseObserver::Json(Vec::new())
        } else {
            ResponseObserver::Ignore
        }
    }

    /// Observes one chunk; with `locate`, for a chunk of a stream that is exactly a run of
    /// complete events, returns where they are (for the plugins' chunk phase).
    pub fn chunk(
        &mut self,
        data: &[u8],
        locate: bool,
        cx: &mut RequestCtx,
    ) -> Option<StreamEvents> {
        match self {
            ResponseObserver::Ignore => None,
            ResponseObserver::Sse(framer) => {
                framer.feed(data, locate, |event| anthropic::observe_event(event, cx))
            }
            ResponseObserver::Json(buffer) => {
                if buffer.len() + data.len() > MAX_JSON_BODY {
                    *self = ResponseObserver::Ignore;
                } else {
                    buffer.extend_from_slice(data);
                }
                None
            }
        }
    }

    /// Whether the body is read whole at its end (a JSON answer), for the plugins' last chunk.
    pub fn reads_whole(&self) -> bool {
        matches!(self, ResponseObserver::Json(_))
    }

    /// The body ended. With `with_reading`, returns the reading of a whole JSON answer, for the
    /// plugins' last chunk.
    pub fn finish(&mut self, cx: &mut RequestCtx, with_reading: bool) -> Option<JsonAnswer> {
        match std::mem::replace(self, ResponseObserver::Ignore) {
            ResponseObserver::Json(buffer) if with_reading => {
                anthropic::observe_json_answer(Bytes::from(buffer), cx)
            }
            ResponseObserver::Json(buffer) => {
                anthropic::observe_json_bytes(&buffer, cx);
                None
            }
            _ => None,
        }
    }
}

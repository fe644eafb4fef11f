//! What plugins see of the request body and of the response on its way to the client.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::json_answer::JsonAnswer;
use crate::stream_events::StreamEvents;

/// A request body, read whole and parsed once. Rewrites go through `json_mut` or `replace`.
#[derive(Debug, Clone)]
pub struct RequestBody {
    raw: Bytes,
    json: Option<serde_json::Value>,
    json_changed: bool,
}

impl RequestBody {
    /// A body with its parsed JSON, if it was JSON.
    pub fn new(raw: Bytes, json: Option<serde_json::Value>) -> Self {
        Self {
            raw,
            json,
            json_changed: false,
        }
    }

    /// The bytes the client sent (or the last `replace`).
    #[inline]
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The parsed JSON document.
    #[inline]
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json.as_ref()
    }

    /// The parsed JSON document for rewriting; the body is re-serialized before the upstream.
    #[inline]
    pub fn json_mut(&mut self) -> Option<&mut serde_json::Value> {
        self.json_changed = self.json.is_some();
        self.json.as_mut()
    }

    /// Takes the parsed JSON out to work on it without copying (e.g. decide on the whole
    /// document, then keep or drop the changes); hand it back with `put_json`.
    #[inline]
    pub fn take_json(&mut self) -> Option<serde_json::Value> {
        self.json.take()
    }

    /// Puts back the JSON taken with `take_json`; `changed`: re-serialize it for the upstream.
    #[inline]
    pub fn put_json(&mut self, json: serde_json::Value, changed: bool) {
        self.json = Some(json);
        self.json_changed |= changed;
    }

    /// Replaces the whole body; the JSON view is dropped.
    #[inline]
    pub fn replace(&mut self, raw: Bytes) {
        self.raw = raw;
        self.json = None;
        self.json_changed = false;
    }

    /// Whether a plugin rewrote the body.
    #[inline]
    pub fn is_rewritten(&self) -> bool {
        self.json_changed
    }

    /// The bytes to send upstream.
    pub fn into_bytes(self) -> Bytes {
        match (self.json_changed, self.json) {
            (true, Some(json)) => serde_json::to_vec(&json)
                .map(Bytes::from)
                .unwrap_or(self.raw),
            _ => self.raw,
        }
    }
}

/// The response head, as plugins may change it before the client sees it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
}

/// One chunk of the response body on its way to the client.
#[derive(Debug)]
pub struct ResponseChunk {
    data: Bytes,
    end_of_stream: bool,
    /// Set once a plugin replaced `data`: the gateway's readings describe the bytes it received,
    /// not these.
    changed: bool,
    events: Option<StreamEvents>,
    /// Boxed: every chunk of every stream is moved along the chain, only a JSON answer's last
    /// one carries this.
    answer: Option<Box<JsonAnswer>>,
}

impl ResponseChunk {
    /// A chunk the gateway knows nothing more about.
    pub fn new(data: Bytes, end_of_stream: bool) -> Self {
        Self {
            data,
            end_of_stream,
            changed: false,
            events: None,
            answer: None,
        }
    }

    /// The last chunk of a JSON answer the gateway read whole (`answer`, as the upstream sent
    /// it).
    pub fn with_answer(data: Bytes, answer: JsonAnswer) -> Self {
        Self {
            answer: Some(Box::new(answer)),
            ..Self::new(data, true)
        }
    }

    /// A chunk that is exactly the complete SSE `events` the gateway read in it.
    pub fn with_events(data: Bytes, end_of_stream: bool, events: StreamEvents) -> Self {
        Self {
            events: Some(events),
            ..Self::new(data, end_of_stream)
        }
    }

    /// The bytes to send, as the upstream sent them or as an earlier plugin replaced them.
    #[inline]
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Whether this is the last chunk.
    #[inline]
    pub fn end_of_stream(&self) -> bool {
        self.end_of_stream
    }

    /// Replaces the bytes to send (e.g. masking, or holding them back with an empty chunk).
    ///
    /// Handing back the bytes the chunk holds (a clone of [`data`](Self::data)), or an empty
    /// chunk for an empty one, is no change: a plugin that lets a chunk through unchanged may
    /// still call it. Any other call marks the chunk changed, and the gateway's readings of it
    /// ([`stream_events`](Self::stream_events), and the [`json_answer`](Self::json_answer) of
    /// the plugins after this one) no longer apply.
    #[inline]
    pub fn set_data(&mut self, data: Bytes) {
        let same = data.len() == self.data.len()
            && (data.is_empty() || data.as_ptr() == self.data.as_ptr());
        self.changed |= !same;
        self.data = data;
    }

    /// Whether a plugin replaced the bytes of this chunk (see [`set_data`](Self::set_data)).
    #[inline]
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The SSE events of this chunk as the gateway read them (LLM routes), when the chunk is
    /// exactly a run of complete events and no plugin replaced its bytes: use them instead of
    /// parsing the events again. `None` otherwise (a chunk that splits an event, not a stream).
    #[inline]
    pub fn stream_events(&self) -> Option<&StreamEvents> {
        self.events.as_ref().filter(|_| !self.changed)
    }

    /// With a JSON answer's last chunk (LLM routes): the whole answer as the upstream sent it
    /// and where its texts are, so that a plugin that held the answer need not parse it again.
    /// The plugins after one that changed the answer (in any chunk) do not get it. Use it only
    /// when it is byte for byte what the plugin holds.
    #[inline]
    pub fn json_answer(&self) -> Option<&JsonAnswer> {
        self.answer.as_deref()
    }

    /// Drops the JSON answer's reading (the gateway does so for the plugins after one that changed
    /// the answer: the reading holds the upstream's bytes).
    #[inline]
    pub fn forget_json_answer(&mut self) {
        self.answer = None;
    }

    /// The bytes to send and the events read in them (for their allocation, reused).
    pub fn into_parts(self) -> (Bytes, Option<StreamEvents>) {
        (self.data, self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> StreamEvents {
        StreamEvents::read("data: {}\n\n", |_| {})
    }

    #[test]
    fn replacing_the_bytes_hides_the_gateways_events() {
        let data = Bytes::from_static(b"data: {}\n\n");
        let mut chunk = ResponseChunk::with_events(data.clone(), false, events());
        chunk.set_data(data.clone());
        assert!(
            !chunk.is_changed(),
            "the same bytes handed back are no change"
        );
        assert!(chunk.stream_events().is_some());
        chunk.set_data(Bytes::copy_from_slice(&data));
        assert!(chunk.is_changed(), "equal bytes elsewhere are a change");
        assert!(chunk.stream_events().is_none());
        chunk.set_data(data);
        assert!(chunk.is_changed(), "a change is not undone");
    }

    #[test]
    fn an_empty_chunk_replaced_by_an_empty_one_is_unchanged() {
        let mut chunk = ResponseChunk::new(Bytes::new(), true);
        chunk.set_data(Bytes::from(Vec::new()));
        assert!(!chunk.is_changed());
        chunk.set_data(Bytes::from_static(b"x"));
        assert!(chunk.is_changed());
        assert!(chunk.end_of_stream());
        assert_eq!(chunk.into_parts().0, "x");
    }
}

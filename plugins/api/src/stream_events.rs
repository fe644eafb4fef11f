//! What the gateway read from the events of a streamed LLM answer, handed to the route's
//! plugins with each chunk ([`crate::ResponseChunk::stream_events`]) so that no plugin parses
//! the same event again: a stream is mostly `content_block_delta` events, about one per token.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sse::{next_event, offset_in};

/// The events of one response chunk that is exactly a run of complete SSE events, in order.
#[derive(Debug, Default, Clone)]
pub struct StreamEvents {
    events: Vec<StreamEvent>,
}

/// One complete event of a chunk; every range is a byte range of the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The whole event, its closing blank line included.
    pub range: Range<usize>,
    /// The `event:` name, if it has one.
    pub name: Option<Range<usize>>,
    /// The value of its `data:` line; `None` when it has none or several (read those with
    /// [`crate::sse::event_parts`]).
    pub data: Option<Range<usize>>,
    /// For a `content_block_delta` event with one `data:` line that [`ContentDeltaRef::read`]
    /// accepted: its block and fields. `None` for any other event: a plugin that needs to know
    /// reads the event itself.
    pub content_delta: Option<ContentDelta>,
}

/// A `content_block_delta` event's block index and where its delta's fields stand: each is the
/// JSON value as sent (a string with its quotes), `None` when absent or `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentDelta {
    /// The content block the delta belongs to.
    pub index: u64,
    /// `delta.text` (a `text_delta`).
    pub text: Option<Range<usize>>,
    /// `delta.partial_json` (an `input_json_delta` of a tool call).
    pub partial_json: Option<Range<usize>>,
    /// `delta.thinking` (a `thinking_delta`).
    pub thinking: Option<Range<usize>>,
}

/// A `content_block_delta` event's data read without building a JSON tree, borrowing from it.
#[derive(Debug, Deserialize)]
pub struct ContentDeltaRef<'a> {
    /// The content block (0 when absent).
    #[serde(default)]
    pub index: u64,
    /// The `delta` object.
    #[serde(borrow, default)]
    pub delta: Option<DeltaFields<'a>>,
}

/// The fields of a `delta` object that carry generated text, as JSON values.
#[derive(Debug, Deserialize)]
pub struct DeltaFields<'a> {
    /// `text`.
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    /// `partial_json`.
    #[serde(borrow, default)]
    pub partial_json: Option<&'a RawValue>,
    /// `thinking`.
    #[serde(borrow, default)]
    pub thinking: Option<&'a RawValue>,
}

impl<'a> ContentDeltaRef<'a> {
    /// Reads a `content_block_delta` event's data; `None` if it is not such an object (or has
    /// duplicate keys, which a JSON tree would accept: read it as a tree then).
    pub fn read(data: &'a str) -> Option<Self> {
        serde_json::from_str(data).ok()
    }

    /// The delta's fields, each `None` when absent.
    fn fields(&self) -> [Option<&'a RawValue>; 3] {
        match &self.delta {
            Some(delta) => [delta.text, delta.partial_json, delta.thinking],
            None => [None; 3],
        }
    }
}

/// One event as the gateway reads it, handed to an observer.
#[derive(Debug)]
pub struct EventView<'a> {
    /// The `event:` name.
    pub name: Option<&'a str>,
    /// The `data:` lines, joined with `\n`.
    pub data: &'a str,
    /// The typed read of a `content_block_delta` event (`None` for other events, or when the
    /// read refused it).
    pub content_delta: Option<&'a ContentDeltaRef<'a>>,
}

impl StreamEvents {
    /// Reads `chunk`, which must be a run of complete events (see
    /// [`crate::sse::complete_events_len`]; an incomplete end is not read), calling `observe`
    /// with each event as it goes.
    pub fn read(chunk: &str, mut observe: impl FnMut(&EventView<'_>)) -> Self {
        let mut events = Vec::new();
        let mut start = 0;
        while let Some((len, name, data)) = next_event(&chunk[start..]) {
            let event = &chunk[start..start + len];
            let mut read =
                read_event(event, name, data, &mut observe, true).unwrap_or(StreamEvent {
                    range: 0..len,
                    name: None,
                    data: None,
                    content_delta: None,
                });
            read.shift(start);
            start += len;
            events.push(read);
        }
        Self { events }
    }

    /// The events, in order.
    pub fn as_slice(&self) -> &[StreamEvent] {
        &self.events
    }

    /// Forgets the events, keeping the allocation for the next chunk.
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

/// Calls `observe` with every complete event of `text`, without recording where they are (for
/// bytes that are not one chunk's own events: a partial event carried over plus the next chunk).
pub fn observe_events(text: &str, mut observe: impl FnMut(&EventView<'_>)) {
    let mut rest = text;
    while let Some((len, name, data)) = next_event(rest) {
        read_event(&rest[..len], name, data, &mut observe, false);
        rest = &rest[len..];
    }
}

/// Reads one event (`name` and `data` as [`crate::sse::next_event`] found them), shows it to
/// `observe`, and with `locate` says where its parts are (relative to `event`).
fn read_event<'e>(
    event: &'e str,
    name: Option<&'e str>,
    data: Cow<'e, str>,
    observe: &mut impl FnMut(&EventView<'_>),
    locate: bool,
) -> Option<StreamEvent> {
    let typed = match name {
        Some("content_block_delta") => ContentDeltaRef::read(&data),
        _ => None,
    };
    // As a browser dispatches events: only those with data.
    if !data.is_empty() {
        observe(&EventView {
            name,
            data: &data,
            content_delta: typed.as_ref(),
        });
    }
    if !locate {
        return None;
    }
    let range_of = |part: &str| offset_in(event, part).map(|start| start..start + part.len());
    // Ranges only for a single `data:` line: a joined one is not a slice of the event.
    let data_range = (!data.is_empty()).then(|| range_of(&data)).flatten();
    let content_delta = data_range.as_ref().and(typed.as_ref()).and_then(|typed| {
        let [text, partial_json, thinking] = typed
            .fields()
            .map(|field| field.map(|raw| range_of(raw.get())));
        // A field present but not located would read as absent: no delta facts then.
        if [&text, &partial_json, &thinking]
            .iter()
            .any(|f| matches!(f, Some(None)))
        {
            return None;
        }
        Some(ContentDelta {
            index: typed.index,
            text: text.flatten(),
            partial_json: partial_json.flatten(),
            thinking: thinking.flatten(),
        })
    });
    Some(StreamEvent {
        range: 0..event.len(),
        name: name.and_then(range_of),
        data: data_range,
        content_delta,
    })
}

impl StreamEvent {
    /// Moves every range `by` bytes on (from the event's start to the chunk's).
    fn shift(&mut self, by: usize) {
        let shift = |range: &mut Range<usize>| *range = range.start + by..range.end + by;
        shift(&mut self.range);
        self.name.iter_mut().for_each(shift);
        self.data.iter_mut().for_each(shift);
        if let Some(delta) = &mut self.content_delta {
            delta.text.iter_mut().for_each(shift);
            delta.partial_json.iter_mut().for_each(shift);
            delta.thinking.iter_mut().for_each(shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_delta_fields_are_located_in_the_chunk() {
        let chunk = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
            "event: content_block_delta\r\ndata: {\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi \\\"x\\\"\"}}\r\n\r\n",
            "event: content_block_delta\ndata: {\"index\":0,\"index\":1,\"delta\":{}}\n\n",
            "event: content_block_delta\ndata: {\"delta\":\ndata: {\"thinking\":\"t\"}}\n\n",
            "event: content_block_delta\ndata: {\"delta\":{\"partial_json\":\"{\\\"a\\\"\",\"text\":null}}\n\n",
        );
        let mut seen = Vec::new();
        let events = StreamEvents::read(chunk, |view| {
            seen.push((
                view.name.map(str::to_string),
                view.data.to_string(),
                view.content_delta.map(|d| d.index),
            ))
        });
        let events = events.as_slice();
        assert_eq!(events.len(), 5);
        assert_eq!(events.last().unwrap().range.end, chunk.len());
        let text = |range: &Option<Range<usize>>| range.clone().map(|r| &chunk[r]);
        assert_eq!(text(&events[0].name), Some("message_start"));
        assert_eq!(text(&events[0].data), Some("{\"type\":\"message_start\"}"));
        assert_eq!(events[0].content_delta, None, "not a delta");
        let delta = events[1].content_delta.as_ref().unwrap();
        assert_eq!(delta.index, 2);
        assert_eq!(text(&delta.text), Some("\"hi \\\"x\\\"\""));
        assert_eq!(
            (delta.partial_json.clone(), delta.thinking.clone()),
            (None, None)
        );
        assert_eq!(
            events[2].content_delta, None,
            "the typed read refuses duplicate keys"
        );
        assert_eq!(
            (events[3].data.clone(), events[3].content_delta.clone()),
            (None, None),
            "two data lines: nothing located"
        );
        assert_eq!(
            seen[3].1, "{\"delta\":\n{\"thinking\":\"t\"}}",
            "but observed, joined"
        );
        assert_eq!(seen[3].2, Some(0));
        let delta = events[4].content_delta.as_ref().unwrap();
        assert_eq!(text(&delta.partial_json), Some("\"{\\\"a\\\"\""));
        assert_eq!(delta.text, None, "null reads as absent");
        let mut observed = 0;
        observe_events(chunk, |_| observed += 1);
        assert_eq!(observed, 5);
    }
}

//! Frames a streamed response into complete Server-Sent Events for the usage observer. It only
//! observes: the bytes go to the client as they arrive, whatever state the framer is in.

use bytes::BytesMut;
use tollgate_plugin_api::sse::EventScanner;
use tollgate_plugin_api::stream_events::{observe_events, EventView, StreamEvents};

/// Longest event kept for inspection; the rest of a longer one is skipped, not forwarded late.
use tollgate_plugin_api::limits::MAX_HELD_EVENT as MAX_EVENT_BYTES;

/// Splits a byte stream into SSE events across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct SseFramer {
    /// The start of an event that an earlier chunk left incomplete.
    carry: BytesMut,
    /// Where the complete events of `carry` (or of a chunk read straight) end, each byte read
    /// once: a long event in many small pieces is not read again from its start at each one.
    scanner: EventScanner,
    /// Set while the rest of an oversized event is skipped: where the last skipped byte left
    /// the line it was on.
    skipping: Option<LineState>,
}

/// Where the last byte seen left the current line (to find a blank line across chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Inside a line.
    InLine,
    /// Just after a `\n` (or `\r\n`): a line end now makes a blank line.
    LineStart,
    /// Just after a `\r`: a `\n` now completes that line end, a `\r` makes a blank line.
    AfterCr,
}

impl SseFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `chunk`, calling `observe` for every event it completes. With `locate`, returns
    /// where the events stand when the chunk is exactly a run of complete events (the usual
    /// case: upstreams write whole events), for the route's plugins to use instead of reading
    /// them again.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        locate: bool,
        mut observe: impl FnMut(&EventView<'_>),
    ) -> Option<StreamEvents> {
        let mut chunk = chunk;
        if self.skipping.is_some() {
            let next = self.skip_rest(chunk)?;
            chunk = &chunk[next..];
        } else if self.carry.is_empty() {
            // Nothing is carried, so the scanner is at its start: it reads the chunk, and is
            // left where the rest kept as the carry ends.
            let complete = self.scanner.complete_len(chunk);
            let (events, rest) = chunk.split_at(complete);
            let read = match std::str::from_utf8(events) {
                Ok(text) if locate && rest.is_empty() => {
                    Some(StreamEvents::read(text, &mut observe))
                }
                Ok(text) => {
                    observe_events(text, &mut observe);
                    None
                }
                Err(_) => {
                    observe_bytes(events, &mut observe);
                    None
                }
            };
            self.keep(rest);
            return read;
        }
        self.carry.extend_from_slice(chunk);
        let complete = self.scanner.complete_len(&self.carry);
        let events = self.carry.split_to(complete);
        observe_bytes(&events, &mut observe);
        self.bound_carry();
        None
    }

    /// Keeps the incomplete start of an event for the next chunk.
    fn keep(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.carry.extend_from_slice(rest);
            self.bound_carry();
        }
    }

    /// Gives up an event that grew too long: its bytes are dropped until it ends.
    fn bound_carry(&mut self) {
        if self.carry.len() <= MAX_EVENT_BYTES {
            return;
        }
        self.skipping = Some(match self.carry.last() {
            Some(b'\r') => LineState::AfterCr,
            Some(b'\n') => LineState::LineStart,
            _ => LineState::InLine,
        });
        self.carry = BytesMut::new();
        self.scanner = EventScanner::new();
    }

    /// Skips bytes up to the blank line that ends the oversized event; where the next event
    /// starts in `chunk`, or `None` if it does not end in it.
    fn skip_rest(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut state = self.skipping?;
        for (i, byte) in chunk.iter().enumerate() {
            state = match (*byte, state) {
                (b'\n', LineState::AfterCr) => LineState::LineStart,
                (b'\n' | b'\r', LineState::LineStart | LineState::AfterCr) => {
                    self.skipping = None;
                    // A blank `\r\n` line is one line end.
                    let crlf = *byte == b'\r' && chunk.get(i + 1) == Some(&b'\n');
                    return Some(i + 1 + usize::from(crlf));
                }
                (b'\n', LineState::InLine) => LineState::LineStart,
                (b'\r', LineState::InLine) => LineState::AfterCr,
                _ => LineState::InLine,
            };
        }
        self.skipping = Some(state);
        None
    }
}

/// Observes the complete events of `events`; invalid UTF-8 is replaced, not a reason to miss
/// the usage of an event.
fn observe_bytes(events: &[u8], observe: &mut impl FnMut(&EventView<'_>)) {
    match std::str::from_utf8(events) {
        Ok(text) => observe_events(text, observe),
        Err(_) => observe_events(&String::from_utf8_lossy(events), observe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each event's name and data, and whether the chunk's events were located.
    fn feed_all(chunks: &[&[u8]]) -> (Vec<(String, String)>, Vec<bool>) {
        let mut framer = SseFramer::new();
        let mut seen = Vec::new();
        let mut located = Vec::new();
        for chunk in chunks {
            let read = framer.feed(chunk, true, |e| {
                seen.push((e.name.unwrap_or("").to_string(), e.data.to_string()))
            });
            located.push(read.is_some());
        }
        (seen, located)
    }

    #[test]
    fn events_split_across_chunks_and_line_ends() {
        let (seen, located) = feed_all(&[
            b"event: a\nda",
            b"ta: {\"x\":1}\n",
            b"\nevent: b\r\ndata: 2\r\n\r\n",
            b"event: c\rdata: 3\r\r",
        ]);
        assert_eq!(
            seen,
            [("a", "{\"x\":1}"), ("b", "2"), ("c", "3")].map(|(n, d)| (n.into(), d.into()))
        );
        assert_eq!(
            located,
            [false, false, false, true],
            "only a chunk that is whole events, with nothing carried, is located"
        );
    }

    #[test]
    fn invalid_utf8_comments_and_multi_line_data() {
        let (seen, _) = feed_all(&[
            b": ping\n\nevent:x\ndata\ndata:caf\xff\n\ndata: one\ndata: two\nid: 7\n\n",
        ]);
        assert_eq!(
            seen.len(),
            2,
            "an event without data is not observed: {seen:?}"
        );
        assert_eq!(seen[0], ("x".into(), "\ncaf\u{fffd}".into()));
        assert_eq!(seen[1], (String::new(), "one\ntwo".into()));
    }

    #[test]
    fn an_oversized_event_is_skipped_to_its_end() {
        for line_end in ["\n", "\r\n", "\r"] {
            let big = vec![b'x'; MAX_EVENT_BYTES];
            let closing = format!("{line_end}{line_end}data: next{line_end}{line_end}");
            // The closing blank line is split over two chunks.
            let (first, second) = closing.as_bytes().split_at(line_end.len() + 1);
            let (seen, _) = feed_all(&[b"data: ", &big, first, second]);
            assert_eq!(seen, [(String::new(), "next".to_string())], "{line_end:?}");
        }
    }
}

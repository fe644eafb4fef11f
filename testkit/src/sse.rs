//! Reading a streamed (SSE) answer event by event as it arrives, noting when each event arrived:
//! streaming tests compare those times with when the upstream sent each event, to prove the
//! gateway forwards an event before the next one exists.

use std::collections::VecDeque;
use std::time::Instant;

/// One complete event: its lines, without the blank line that ended it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's text (bytes that are not UTF-8 replaced).
    pub text: String,
    /// When the chunk that completed it was received.
    pub at: Instant,
}

/// Everything a stream carried.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The events not taken with [`SseReader::next_event`] before, in order.
    pub events: Vec<Event>,
    /// The whole body from its first byte, as text (bytes that are not UTF-8 replaced).
    pub text: String,
}

impl Stream {
    /// When the first event whose text satisfies `wanted` arrived.
    pub fn first_arrival(&self, wanted: impl Fn(&str) -> bool) -> Option<Instant> {
        self.events.iter().find(|e| wanted(&e.text)).map(|e| e.at)
    }
}

/// Reads a streamed response's events as its chunks arrive.
pub struct SseReader {
    response: reqwest::Response,
    splitter: Splitter,
    ready: VecDeque<Event>,
}

impl SseReader {
    /// Reads `response`'s body.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            splitter: Splitter::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next complete event, waiting for it to arrive; `None` once the body ends.
    pub async fn next_event(&mut self) -> Result<Option<Event>, reqwest::Error> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(chunk) = self.response.chunk().await? else {
                return Ok(None);
            };
            let at = Instant::now();
            for text in self.splitter.feed(&chunk) {
                self.ready.push_back(Event { text, at });
            }
        }
    }

    /// Reads the body to its end: the events not taken yet and the whole text.
    pub async fn read_to_end(mut self) -> Result<Stream, reqwest::Error> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await? {
            events.push(event);
        }
        Ok(Stream {
            events,
            text: String::from_utf8_lossy(&self.splitter.raw).into_owned(),
        })
    }
}

/// Cuts a byte stream into events. An event ends at a blank line whichever line ends the server
/// writes (`\n`, `\r\n` or `\r`).
struct Splitter {
    /// Every byte so far.
    raw: Vec<u8>,
    /// Where the event being read starts in `raw`.
    start: usize,
    /// Nothing on the current line yet.
    line_empty: bool,
    /// The last byte was a CR, so an LF right after it ends no further line.
    after_cr: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Self {
            raw: Vec::new(),
            start: 0,
            line_empty: true,
            after_cr: false,
        }
    }
}

impl Splitter {
    /// Adds `chunk`; the texts of the events it completed.
    fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        let from = self.raw.len();
        self.raw.extend_from_slice(chunk);
        for at in from..self.raw.len() {
            let byte = self.raw[at];
            let blank_line = match byte {
                b'\n' if self.after_cr => {
                    self.after_cr = false;
                    false
                }
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    std::mem::replace(&mut self.line_empty, true)
                }
                _ => {
                    self.after_cr = false;
                    self.line_empty = false;
                    false
                }
            };
            if blank_line {
                let lines = trim_line_ends(&self.raw[self.start..=at]);
                if !lines.is_empty() {
                    done.push(String::from_utf8_lossy(lines).into_owned());
                }
                self.start = at + 1;
            }
        }
        done
    }
}

/// `bytes` without the CRs and LFs at either end.
fn trim_line_ends(bytes: &[u8]) -> &[u8] {
    let line_end = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = bytes
        .iter()
        .position(|b| !line_end(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !line_end(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<String>> {
        let mut splitter = Splitter::default();
        chunks.iter().map(|c| splitter.feed(c)).collect()
    }

    #[test]
    fn an_event_is_complete_at_its_blank_line_whatever_the_line_ends() {
        assert_eq!(
            split(&[b"data: 1\n\nda", b"ta: 2\n", b"\n"]),
            [vec!["data: 1"], vec![], vec!["data: 2"]]
        );
        assert_eq!(
            split(&[b"event: a\r\ndata: 1\r\n\r", b"\ndata: 2\r\n\r\n"]),
            [vec!["event: a\r\ndata: 1"], vec!["data: 2"]]
        );
        assert_eq!(
            split(&[b"data: 1\r\rdata: 2\r\r"]),
            [vec!["data: 1", "data: 2"]]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_and_blank_lines_alone_are_no_event() {
        assert_eq!(
            split(&[b"\n\n: \xff\n\n", b"data: x"]),
            [vec![": \u{fffd}"], vec![]]
        );
    }
}

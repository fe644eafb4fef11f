//! Incremental Server-Sent Events parsing. The parser only observes: the bytes are forwarded to
//! the client as they arrive, whatever state the parser is in.

/// Longest event the parser keeps for inspection; longer events are skipped, not forwarded late.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// One complete SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field (empty for the default `message` type).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` field, if any.
    pub id: Option<String>,
}

/// Splits a byte stream into SSE events across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    event_bytes: usize,
    skipping: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `chunk`, calling `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&SseEvent)) {
        let mut rest = chunk;
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let (head, tail) = rest.split_at(pos);
            self.push_bytes(head);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut on_event);
            self.line = line;
            self.line.clear();
            // CRLF counts as one line end.
            rest = if tail.len() >= 2 && tail[0] == b'\r' && tail[1] == b'\n' {
                &tail[2..]
            } else {
                &tail[1..]
            };
        }
        self.push_bytes(rest);
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.event_bytes += bytes.len();
        if self.event_bytes > MAX_EVENT_BYTES {
            self.skipping = true;
        }
        if !self.skipping {
            self.line.extend_from_slice(bytes);
        }
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&SseEvent)) {
        if line.is_empty() {
            if self.has_data && !self.skipping {
                on_event(&self.current);
            }
            // Cleared, not replaced: the next event reuses the buffers.
            self.current.event.clear();
            self.current.data.clear();
            self.current.id = None;
            self.has_data = false;
            self.event_bytes = 0;
            self.skipping = false;
            return;
        }
        if self.skipping || line[0] == b':' {
            return;
        }
        // Field names are ASCII: split on the bytes, decode only the value of a field we keep.
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.current.event.clear();
                self.current.event.push_str(&utf8(value));
            }
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&utf8(value));
                self.has_data = true;
            }
            b"id" => self.current.id = Some(utf8(value).into_owned()),
            _ => {}
        }
    }
}

/// `bytes` as text. Valid UTF-8 is the rule; `from_utf8` checks it much faster than the lossy
/// decoder, which only replaces what is invalid.
fn utf8(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| out.push(e.clone()));
        }
        out
    }

    #[test]
    fn events_split_across_chunks() {
        let got = events(&[
            b"event: a\nda",
            b"ta: {\"x\":1}\n",
            b"\nevent: b\r\ndata: 2\r\n\r\n",
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event, "a");
        assert_eq!(got[0].data, "{\"x\":1}");
        assert_eq!(got[1].event, "b");
        assert_eq!(got[1].data, "2");
    }

    #[test]
    fn fields_without_a_space_or_a_value_and_invalid_utf8() {
        let got = events(&[b"event:x\ndata\ndata:caf\xff\nid\nbad\xff: 1\n\n"]);
        assert_eq!(
            got,
            vec![SseEvent {
                event: "x".into(),
                data: "\ncaf\u{fffd}".into(),
                id: Some(String::new())
            }]
        );
    }

    #[test]
    fn multi_line_data_and_comments() {
        let got = events(&[b": ping\n\ndata: one\ndata: two\nid: 7\n\n"]);
        assert_eq!(
            got,
            vec![SseEvent {
                event: String::new(),
                data: "one\ntwo".into(),
                id: Some("7".into())
            }]
        );
    }
}

//! Small helpers for plugins that rewrite Server-Sent Events streams.

use std::borrow::Cow;

/// A JSON string, borrowed from the document when it has no escapes (read a field as
/// `JsonText` to avoid copying it).
#[derive(Debug, serde::Deserialize)]
pub struct JsonText<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// How a response body is framed, as far as a rewriting plugin cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyKind {
    /// Not something the plugin rewrites.
    #[default]
    Other,
    /// One JSON document.
    Json,
    /// A Server-Sent Events stream.
    Sse,
}

impl BodyKind {
    /// The kind of a body with this `Content-Type`.
    pub fn from_content_type(content_type: &str) -> Self {
        let content_type = content_type.trim_start().to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            BodyKind::Json
        } else if content_type.starts_with("text/event-stream") {
            BodyKind::Sse
        } else {
            BodyKind::Other
        }
    }
}

/// Holds a JSON body in `buffer` until its last chunk, then lets `rewrite` change it; returns
/// what to send now (nothing before the end; the original bytes if unchanged, with bytes that
/// are not UTF-8 replaced), or the body as `Err` if it is not JSON (the caller decides what a
/// body it cannot read becomes).
pub fn rewrite_json_at_end(
    buffer: &mut bytes::BytesMut,
    data: &[u8],
    end: bool,
    rewrite: impl FnOnce(&mut serde_json::Value) -> bool,
) -> Result<bytes::Bytes, bytes::Bytes> {
    buffer.extend_from_slice(data);
    if !end {
        return Ok(bytes::Bytes::new());
    }
    let mut body = buffer.split().freeze();
    if std::str::from_utf8(&body).is_err() {
        // Not UTF-8, as JSON must be: the bad bytes are replaced so that the body can be read
        // and rewritten, never sent past the plugin unread.
        body = bytes::Bytes::from(String::from_utf8_lossy(&body).into_owned());
    }
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Err(body);
    };
    if rewrite(&mut json) {
        Ok(serde_json::to_vec(&json)
            .map(bytes::Bytes::from)
            .unwrap_or(body))
    } else {
        Ok(body)
    }
}

/// The length of the first complete event of `bytes`, up to and including the blank line that
/// closes it; `None` if no event is complete yet. Lines end with `\n`, `\r\n` or a lone `\r`,
/// as the SSE grammar allows (the Python MCP SDK, through `sse-starlette`, writes `\r\n`).
pub fn first_event_len(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut from = 0;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', &bytes[from..]) {
        let at = from + i;
        let end = past_line_end(bytes, at);
        if at == line_start {
            return Some(end);
        }
        line_start = end;
        from = end;
    }
    None
}

/// Where the line end found at `at` (a `\n` or `\r`) ends: `\r\n` is one line end.
fn past_line_end(bytes: &[u8], at: usize) -> usize {
    if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
        at + 2
    } else {
        at + 1
    }
}

/// Length of the prefix of `buffer` made of complete events (each closed by a blank line).
pub fn complete_events_len(buffer: &[u8]) -> usize {
    // Upstreams write whole events: the usual chunk ends with its blank line. Whatever precedes
    // it, a final `\n\n` or `\r\n\r\n` is a line end followed by an empty line.
    if buffer.ends_with(b"\n\n") || buffer.ends_with(b"\r\n\r\n") {
        return buffer.len();
    }
    let mut complete = 0;
    while let Some(len) = first_event_len(&buffer[complete..]) {
        complete += len;
    }
    complete
}

/// Finds the complete events of a buffer that grows at its end, reading each byte once.
/// [`complete_events_len`] reads the buffer from its start at every call, which costs quadratic
/// time when a long event arrives in many small pieces (an upstream writing a byte at a time).
///
/// The caller removes the complete events it is told of, and appends bytes, between calls; an
/// emptied buffer needs no reset (the scanner is then back at its start state).
#[derive(Debug, Default, Clone)]
pub struct EventScanner {
    /// Where reading resumes.
    from: usize,
    /// Where the line being read starts.
    line_start: usize,
    /// The last byte read is a `\r` that ended a line that is not blank: a `\n` next belongs to
    /// that line end.
    cr_pending: bool,
}

impl EventScanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The length of the prefix of `buffer` made of complete events, as [`complete_events_len`]
    /// finds it; `buffer` is the last one passed, without the prefix returned then, with bytes
    /// appended.
    pub fn complete_len(&mut self, buffer: &[u8]) -> usize {
        // The usual chunk ends with its event's blank line: all of it is complete events,
        // whatever came before (as in `complete_events_len`).
        if buffer.ends_with(b"\n\n") || buffer.ends_with(b"\r\n\r\n") {
            *self = Self::default();
            return buffer.len();
        }
        if self.from > buffer.len() {
            // Not the buffer it was reading (a caller's slip): read this one whole.
            *self = Self::default();
        }
        let (mut from, mut line_start) = (self.from, self.line_start);
        if self.cr_pending {
            if let Some(&next) = buffer.get(from) {
                self.cr_pending = false;
                if next == b'\n' {
                    from += 1;
                    line_start = from;
                }
            }
        }
        let mut complete = 0;
        while let Some(i) = buffer
            .get(from..)
            .and_then(|rest| memchr::memchr2(b'\n', b'\r', rest))
        {
            let at = from + i;
            let end = past_line_end(buffer, at);
            if at == line_start {
                complete = end;
            } else if at + 1 == buffer.len() && buffer[at] == b'\r' {
                self.cr_pending = true;
            }
            line_start = end;
            from = end;
        }
        // Everything up to the end has been read; positions move with the prefix removed.
        self.from = buffer.len() - complete;
        self.line_start = line_start - complete;
        complete
    }
}

/// The `event:` name and the `data:` lines of one complete event, joined; borrowed from `event`
/// when it has a single `data:` line (the usual case), so the event is not copied.
pub fn event_parts(event: &str) -> (Option<&str>, Cow<'_, str>) {
    let mut name = None;
    let mut data = None;
    for line in lines(event) {
        read_field(line, &mut name, &mut data);
    }
    (name, data.unwrap_or_default())
}

/// The first complete event of `text`, read in one pass: its length (closing blank line
/// included), its `event:` name and its `data:` lines joined, as [`first_event_len`] and
/// [`event_parts`] would find them; `None` if no event is complete yet.
pub fn next_event(text: &str) -> Option<(usize, Option<&str>, Cow<'_, str>)> {
    let bytes = text.as_bytes();
    let mut name = None;
    let mut data = None;
    let mut line_start = 0;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', &bytes[line_start..]) {
        let at = line_start + i;
        let end = past_line_end(bytes, at);
        if at == line_start {
            return Some((end, name, data.unwrap_or_default()));
        }
        read_field(&text[line_start..at], &mut name, &mut data);
        line_start = end;
    }
    None
}

/// Notes the `event:` or `data:` field of one line.
fn read_field<'a>(line: &'a str, name: &mut Option<&'a str>, data: &mut Option<Cow<'a, str>>) {
    // The two fields read here first; any other line is split at its colon (a field without
    // one has an empty value).
    let (field, value) = if let Some(value) = line.strip_prefix("data:") {
        ("data", value)
    } else if let Some(value) = line.strip_prefix("event:") {
        ("event", value)
    } else {
        line.split_once(':').unwrap_or((line, ""))
    };
    if field == "event" {
        *name = Some(value.trim());
    } else if field == "data" {
        let value = value.strip_prefix(' ').unwrap_or(value);
        *data = Some(match data.take() {
            None => Cow::Borrowed(value),
            Some(joined) => Cow::Owned(format!("{joined}\n{value}")),
        });
    }
}

/// The lines of `text` without their ends (`\n`, `\r\n` or `\r`); a last line without an end
/// is included. Runs once per streamed event: the ends are found by `memchr`.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let bytes = current.as_bytes();
        match memchr::memchr2(b'\n', b'\r', bytes) {
            Some(at) => {
                let end = past_line_end(bytes, at);
                rest = Some(&current[end..]).filter(|tail| !tail.is_empty());
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// One event in wire form.
pub fn format_event(name: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    push_event(&mut out, name, data);
    out
}

/// Appends one event in wire form to `out`; a multi-line `data` becomes one `data:` line each.
pub fn push_event(out: &mut String, name: Option<&str>, data: &str) {
    push_event_name(out, name);
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// Appends one event whose `data` is the concatenation of `parts`, none holding a line break:
/// a single `data:` line, written without joining the parts first.
pub fn push_event_parts(out: &mut String, name: Option<&str>, parts: &[&str]) {
    push_event_name(out, name);
    out.push_str("data: ");
    for part in parts {
        out.push_str(part);
    }
    out.push_str("\n\n");
}

fn push_event_name(out: &mut String, name: Option<&str>) {
    if let Some(name) = name {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
}

/// The events of `text`, each with its closing blank line (the last one without, if `text`
/// does not end with one), split where [`first_event_len`] finds an event's end.
pub fn split_events(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = first_event_len(rest.as_bytes()).unwrap_or(rest.len());
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// The text of `raw`, a JSON value already validated by the parser (a `RawValue`): the bytes
/// between the quotes of a string without escapes (most streamed tokens), decoded otherwise;
/// `None` if it is not a string.
pub fn json_string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        // Valid JSON: without a backslash there is no escape, quote or control character.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<JsonText<'_>>(raw)
        .ok()
        .map(|text| text.0)
}

/// Where `inner`, a slice of `outer`, starts in it (`None` if it is not a slice of it).
pub fn offset_in(outer: &str, inner: &str) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start + inner.len() <= outer.len()).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_scanner_finds_what_a_whole_read_finds_however_the_bytes_arrive(
            // Line ends of every kind, blank lines, and line ends split across pieces.
            stream in prop::collection::vec(prop::sample::select(b"a:\n\r\n\r".to_vec()), 0..48),
            pieces in prop::collection::vec(1..=5usize, 48),
        ) {
            let mut scanner = EventScanner::new();
            let mut buffer = Vec::new();
            let mut at = 0;
            for piece in pieces {
                if at == stream.len() {
                    break;
                }
                let piece = piece.min(stream.len() - at);
                buffer.extend_from_slice(&stream[at..at + piece]);
                at += piece;
                let complete = scanner.complete_len(&buffer);
                prop_assert_eq!(complete, complete_events_len(&buffer), "after {} bytes", at);
                buffer.drain(..complete);
            }
        }
    }

    #[test]
    fn splits_and_formats() {
        assert_eq!(complete_events_len(b"data: a\n\ndata: b"), 9);
        assert_eq!(complete_events_len(b"data: a\n\ndata: b\n\n"), 18);
        assert_eq!(complete_events_len(b"data: a"), 0);
        let (name, data) = event_parts("event: x\ndata: 1\ndata: 2\n\n");
        assert_eq!((name, &*data), (Some("x"), "1\n2"));
        let (name, data) = event_parts("event: x\r\ndata: 1\r\n\r\n");
        assert_eq!(
            (name, &*data),
            (Some("x"), "1"),
            "CRLF line ends, as str::lines"
        );
        let (_, data) = event_parts("data: x\r");
        assert_eq!(&*data, "x", "a lone CR ends a line too");
        let event = "event: y\ndata: {\"a\":1}\n\n";
        let (name, data) = event_parts(event);
        assert!(
            matches!(data, Cow::Borrowed("{\"a\":1}")),
            "one data line is not copied"
        );
        assert_eq!((name, offset_in(event, &data)), (Some("y"), Some(15)));
        assert_eq!(offset_in(event, &String::from("{}")), None, "not a slice");
        assert_eq!(format_event(Some("x"), "{}"), "event: x\ndata: {}\n\n");
        assert_eq!(format_event(None, "{}"), "data: {}\n\n");
        assert_eq!(format_event(None, "{\n}"), "data: {\ndata: }\n\n");
        let mut out = String::new();
        push_event_parts(&mut out, Some("x"), &["{\"a\":", "1", "}"]);
        assert_eq!(out, "event: x\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn events_end_at_a_blank_line_whatever_the_line_ends() {
        let cases: [(&str, &[&str]); 10] = [
            ("", &[]),
            ("data: a\n\n", &["data: a\n\n"]),
            ("data: a\n\ndata: b\n\n", &["data: a\n\n", "data: b\n\n"]),
            (
                "event: x\ndata: a\n\ndata: b",
                &["event: x\ndata: a\n\n", "data: b"],
            ),
            (
                "event: x\r\ndata: a\r\n\r\ndata: b\r\n\r\n",
                &["event: x\r\ndata: a\r\n\r\n", "data: b\r\n\r\n"],
            ),
            ("data: a\r\rdata: b\r", &["data: a\r\r", "data: b\r"]),
            (
                "data: a\r\n\ndata: b\n\r\n",
                &["data: a\r\n\n", "data: b\n\r\n"],
            ),
            ("a\n\n\nb", &["a\n\n", "\n", "b"]),
            ("\n\n", &["\n", "\n"]),
            ("data: a\ndata: b\r\n", &["data: a\ndata: b\r\n"]),
        ];
        for (text, expected) in cases {
            let events: Vec<&str> = split_events(text).collect();
            assert_eq!(events, expected, "{text:?}");
            let complete: usize = expected
                .iter()
                .filter(|e| first_event_len(e.as_bytes()) == Some(e.len()))
                .map(|e| e.len())
                .sum();
            assert_eq!(complete_events_len(text.as_bytes()), complete, "{text:?}");
        }
        assert_eq!(
            first_event_len(b"data: a\r\n"),
            None,
            "one line end is not a blank line"
        );
        assert_eq!(
            complete_events_len(b"data: a\n\ndata: b\r\n\r"),
            19,
            "a lone CR at the end may be a blank line already"
        );
    }

    #[test]
    fn next_event_reads_what_splitting_and_event_parts_find() {
        let text = "event: a\r\ndata: 1\r\ndata: 2\r\n\r\n: c\n\nevent:b\rdata:x\r\rdata\n\nevent: c\ndata: y";
        let mut rest = text;
        let mut split = split_events(text);
        while let Some((len, name, data)) = next_event(rest) {
            let event = split.next().unwrap();
            assert_eq!(&rest[..len], event);
            assert_eq!((name, data), event_parts(event), "{event:?}");
            rest = &rest[len..];
        }
        assert_eq!(rest, "event: c\ndata: y", "the incomplete event is left");
        assert_eq!(split.next(), Some(rest));
    }

    #[test]
    fn lines_end_with_lf_crlf_or_cr() {
        let got: Vec<&str> = lines("a\nb\r\nc\rd\n\ne").collect();
        assert_eq!(got, ["a", "b", "c", "d", "", "e"]);
        assert_eq!(lines("a\n").collect::<Vec<_>>(), ["a"]);
        assert_eq!(lines("").collect::<Vec<_>>(), [""]);
        let (name, data) = event_parts("event: x\rdata: 1\rdata: 2\r\r");
        assert_eq!((name, &*data), (Some("x"), "1\n2"));
        let (name, data) = event_parts("event\ndata\ndata:a:b\n\n");
        assert_eq!(
            (name, &*data),
            (Some(""), "\na:b"),
            "fields without a colon or a space"
        );
    }

    #[test]
    fn json_strings_are_read_with_and_without_escapes() {
        assert_eq!(
            json_string(r#""plain text""#).as_deref(),
            Some("plain text")
        );
        assert_eq!(
            json_string(r#""a \"q\" \n \u00e9""#).as_deref(),
            Some("a \"q\" \n \u{e9}")
        );
        assert_eq!(json_string("\"\""), Some(Cow::Borrowed("")));
        assert_eq!(json_string("12"), None);
        assert_eq!(json_string("null"), None);
    }
}

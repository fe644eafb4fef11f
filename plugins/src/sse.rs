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
/// what to send now (nothing before the end; the original bytes if it is not JSON or unchanged).
pub fn rewrite_json_at_end(
    buffer: &mut bytes::BytesMut,
    data: &[u8],
    end: bool,
    rewrite: impl FnOnce(&mut serde_json::Value) -> bool,
) -> bytes::Bytes {
    buffer.extend_from_slice(data);
    if !end {
        return bytes::Bytes::new();
    }
    let body = buffer.split().freeze();
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    if rewrite(&mut json) {
        serde_json::to_vec(&json)
            .map(bytes::Bytes::from)
            .unwrap_or(body)
    } else {
        body
    }
}

/// Length of the prefix of `buffer` made of complete events (each ends with a blank line).
pub fn complete_events_len(buffer: &[u8]) -> usize {
    // Upstreams write whole events: the usual chunk ends with its blank line.
    if buffer.ends_with(b"\n\n") {
        return buffer.len();
    }
    buffer
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(0, |i| i + 2)
}

/// The `event:` name and the `data:` lines of one complete event, joined; borrowed from `event`
/// when it has a single `data:` line (the usual case), so the event is not copied.
pub fn event_parts(event: &str) -> (Option<&str>, Cow<'_, str>) {
    let mut name = None;
    let mut data: Option<Cow<'_, str>> = None;
    // `event.lines()`, with the line ends found by `memchr` (this runs once per streamed event).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', event.as_bytes()).chain(std::iter::once(event.len()));
    for end in ends {
        let line = &event[start..end];
        start = end + 1;
        // As `lines()`: a `\r` goes with the `\n` after it, not at the end of the text.
        let line = match line.strip_suffix('\r') {
            Some(stripped) if end < event.len() => stripped,
            _ => line,
        };
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim());
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(joined) => Cow::Owned(format!("{joined}\n{value}")),
            });
        }
    }
    (name, data.unwrap_or_default())
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
/// does not end with one): `text.split_inclusive("\n\n")`, with the line ends found by
/// `memchr` (it runs once per streamed chunk).
pub fn split_events(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let bytes = rest.as_bytes();
        let mut from = 0;
        let end = loop {
            match memchr::memchr(b'\n', &bytes[from..]) {
                Some(i) if bytes.get(from + i + 1) == Some(&b'\n') => break from + i + 2,
                Some(i) => from += i + 1,
                None => break rest.len(),
            }
        };
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// Where `inner`, a slice of `outer`, starts in it (`None` if it is not a slice of it).
pub fn offset_in(outer: &str, inner: &str) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start + inner.len() <= outer.len()).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            &*data, "x\r",
            "an unterminated last line keeps its CR, as str::lines"
        );
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
    fn events_split_as_split_inclusive_does() {
        for text in [
            "",
            "data: a\n\n",
            "data: a\n\ndata: b\n\n",
            "event: x\ndata: a\n\ndata: b",
            "a\n\n\nb",
            "\n\n\n\n",
            "\n",
            "data: a\ndata: b\n\n\n",
        ] {
            let ours: Vec<&str> = split_events(text).collect();
            let std: Vec<&str> = text.split_inclusive("\n\n").collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }
}

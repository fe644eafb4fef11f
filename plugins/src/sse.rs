//! Small helpers for plugins that rewrite Server-Sent Events streams.

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
    buffer
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(0, |i| i + 2)
}

/// The `event:` name and the joined `data:` lines of one complete event.
pub fn event_parts(event: &str) -> (Option<&str>, String) {
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    (name, data.join("\n"))
}

/// One event in wire form.
pub fn format_event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_formats() {
        assert_eq!(complete_events_len(b"data: a\n\ndata: b"), 9);
        let (name, data) = event_parts("event: x\ndata: 1\ndata: 2\n\n");
        assert_eq!((name, data.as_str()), (Some("x"), "1\n2"));
        assert_eq!(format_event(Some("x"), "{}"), "event: x\ndata: {}\n\n");
    }
}

//! What the fuzz targets share: cutting a body into the chunks an upstream sends it in, and
//! reading an answer as a client does (an SSE parser written from the WHATWG specification, not
//! the gateway's, so that the targets compare the gateway against an independent reading).

use arbitrary::Arbitrary;

/// Bytes of a fuzz input that give its cuts, for targets whose input is mostly a body.
pub const CUT_BYTES: usize = 8;

/// How a body is cut into chunks: each length in turn (0 reads as 1), the last one repeated.
#[derive(Debug, Clone, Arbitrary)]
pub struct Cuts(pub Vec<u8>);

impl Cuts {
    /// The cuts written in the first `CUT_BYTES` bytes of `data` (so that a seed is those bytes
    /// and a plain body), and the rest of `data`.
    pub fn prefix(data: &[u8]) -> (Self, &[u8]) {
        let (cuts, rest) = data.split_at(data.len().min(CUT_BYTES));
        (Self(cuts.to_vec()), rest)
    }

    /// `body` in pieces, none empty (an empty body is no piece at all).
    pub fn split<'a>(&self, body: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = body;
        let mut lengths = self
            .0
            .iter()
            .copied()
            .chain(std::iter::repeat(self.0.last().copied().unwrap_or(u8::MAX)));
        while !rest.is_empty() {
            let len = usize::from(lengths.next().unwrap_or(u8::MAX)).max(1);
            let (piece, tail) = rest.split_at(len.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }
}

/// One event as a client's `EventSource` dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// The event type (`message` when the stream names none).
    pub name: String,
    /// The data lines, joined with `\n`.
    pub data: String,
}

/// The events a client reads from a whole stream (WHATWG HTML, "Parsing an event stream"): the
/// bytes decoded as UTF-8 with replacement, a leading byte-order mark dropped, lines ending at
/// `\r\n`, `\n` or `\r`, an event dispatched at a blank line when it has data; an event the
/// stream does not finish is dropped.
pub fn client_events(stream: &[u8]) -> Vec<ClientEvent> {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut events = Vec::new();
    let mut name = String::new();
    let mut data = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        let line = &rest[..at];
        let end = if rest[at..].starts_with("\r\n") {
            at + 2
        } else {
            at + 1
        };
        rest = &rest[end..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                events.push(ClientEvent {
                    name: if name.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut name)
                    },
                    data: std::mem::take(&mut data),
                });
            }
            name.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => name = value.to_string(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_follow_the_specification() {
        let events = client_events(
            b"\xef\xbb\xbfevent: a\r\ndata: 1\rdata:2\n\n: comment\n\ndata\n\nevent: b\n\ndata: x",
        );
        assert_eq!(
            events,
            [
                ClientEvent {
                    name: "a".into(),
                    data: "1\n2".into()
                },
                ClientEvent {
                    name: "message".into(),
                    data: String::new()
                },
            ]
        );
    }

    #[test]
    fn cuts_cover_the_body() {
        let body = b"abcdefghij";
        assert_eq!(Cuts(vec![3, 0]).split(body).concat(), body);
        assert_eq!(Cuts(vec![3, 0]).split(body)[1], b"d");
        assert_eq!(Cuts(Vec::new()).split(body), [&body[..]]);
    }
}

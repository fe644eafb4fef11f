//! The SSE framing every streamed answer goes through (`plugin_api::sse`: `EventScanner`,
//! `complete_events_len`, `split_events`, `next_event`, `event_parts`; `StreamEvents::read`; the
//! gateway's `SseFramer`), on arbitrary bytes cut in arbitrary chunks. Scanning in pieces finds
//! the events a whole read finds; the readings agree with each other and with a client's.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tollgate::internals::SseFramer;
use tollgate_fuzz::{client_events, Cuts};
use tollgate_plugin_api::sse::{
    complete_events_len, event_parts, first_event_len, next_event, split_events, EventScanner,
};
use tollgate_plugin_api::stream_events::{observe_events, StreamEvents};

/// What an observer is shown of an event: its name and data.
type Seen = (Option<String>, String);

// The input: `CUT_BYTES` bytes of chunk lengths, then the stream.
fuzz_target!(|data: &[u8]| {
    let (cuts, stream) = Cuts::prefix(data);
    let pieces = cuts.split(stream);

    // The scanner, fed piece by piece with its complete events removed, finds what a read of the
    // whole buffer at each step finds.
    let mut scanner = EventScanner::new();
    let mut buffer = Vec::new();
    let mut complete_total = 0;
    for piece in &pieces {
        buffer.extend_from_slice(piece);
        let complete = scanner.complete_len(&buffer);
        assert_eq!(complete, complete_events_len(&buffer), "buffer {buffer:?}");
        buffer.drain(..complete);
        complete_total += complete;
    }
    let whole_complete = complete_events_len(stream);
    assert_eq!(complete_total, whole_complete);

    // The complete prefix is a run of events each ending at a blank line.
    let complete = &stream[..whole_complete];
    let mut at = 0;
    while at < complete.len() {
        let len = first_event_len(&complete[at..]).expect("an incomplete event in the prefix");
        at += len;
    }
    assert_eq!(at, complete.len());
    assert_eq!(first_event_len(&stream[whole_complete..]), None);

    let text = String::from_utf8_lossy(stream);
    check_text(&text);

    // What the gateway's framer shows the usage observer: the same whatever the chunks, and the
    // data a client reads (a client also drops a byte-order mark the framer keeps).
    let whole = framed(&[stream]);
    assert_eq!(framed(&pieces), whole, "pieces {pieces:?}");
    if !complete.starts_with("\u{feff}".as_bytes()) {
        let client: Vec<String> = client_events(complete)
            .into_iter()
            .map(|event| event.data)
            .filter(|data| !data.is_empty())
            .collect();
        let data: Vec<String> = whole.into_iter().map(|(_, data)| data).collect();
        assert_eq!(data, client, "the data of {complete:?}");
    }
});

/// Checks the readings of `text` against each other.
fn check_text(text: &str) {
    let events: Vec<&str> = split_events(text).collect();
    assert_eq!(events.concat(), text);
    for (i, event) in events.iter().enumerate() {
        assert!(!event.is_empty());
        let len = first_event_len(event.as_bytes());
        if i + 1 < events.len() {
            assert_eq!(len, Some(event.len()), "{event:?}");
        } else {
            assert!(len.is_none() || len == Some(event.len()), "{event:?}");
        }
    }

    // `next_event` reads what splitting and `event_parts` read, in one pass.
    let mut rest = text;
    let mut split = events.iter();
    while let Some((len, name, data)) = next_event(rest) {
        let event = split.next().expect("next_event found more events");
        assert_eq!(&rest[..len], *event);
        assert_eq!((name, data), event_parts(event), "{event:?}");
        rest = &rest[len..];
    }
    assert!(split.next().is_none_or(|last| *last == rest));

    // The located reading of the complete events tiles them, its ranges holding what they say.
    let complete = &text[..complete_events_len(text.as_bytes())];
    let mut observed: Vec<Seen> = Vec::new();
    let read = StreamEvents::read(complete, |view| {
        observed.push((view.name.map(str::to_string), view.data.to_string()));
    });
    let mut unlocated: Vec<Seen> = Vec::new();
    observe_events(complete, |view| {
        unlocated.push((view.name.map(str::to_string), view.data.to_string()));
    });
    assert_eq!(observed, unlocated);
    let mut end = 0;
    for (fact, event) in read.as_slice().iter().zip(split_events(complete)) {
        assert_eq!(fact.range.start, end);
        assert_eq!(&complete[fact.range.clone()], event);
        end = fact.range.end;
        let (name, data) = event_parts(event);
        if let Some(range) = &fact.name {
            assert_eq!(complete.get(range.clone()), name, "{event:?}");
        }
        if let Some(range) = &fact.data {
            assert!(matches!(data, Cow::Borrowed(_)), "{event:?}");
            assert_eq!(complete.get(range.clone()), Some(&*data), "{event:?}");
        }
        if let Some(delta) = &fact.content_delta {
            assert_eq!(name, Some("content_block_delta"));
            for range in [&delta.text, &delta.partial_json, &delta.thinking]
                .into_iter()
                .flatten()
            {
                let raw = complete.get(range.clone()).expect("a range off the text");
                // A raw JSON value, as located: its escapes are not decoded, so a lone
                // surrogate (`\ud800`) passes here and fails where it is decoded (the guard
                // then stops the stream: `what_the_guard_cannot_decode_it_does_not_send`).
                assert!(
                    serde_json::from_str::<&serde_json::value::RawValue>(raw).is_ok(),
                    "{raw:?}"
                );
            }
        }
    }
    assert_eq!(end, complete.len());
    assert_eq!(read.as_slice().len(), split_events(complete).count());
}

/// The events the gateway's framer shows its observer when the stream comes in `pieces`.
fn framed(pieces: &[&[u8]]) -> Vec<Seen> {
    let mut framer = SseFramer::new();
    let mut seen = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let located = framer.feed(piece, i % 2 == 0, |view| {
            seen.push((view.name.map(str::to_string), view.data.to_string()));
        });
        if let Some(events) = located {
            let covered = events.as_slice().last().map_or(0, |e| e.range.end);
            assert_eq!(covered, piece.len(), "located events cover their chunk");
        }
    }
    seen
}

//! Masking of LLM answers: whole JSON bodies, and SSE streams event by event. A stream is never
//! held whole: per text block only the last `HOLDBACK` characters (less if a match ends sooner)
//! wait for the next delta, because a pattern may still be matching across the boundary.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::detectors::Detector;
use tollgate_plugin_api::json_answer::JsonAnswer;
use tollgate_plugin_api::sse::{
    event_parts, json_string, offset_in, push_event, push_event_parts, split_events, BodyKind,
    EventScanner, JsonText,
};
use tollgate_plugin_api::stream_events::{ContentDeltaRef, StreamEvent, StreamEvents};
use tollgate_plugin_api::{protocol_error, RejectKind};

/// Characters of streamed text held back for matches that may continue in the next delta.
pub const HOLDBACK: usize = 64;

/// Per-request masking state, kept in the request's extensions.
#[derive(Debug, Default)]
pub struct ResponseMasker {
    mode: BodyKind,
    buffer: BytesMut,
    /// Where the complete events of `buffer` end, read once per byte.
    scanner: EventScanner,
    /// Streamed text not yet sent, per content block index (a stream has few blocks open).
    pending: Vec<(u64, String)>,
    /// Why the answer was stopped (an event or JSON body too long to hold), if it was: nothing
    /// more is sent.
    stopped: Option<&'static str>,
}

/// Warning reason of a JSON answer stopped for being too long to check.
pub const ANSWER_TOO_LONG: &str = "guard.answer_too_long";

/// Warning reason of a JSON answer stopped for not being JSON the guard can read.
pub const ANSWER_UNREADABLE: &str = "guard.answer_unreadable";

/// Warning reason of a stream stopped at an event too long to check.
pub const EVENT_TOO_LONG: &str = "guard.event_too_long";

/// Warning reason of a stream stopped at a delta that is not JSON the guard can decode (a lone
/// surrogate escape, say): a lenient client could still read the text in it.
pub const EVENT_UNREADABLE: &str = "guard.event_unreadable";

pub use tollgate_plugin_api::limits::{MAX_HELD_ANSWER, MAX_HELD_EVENT};

/// The Anthropic error `type` of the answers the guard stops: the API's own failure type, the
/// head (200) having gone out already.
fn stopped_type() -> &'static str {
    protocol_error::anthropic_error_type(RejectKind::Api, StatusCode::OK)
}

/// The Anthropic error body that replaces a JSON answer too long to check.
fn oversized_answer() -> String {
    protocol_error::anthropic_error(
        stopped_type(),
        &format!(
            "prompt-guard stopped the answer: it is over {} MiB, too long to check",
            MAX_HELD_ANSWER >> 20
        ),
    )
}

/// The Anthropic error body that replaces a JSON answer that is not JSON.
fn unreadable_answer() -> String {
    protocol_error::anthropic_error(
        stopped_type(),
        "prompt-guard stopped the answer: it is not JSON it can read to check",
    )
}

/// The Anthropic error event that ends a stream stopped for an oversized event.
fn oversized_event() -> String {
    protocol_error::anthropic_error_event(
        stopped_type(),
        &format!(
            "prompt-guard stopped the answer: one of its events is over {} MiB, too long to check",
            MAX_HELD_EVENT >> 20
        ),
    )
}

/// The Anthropic error event that ends a stream stopped at a delta the guard cannot decode.
fn unreadable_event() -> String {
    protocol_error::anthropic_error_event(
        stopped_type(),
        "prompt-guard stopped the answer: one of its events is not JSON it can read to check",
    )
}

/// What became of a delta event read as a JSON tree.
#[derive(Debug, PartialEq, Eq)]
enum TreeDelta {
    /// Checked and written.
    Sent,
    /// Not the kind of delta the reader masks; nothing written.
    Other,
    /// Not JSON that decodes; nothing written.
    Unreadable,
}

/// Applies every detector's mask to `text`.
fn mask_all(text: &str, detectors: &[Detector]) -> String {
    detectors
        .iter()
        .fold(text.to_string(), |acc, d| d.mask(&acc).unwrap_or(acc))
}

/// The key of the text a citation quotes (from a document the request carried, which the
/// answer repeats).
const CITED_TEXT: &str = "\"cited_text\"";

fn quotes(body: &[u8]) -> bool {
    memchr::memmem::find(body, CITED_TEXT.as_bytes()).is_some()
}

/// Masks the quoted text of a `citations_delta` event; `Other` (nothing written) when the
/// event is not one or nothing in it matched.
fn citation_delta(
    name: Option<&str>,
    data: &str,
    detectors: &[Detector],
    out: &mut String,
) -> TreeDelta {
    if !quotes(data.as_bytes()) {
        return TreeDelta::Other;
    }
    let Ok(mut json) = serde_json::from_str::<Value>(data) else {
        return TreeDelta::Unreadable;
    };
    let Some(cited) = json
        .get_mut("delta")
        .and_then(|d| d.get_mut("citation"))
        .and_then(|c| c.get_mut("cited_text"))
    else {
        return TreeDelta::Other;
    };
    if !mask_string(cited, detectors) {
        return TreeDelta::Other;
    }
    push_event(out, name, &json.to_string());
    TreeDelta::Sent
}

/// Masks `value` if it is a string; whether it changed.
fn mask_string(value: &mut Value, detectors: &[Detector]) -> bool {
    let Value::String(text) = value else {
        return false;
    };
    let masked = mask_all(text, detectors);
    let changed = masked != *text;
    *text = masked;
    changed
}

/// Masks the quoted texts of a text block's citations; whether one changed.
fn mask_citations(block: &mut Value, detectors: &[Detector]) -> bool {
    let Some(Value::Array(citations)) = block.get_mut("citations") else {
        return false;
    };
    let mut changed = false;
    for cited in citations.iter_mut().filter_map(|c| c.get_mut("cited_text")) {
        changed |= mask_string(cited, detectors);
    }
    changed
}

/// The text blocks of a JSON answer; everything else is skipped without being built.
#[derive(Deserialize)]
struct AnswerTexts<'a> {
    #[serde(borrow, default)]
    content: Vec<AnswerBlock<'a>>,
}

#[derive(Deserialize)]
struct AnswerBlock<'a> {
    #[serde(borrow, default)]
    text: Option<JsonText<'a>>,
}

/// What the gateway already read of a `content_block_delta` event: its block and its text
/// (the JSON string as sent, `None` when the delta has none).
type KnownDelta<'a> = (u64, Option<&'a str>);

/// What a JSON answer needs once its texts were checked in place.
#[derive(Debug, PartialEq, Eq)]
enum AnswerCheck {
    /// Nothing to mask: sent as it came.
    Clean,
    /// A detector matched: masked on the JSON tree.
    Mask,
    /// It could not be read in place (a key given twice, blocks of another shape, a string that
    /// does not decode): masked on the JSON tree and sent as the tree has it, so that every
    /// client reads what was checked (with a duplicate key, not the one the tree dropped).
    Rebuild,
}

/// Checks the texts of a JSON answer. `known`: the gateway's reading of the answer, used when it
/// read these very bytes.
fn check_answer(body: &[u8], known: Option<&JsonAnswer>, detectors: &[Detector]) -> AnswerCheck {
    // Citations are rare: an answer with quotes is checked on the JSON tree, which masks them
    // and sends the original bytes when nothing changed.
    if quotes(body) {
        return AnswerCheck::Mask;
    }
    let matches = |text: &str| detectors.iter().any(|d| d.found_in(text));
    if let Some(known) = known.filter(|answer| answer.body()[..] == *body) {
        let mut found = false;
        for raw in known.texts() {
            match json_string(raw) {
                Some(text) => found = found || matches(&text),
                None => return AnswerCheck::Rebuild,
            }
        }
        return if found {
            AnswerCheck::Mask
        } else {
            AnswerCheck::Clean
        };
    }
    match serde_json::from_slice::<AnswerTexts<'_>>(body) {
        Ok(answer) => {
            let mut texts = answer
                .content
                .iter()
                .filter_map(|block| block.text.as_ref());
            if texts.any(|text| matches(&text.0)) {
                AnswerCheck::Mask
            } else {
                AnswerCheck::Clean
            }
        }
        Err(_) => AnswerCheck::Rebuild,
    }
}

/// Masks the text blocks of a JSON answer: the original bytes if nothing changed (and no
/// `rebuild` is asked for); `None` when it is not JSON at all, which the guard cannot check.
fn mask_answer(body: Bytes, detectors: &[Detector], rebuild: bool) -> Option<Bytes> {
    let mut json = serde_json::from_slice::<Value>(&body).ok()?;
    let mut changed = false;
    if let Some(Value::Array(blocks)) = json.get_mut("content") {
        for block in blocks {
            if let Some(text) = block.get_mut("text") {
                changed |= mask_string(text, detectors);
            }
            changed |= mask_citations(block, detectors);
        }
    }
    if !changed && !rebuild {
        return Some(body);
    }
    serde_json::to_vec(&json).ok().map(Bytes::from)
}

impl ResponseMasker {
    /// Picks the mode from the content type; returns whether the body may change length.
    pub fn start(&mut self, content_type: &str) -> bool {
        self.mode = BodyKind::from_content_type(content_type);
        self.mode != BodyKind::Other
    }

    /// Why the answer was stopped ([`ANSWER_TOO_LONG`], [`ANSWER_UNREADABLE`],
    /// [`EVENT_TOO_LONG`], [`EVENT_UNREADABLE`]), if it was.
    pub fn stopped(&self) -> Option<&'static str> {
        self.stopped
    }

    /// Processes one chunk, returning what to send now. `known`: the events the gateway read in
    /// this chunk ([`tollgate_plugin_api::ResponseChunk::stream_events`]); `answer`: with a JSON answer's last
    /// chunk, the gateway's reading of the whole answer ([`tollgate_plugin_api::ResponseChunk::json_answer`]).
    pub fn chunk(
        &mut self,
        data: &Bytes,
        end: bool,
        known: Option<&StreamEvents>,
        answer: Option<&JsonAnswer>,
        detectors: &[Detector],
    ) -> Bytes {
        if self.stopped.is_some() {
            return Bytes::new();
        }
        match self.mode {
            BodyKind::Other => data.clone(),
            BodyKind::Json => {
                if self.buffer.len() + data.len() > MAX_HELD_ANSWER {
                    // The head has gone out (status 200): the body says what happened, in the
                    // API's error shape; the unchecked answer never goes out.
                    self.buffer = BytesMut::new();
                    self.stopped = Some(ANSWER_TOO_LONG);
                    tracing::warn!(
                        limit = MAX_HELD_ANSWER,
                        "prompt-guard stopped an answer too long to check"
                    );
                    return Bytes::from(oversized_answer());
                }
                self.buffer.extend_from_slice(data);
                if !end {
                    return Bytes::new();
                }
                let mut body = self.buffer.split().freeze();
                if std::str::from_utf8(&body).is_err() {
                    // Not UTF-8, as JSON must be: the bad bytes are replaced so that the answer
                    // can be read and masked, never sent past the guard unread.
                    body = Bytes::from(String::from_utf8_lossy(&body).into_owned());
                }
                if body.iter().all(u8::is_ascii_whitespace) {
                    return body;
                }
                // Most answers hold nothing to mask: check the texts in place first and send
                // the body as it came; only a match pays for the JSON tree.
                let check = check_answer(&body, answer, detectors);
                if check == AnswerCheck::Clean {
                    return body;
                }
                match mask_answer(body, detectors, check == AnswerCheck::Rebuild) {
                    Some(sent) => sent,
                    None => {
                        // What the guard cannot read it does not send.
                        self.stopped = Some(ANSWER_UNREADABLE);
                        tracing::warn!("prompt-guard stopped an answer that is not JSON");
                        Bytes::from(unreadable_answer())
                    }
                }
            }
            BodyKind::Sse => {
                // The gateway's reading applies when this chunk is all there is to read: nothing
                // of an earlier chunk is waiting (the usual case: upstreams write whole events).
                let known = known.filter(|_| self.buffer.is_empty());
                let events = match known {
                    Some(_) => data.clone(),
                    None => {
                        self.buffer.extend_from_slice(data);
                        let complete = self.scanner.complete_len(&self.buffer);
                        self.buffer.split_to(complete).freeze()
                    }
                };
                let mut out = String::with_capacity(events.len() + 64);
                match std::str::from_utf8(&events) {
                    Ok(text) => match known {
                        Some(known) => {
                            self.known_events(text, known.as_slice(), detectors, &mut out)
                        }
                        None => self.events(text, detectors, &mut out),
                    },
                    // Not UTF-8, as SSE must be: masked all the same, the bad bytes replaced
                    // (sending them as they came would let them carry text past the guard).
                    Err(_) => self.events(&String::from_utf8_lossy(&events), detectors, &mut out),
                }
                if self.stopped.is_some() {
                    return Bytes::from(out);
                }
                if self.buffer.len() > MAX_HELD_EVENT {
                    // What was checked goes out, then a clear error in the stream's protocol;
                    // the unchecked event and the rest of the stream never do.
                    while let Some(&(index, _)) = self.pending.first() {
                        self.flush(index, detectors, &mut out);
                    }
                    out.push_str(&oversized_event());
                    self.buffer = BytesMut::new();
                    self.scanner = EventScanner::new();
                    self.stopped = Some(EVENT_TOO_LONG);
                    tracing::warn!(
                        limit = MAX_HELD_EVENT,
                        "prompt-guard stopped a stream: an event too long to check"
                    );
                } else if end {
                    // An unfinished last event is read too (a client may show it), then the
                    // text still held back for blocks the stream never closed.
                    let rest = self.buffer.split();
                    self.events(&String::from_utf8_lossy(&rest), detectors, &mut out);
                    while let Some(&(index, _)) = self.pending.first() {
                        self.flush(index, detectors, &mut out);
                    }
                }
                Bytes::from(out)
            }
        }
    }

    /// The events of `text` with what the gateway read of them (`known`, in order).
    fn known_events(
        &mut self,
        text: &str,
        known: &[StreamEvent],
        detectors: &[Detector],
        out: &mut String,
    ) {
        // The gateway's events cover the chunk end to end; if they did not (a gateway bug),
        // the chunk is read here.
        let tiled = known.first().is_some_and(|first| first.range.start == 0)
            && known.windows(2).all(|w| w[0].range.end == w[1].range.start)
            && known
                .last()
                .is_some_and(|last| last.range.end == text.len())
            && known
                .iter()
                .all(|fact| text.is_char_boundary(fact.range.start));
        if !tiled {
            self.events(text, detectors, out);
            return;
        }
        for fact in known {
            if self.stopped.is_some() {
                return;
            }
            let Some(event) = text.get(fact.range.clone()) else {
                continue;
            };
            let read = (|| {
                let data = text.get(fact.data.clone()?)?;
                let name = match &fact.name {
                    Some(name) => Some(text.get(name.clone())?),
                    None => None,
                };
                let delta = match &fact.content_delta {
                    Some(delta) => match &delta.text {
                        Some(raw) => Some((delta.index, Some(text.get(raw.clone())?))),
                        None => Some((delta.index, None)),
                    },
                    None => None,
                };
                Some((name, data, delta))
            })();
            match read {
                Some((name, data, delta)) => {
                    self.parts(event, name, Cow::Borrowed(data), delta, detectors, out)
                }
                None => self.event(event, detectors, out),
            }
        }
    }

    /// The events of `text`, read here.
    fn events(&mut self, text: &str, detectors: &[Detector], out: &mut String) {
        for event in split_events(text) {
            if self.stopped.is_some() {
                return;
            }
            self.event(event, detectors, out);
        }
    }

    fn event(&mut self, event: &str, detectors: &[Detector], out: &mut String) {
        let (name, data) = event_parts(event);
        self.parts(event, name, data, None, detectors, out);
    }

    /// One event, given its name and data.
    fn parts(
        &mut self,
        event: &str,
        name: Option<&str>,
        data: Cow<'_, str>,
        known: Option<KnownDelta<'_>>,
        detectors: &[Detector],
        out: &mut String,
    ) {
        match name {
            Some("content_block_delta") => {
                let read = if let Some((_, None)) = known {
                    // Read already: a delta without text (a tool call's JSON, thinking, a
                    // citation).
                    citation_delta(name, &data, detectors, out)
                } else {
                    // The typed, splicing path; an event it cannot read (duplicate keys, an odd
                    // index) still goes through the detectors, in order, via the JSON tree.
                    let single_line = matches!(data, Cow::Borrowed(_));
                    if self.text_delta(name, &data, single_line, known, detectors, out) {
                        TreeDelta::Sent
                    } else {
                        match self.text_delta_tree(name, &data, detectors, out) {
                            TreeDelta::Other => citation_delta(name, &data, detectors, out),
                            read => read,
                        }
                    }
                };
                match read {
                    TreeDelta::Sent => {}
                    TreeDelta::Other => out.push_str(event),
                    TreeDelta::Unreadable => self.stop_unreadable(detectors, out),
                }
            }
            Some("content_block_stop") => {
                let index = serde_json::from_str::<Value>(&data)
                    .ok()
                    .and_then(|j| j.get("index").and_then(Value::as_u64))
                    .unwrap_or(0);
                self.flush(index, detectors, out);
                out.push_str(event);
            }
            _ => out.push_str(event),
        }
    }

    /// Sends a text delta with the text that is safe to release now, masked; the event is
    /// otherwise kept byte for byte (only its `text` string is replaced). `false` if it is not
    /// a text delta (sent as it came). `known`: the event's block and text, already read.
    fn text_delta(
        &mut self,
        name: Option<&str>,
        data: &str,
        single_line: bool,
        known: Option<KnownDelta<'_>>,
        detectors: &[Detector],
        out: &mut String,
    ) -> bool {
        let read;
        let (index, raw_text) = match known {
            Some((index, Some(raw_text))) => (index, raw_text),
            Some((_, None)) => return false,
            None => {
                read = ContentDeltaRef::read(data);
                match &read {
                    Some(ContentDeltaRef {
                        index,
                        delta: Some(delta),
                    }) => match delta.text {
                        Some(raw_text) => (*index, raw_text.get()),
                        None => return false,
                    },
                    _ => return false,
                }
            }
        };
        let Some(text) = json_string(raw_text) else {
            return false;
        };
        let Some(start) = offset_in(data, raw_text) else {
            return false;
        };
        let end = start + raw_text.len();
        let pending = self.pending_mut(index);
        let before = pending.len();
        pending.push_str(&text);
        let (cut, matched) = safe_cut(pending, detectors);
        let masked;
        let released = if matched {
            masked = mask_all(&pending[..cut], detectors);
            masked.as_str()
        } else {
            &pending[..cut]
        };
        let Ok(encoded) = serde_json::to_string(released) else {
            // The tree path takes the delta over: it must not find its text added twice.
            pending.truncate(before);
            return false;
        };
        pending.drain(..cut);
        let spliced = [&data[..start], encoded.as_str(), &data[end..]];
        if single_line {
            // One `data:` line (the usual event): written in place, without joining it first.
            push_event_parts(out, name, &spliced);
        } else {
            push_event(out, name, &spliced.concat());
        }
        true
    }

    /// Block `index`'s pending text, created empty on its first delta.
    fn pending_mut(&mut self, index: u64) -> &mut String {
        let at = match self.pending.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                self.pending.push((index, String::new()));
                self.pending.len() - 1
            }
        };
        &mut self.pending[at].1
    }

    /// Adds `text` to block `index`'s pending text and takes out what is safe to send, masked.
    fn release(&mut self, index: u64, text: &str, detectors: &[Detector]) -> String {
        let pending = self.pending_mut(index);
        pending.push_str(text);
        let (cut, matched) = safe_cut(pending, detectors);
        let ready = if matched {
            mask_all(&pending[..cut], detectors)
        } else {
            pending[..cut].to_string()
        };
        pending.drain(..cut);
        ready
    }

    /// [`Self::text_delta`] on the JSON tree, re-serialising the event; `false` if it is not a
    /// text delta.
    fn text_delta_tree(
        &mut self,
        name: Option<&str>,
        data: &str,
        detectors: &[Detector],
        out: &mut String,
    ) -> TreeDelta {
        let Ok(mut json) = serde_json::from_str::<Value>(data) else {
            return TreeDelta::Unreadable;
        };
        let index = json.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(Value::String(text)) = json.get_mut("delta").and_then(|d| d.get_mut("text"))
        else {
            return TreeDelta::Other;
        };
        let released = self.release(index, text, detectors);
        *text = released;
        push_event(out, name, &json.to_string());
        TreeDelta::Sent
    }

    /// Ends the stream at a delta that does not decode: what was checked goes out, then a
    /// clear error; the delta and the rest of the stream never do.
    fn stop_unreadable(&mut self, detectors: &[Detector], out: &mut String) {
        while let Some(&(index, _)) = self.pending.first() {
            self.flush(index, detectors, out);
        }
        out.push_str(&unreadable_event());
        self.buffer = BytesMut::new();
        self.scanner = EventScanner::new();
        self.stopped = Some(EVENT_UNREADABLE);
        tracing::warn!("prompt-guard stopped a stream: a delta that is not JSON it can decode");
    }

    /// Sends the held-back text of block `index` as one more delta.
    fn flush(&mut self, index: u64, detectors: &[Detector], out: &mut String) {
        let Some(at) = self.pending.iter().position(|(i, _)| *i == index) else {
            return;
        };
        let (_, pending) = self.pending.remove(at);
        if pending.is_empty() {
            return;
        }
        let delta = json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": mask_all(&pending, detectors)}});
        push_event(out, Some("content_block_delta"), &delta.to_string());
    }
}

/// How much of `pending` can be sent: all but the last `HOLDBACK` characters, and never the
/// start of a match that runs into the held-back part; and whether a match starts before that
/// cut (so the released text needs masking).
fn safe_cut(pending: &str, detectors: &[Detector]) -> (usize, bool) {
    // Where the last HOLDBACK characters start, counted from the end (only they are walked).
    let mut cut = match pending.char_indices().rev().nth(HOLDBACK - 1) {
        Some((i, _)) if i > 0 => i,
        _ => return (0, false),
    };
    let spans: Vec<std::ops::Range<usize>> =
        detectors.iter().flat_map(|d| d.spans(pending)).collect();
    // Moving the cut back to one match's start can put it inside another's: again until no
    // match straddles it.
    loop {
        let straddling = spans
            .iter()
            .filter(|span| span.start < cut && span.end > cut)
            .map(|span| span.start)
            .min();
        match straddling {
            Some(start) => cut = start,
            None => break,
        }
    }
    let first_match = spans.iter().map(|span| span.start).min();
    (cut, first_match.is_some_and(|start| start < cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::sse::{complete_events_len, format_event};

    fn email() -> [Detector; 1] {
        [Detector::builtin("email").unwrap()]
    }

    #[test]
    fn the_cut_never_lands_inside_a_match_even_after_moving() {
        // "AAAXB" and "BBBX" overlap: the cut first moves back to "BBBX", which is inside
        // "AAAXB", so it must move again.
        let detectors = [
            Detector::custom("one", "AAAXB").unwrap(),
            Detector::custom("two", "BBBX").unwrap(),
        ];
        let pending = format!("{}AAAXBBBX{}", "x".repeat(10), "y".repeat(HOLDBACK - 2));
        assert_eq!(safe_cut(&pending, &detectors), (10, false));
    }

    #[test]
    fn a_delta_the_typed_read_refuses_is_still_masked_in_order() {
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let mut out = String::new();
        let long = "z".repeat(HOLDBACK);
        for (i, text) in [format!("{long} mail ali"), "ce@example.org now".to_string()]
            .iter()
            .enumerate()
        {
            // A duplicate key: valid for a JSON tree, refused by the typed read.
            let data = format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                serde_json::to_string(text).unwrap()
            );
            let event = format_event(Some("content_block_delta"), &data);
            let end = i == 1;
            let chunk = masker.chunk(&Bytes::from(event), end, None, None, &email());
            out.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let text: String = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|j| j["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, format!("{long} mail <REDACTED:email> now"));
    }

    #[test]
    fn a_delta_split_over_data_lines_stays_valid_sse() {
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let text = "w".repeat(HOLDBACK + 10);
        let event = format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\ndata: \"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n");
        let out = masker.chunk(&Bytes::from(event), false, None, None, &email());
        let out = std::str::from_utf8(&out).unwrap();
        let data: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(data.len(), 2, "each line keeps its data: prefix: {out}");
        let sent: Value = serde_json::from_str(&data.join("\n")).unwrap();
        assert_eq!(sent["delta"]["text"].as_str().unwrap().len(), 10);
    }

    #[test]
    fn a_json_answer_without_matches_is_sent_byte_for_byte() {
        let body = "{ \"content\": [ {\"type\": \"text\", \"text\": \"hi \\\"there\\\"\"} ],\n  \"usage\": {} }";
        let mut masker = ResponseMasker::default();
        masker.start("application/json");
        let out = masker.chunk(&Bytes::from(body), true, None, None, &email());
        assert_eq!(out, body.as_bytes());
        let with_mail = body.replace("hi", "mail a@b.io");
        let out = masker.chunk(&Bytes::from(with_mail), true, None, None, &email());
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            json["content"][0]["text"],
            "mail <REDACTED:email> \"there\""
        );
    }

    #[test]
    fn a_json_answer_that_cannot_be_read_in_place_is_sent_as_checked() {
        let json = |body: &str| {
            let mut masker = ResponseMasker::default();
            masker.start("application/json");
            let held = Bytes::copy_from_slice(body.as_bytes());
            let read = JsonAnswer::read(held.clone()).map(|(answer, _)| answer);
            let out = masker.chunk(&held, true, None, read.as_ref(), &email());
            (String::from_utf8(out.to_vec()).unwrap(), masker.stopped())
        };
        // A client may keep the first of two keys, the tree keeps the last: the tree is sent.
        let (out, _) = json(r#"{"content":[{"type":"text","text":"mail a@b.io","text":"ok"}]}"#);
        assert!(!out.contains("a@b.io"), "{out}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["content"][0]["text"],
            "ok"
        );
        // A lone surrogate neither the gateway's reading nor the tree decodes.
        let (out, stopped) = json(r#"{"content":[{"type":"text","text":"mail a@b.io \ud800"}]}"#);
        assert!(!out.contains("a@b.io"), "{out}");
        assert!(out.contains("not JSON it can read"), "{out}");
        assert_eq!(stopped, Some(ANSWER_UNREADABLE));
        let (out, stopped) = json("upstream error: a@b.io");
        assert!(
            !out.contains("a@b.io") && stopped == Some(ANSWER_UNREADABLE),
            "{out}"
        );
        // Nothing to read is nothing to stop.
        assert_eq!(json(" \n"), (" \n".to_string(), None));
        let odd = r#"{"content":"mail a@b.io"}"#;
        assert_eq!(
            json(odd),
            (odd.to_string(), None),
            "only content blocks' texts are masked"
        );
    }

    #[test]
    fn the_gateways_reading_of_a_json_answer_applies_only_to_the_same_bytes() {
        let clean = r#"{"content":[{"type":"text","text":"hi \"there\""},{"type":"text","text":"and you"}]}"#;
        let mailed = clean.replace("you", "a@b.io");
        let mask = |held: &str, read: &str| {
            let (answer, _) = JsonAnswer::read(Bytes::copy_from_slice(read.as_bytes())).unwrap();
            let mut masker = ResponseMasker::default();
            masker.start("application/json");
            let held = Bytes::copy_from_slice(held.as_bytes());
            let out = masker.chunk(&held, true, None, Some(&answer), &email());
            String::from_utf8(out.to_vec()).unwrap()
        };
        assert_eq!(mask(clean, clean), clean);
        let masked = mask(&mailed, &mailed);
        assert!(masked.contains("<REDACTED:email>") && !masked.contains("a@b.io"));
        // A reading of other bytes (a plugin ahead changed them) is not trusted.
        let masked = mask(&mailed, clean);
        assert!(masked.contains("<REDACTED:email>") && !masked.contains("a@b.io"));
        assert_eq!(mask(clean, &mailed), clean);
    }

    #[test]
    fn a_delta_keeps_its_other_fields_and_escapes_survive() {
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let text = format!("{}\"quoted\"\n\u{e9}", "z".repeat(HOLDBACK));
        let data = json!({"type": "content_block_delta", "index": 2, "extra": [1, {"k": "v"}], "delta": {"type": "text_delta", "text": text}}).to_string();
        let event = format_event(Some("content_block_delta"), &data);
        let out = masker.chunk(&Bytes::from(event), false, None, None, &email());
        let out = std::str::from_utf8(&out).unwrap();
        let data_line = out.lines().nth(1).unwrap().trim_start_matches("data: ");
        let sent: Value = serde_json::from_str(data_line).unwrap();
        assert_eq!(sent["extra"], json!([1, {"k": "v"}]));
        assert_eq!(sent["index"], 2);
        let released = sent["delta"]["text"].as_str().unwrap();
        assert_eq!(
            format!(
                "{released}{}",
                masker.pending.iter().find(|(i, _)| *i == 2).unwrap().1
            ),
            text
        );
    }

    fn stream(deltas: &[&str]) -> String {
        let detectors = [Detector::builtin("email").unwrap()];
        let mut masker = ResponseMasker::default();
        assert!(masker.start("text/event-stream"));
        let mut out = String::new();
        for delta in deltas {
            let event = format_event(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta}}).to_string());
            out.push_str(
                std::str::from_utf8(&masker.chunk(
                    &Bytes::from(event),
                    false,
                    None,
                    None,
                    &detectors,
                ))
                .unwrap(),
            );
        }
        let stop = Bytes::from(
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        );
        out.push_str(
            std::str::from_utf8(&masker.chunk(&stop, true, None, None, &detectors)).unwrap(),
        );
        out.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|j| j["delta"]["text"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_match_split_across_deltas_is_masked() {
        let long = "x".repeat(100);
        let text = stream(&[&format!("{long} write to ali"), "ce@exam", "ple.com now"]);
        assert_eq!(text, format!("{long} write to <REDACTED:email> now"));
    }

    #[test]
    fn text_far_from_the_tail_is_sent_at_once() {
        let detectors = [Detector::builtin("email").unwrap()];
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let text = "y".repeat(200);
        let event = format_event(
            Some("content_block_delta"),
            &json!({"index": 0, "delta": {"type": "text_delta", "text": text}}).to_string(),
        );
        let out = masker.chunk(&Bytes::from(event), false, None, None, &detectors);
        let sent: Value = serde_json::from_str(
            std::str::from_utf8(&out)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .trim_start_matches("data: "),
        )
        .unwrap();
        assert_eq!(
            sent["delta"]["text"].as_str().unwrap().len(),
            200 - HOLDBACK
        );
    }

    /// Masks `stream` cut into chunks at `cuts`, with the gateway's reading of each chunk that is
    /// whole events (as the gateway hands it over) or without any.
    #[test]
    fn a_streamed_citation_quote_is_masked_with_or_without_the_gateways_reading() {
        let citation = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta",
            "citation": {"type": "char_location", "cited_text": "write to ops@example.com", "document_index": 0,
                "start_char_index": 0, "end_char_index": 24}}});
        let clean = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta",
            "citation": {"type": "char_location", "cited_text": "nothing here", "document_index": 0}}});
        let stream = [
            format_event(Some("content_block_delta"), &citation.to_string()),
            format_event(Some("content_block_delta"), &clean.to_string()),
        ]
        .concat();
        for with_facts in [false, true] {
            let out = mask_in_chunks(&stream, &[], with_facts);
            assert!(!out.contains("ops@example.com"), "{with_facts}: {out}");
            let quotes: Vec<Value> = out
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .map(|j| j["delta"]["citation"]["cited_text"].clone())
                .collect();
            assert_eq!(
                quotes,
                [json!("write to <REDACTED:email>"), json!("nothing here")]
            );
            assert!(
                out.contains(&clean.to_string()),
                "an unmatched quote is sent as it came"
            );
        }
    }

    #[test]
    fn a_json_answers_citation_quotes_are_masked() {
        let body = json!({"content": [{"type": "text", "text": "see the doc", "citations": [
            {"type": "char_location", "cited_text": "mail ops@example.com", "document_index": 0}]}]})
        .to_string();
        let mut masker = ResponseMasker::default();
        masker.start("application/json");
        let out = masker.chunk(&Bytes::from(body), true, None, None, &email());
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            json["content"][0]["citations"][0]["cited_text"],
            "mail <REDACTED:email>"
        );
        let clean = "{\"content\": [{\"type\": \"text\", \"text\": \"x\", \"citations\": [{\"cited_text\": \"y\"}]}]}";
        let mut masker = ResponseMasker::default();
        masker.start("application/json");
        let out = masker.chunk(&Bytes::from(clean), true, None, None, &email());
        assert_eq!(out, clean.as_bytes(), "nothing to mask: sent byte for byte");
    }

    fn mask_in_chunks(stream: &str, cuts: &[usize], with_facts: bool) -> String {
        let detectors = [
            Detector::builtin("email").unwrap(),
            Detector::builtin("anthropic_api_key").unwrap(),
        ];
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let mut gateway_carry = String::new();
        let mut out = String::new();
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < stream.len()).collect();
        bounds.push(stream.len());
        let mut from = 0;
        for (i, &to) in bounds.iter().enumerate() {
            let chunk = &stream[from..to];
            from = to;
            // The gateway locates events only in a chunk it holds nothing before and that ends
            // an event.
            let whole =
                gateway_carry.is_empty() && complete_events_len(chunk.as_bytes()) == chunk.len();
            gateway_carry.push_str(chunk);
            let complete = complete_events_len(gateway_carry.as_bytes());
            gateway_carry.drain(..complete);
            let facts = (with_facts && whole).then(|| StreamEvents::read(chunk, |_| {}));
            let end = i + 1 == bounds.len();
            let sent = masker.chunk(
                &Bytes::copy_from_slice(chunk.as_bytes()),
                end,
                facts.as_ref(),
                None,
                &detectors,
            );
            out.push_str(std::str::from_utf8(&sent).unwrap());
        }
        out
    }

    #[test]
    fn the_gateways_reading_changes_nothing_in_what_is_sent() {
        let say = "Mail dana.smith@example.com, key sk-ant-api03-ZZZZyyyyXXXXwwww0123456789, \"quoted\" \u{e9}t\u{e9} and more text after it to pass the hold-back window";
        for line_end in ["\n", "\r\n"] {
            let mut stream = String::new();
            let mut push = |name: &str, data: String| {
                stream.push_str(&format!(
                    "event: {name}{line_end}data: {data}{line_end}{line_end}"
                ));
            };
            push(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0}).to_string(),
            );
            for (i, piece) in say.chars().collect::<Vec<_>>().chunks(7).enumerate() {
                let piece: String = piece.iter().collect();
                if i == 3 {
                    // Refused by the typed read: the tree path masks it, in order.
                    push(
                        "content_block_delta",
                        format!(
                            "{{\"index\":0,\"index\":0,\"delta\":{{\"text\":{}}}}}",
                            serde_json::to_string(&piece).unwrap()
                        ),
                    );
                } else {
                    push("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}).to_string());
                }
                if i == 5 {
                    push("content_block_delta", json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"to\": \"x@y.io\""}}).to_string());
                }
            }
            push(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}).to_string(),
            );
            push("message_stop", json!({"type": "message_stop"}).to_string());
            let events: Vec<usize> = split_events(&stream)
                .scan(0, |at, e| {
                    *at += e.len();
                    Some(*at)
                })
                .collect();
            let mut seed = 7u64;
            for round in 0..40 {
                // Cuts at event ends (whole chunks) mixed with cuts inside events.
                let mut cuts: Vec<usize> = Vec::new();
                for &end in &events {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    match (seed >> 33) % 4 {
                        0 if round > 0 => {}
                        1 if round > 0 => {
                            cuts.push(end.saturating_sub(((seed >> 40) % 40) as usize + 1))
                        }
                        _ => cuts.push(end),
                    }
                }
                cuts.retain(|&c| stream.is_char_boundary(c) && c > 0);
                cuts.dedup();
                let plain = mask_in_chunks(&stream, &cuts, false);
                let read = mask_in_chunks(&stream, &cuts, true);
                assert_eq!(plain, read, "{line_end:?} round {round}");
                let text: String = tollgate_plugin_api::sse::split_events(&read)
                    .map(event_parts)
                    .filter(|(name, _)| *name == Some("content_block_delta"))
                    .filter_map(|(_, data)| serde_json::from_str::<Value>(&data).ok())
                    .filter(|j| j["index"] == 0)
                    .filter_map(|j| j["delta"]["text"].as_str().map(str::to_string))
                    .collect();
                let masked = say
                    .replace("dana.smith@example.com", "<REDACTED:email>")
                    .replace(
                        "sk-ant-api03-ZZZZyyyyXXXXwwww0123456789",
                        "<REDACTED:anthropic_api_key>",
                    );
                assert_eq!(text, masked, "{line_end:?} round {round}");
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_and_an_unfinished_last_event_are_masked_too() {
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let delta = |text: &str| {
            format_event(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}).to_string(),
            )
        };
        let mut first = delta("mail a@b.io now").into_bytes();
        first.extend_from_slice(b": note \xff\n\n");
        let unfinished = delta(" or c@d.io").trim_end().to_string();
        let mut out = masker
            .chunk(&Bytes::from(first), false, None, None, &email())
            .to_vec();
        out.extend_from_slice(&masker.chunk(&Bytes::from(unfinished), false, None, None, &email()));
        out.extend_from_slice(&masker.chunk(&Bytes::new(), true, None, None, &email()));
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("a@b.io") && !out.contains("c@d.io"), "{out}");
        let text: String = split_events(&out)
            .map(event_parts)
            .filter_map(|(_, data)| serde_json::from_str::<Value>(&data).ok())
            .filter_map(|j| j["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "mail <REDACTED:email> now or <REDACTED:email>");

        let mut masker = ResponseMasker::default();
        masker.start("application/json");
        let answer = b"{\"content\":[{\"type\":\"text\",\"text\":\"mail a@b.io \xff\"}]}";
        let out = masker.chunk(&Bytes::from(&answer[..]), true, None, None, &email());
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["content"][0]["text"], "mail <REDACTED:email> \u{fffd}");
    }

    #[test]
    fn an_event_too_long_to_hold_stops_the_stream_with_an_error_event() {
        let mut masker = ResponseMasker::default();
        masker.start("text/event-stream");
        let first = delta_event("mail a@b.io then");
        let out = masker.chunk(&Bytes::from(first), false, None, None, &email());
        assert!(!String::from_utf8_lossy(&out).contains("a@b.io"));
        let head = Bytes::from_static(
            b"event: content_block_delta\ndata: {\"index\":0,\"delta\":{\"text\":\"",
        );
        assert!(
            masker.chunk(&head, false, None, None, &email()).is_empty(),
            "held"
        );
        let big = Bytes::from(vec![b'x'; MAX_HELD_EVENT]);
        let out =
            String::from_utf8(masker.chunk(&big, false, None, None, &email()).to_vec()).unwrap();
        assert!(out.ends_with(&oversized_event()), "{out}");
        assert!(
            out.contains("<REDACTED:email>"),
            "the held-back text is sent checked: {out}"
        );
        assert!(!out.contains("xxxx"));
        let rest = Bytes::from(format!(
            "{}\"}}}}\n\n{}",
            "x".repeat(10),
            delta_event("more")
        ));
        assert!(masker.chunk(&rest, false, None, None, &email()).is_empty());
        assert!(masker
            .chunk(&Bytes::new(), true, None, None, &email())
            .is_empty());
    }

    #[test]
    fn what_the_guard_cannot_decode_it_does_not_send() {
        // `\ud800` is a lone surrogate: JSON no decoder here reads, which a lenient client
        // (Python's) would still show with the address in it.
        let lone = r"mail ops@example.com \ud800";
        let text_delta = format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{lone}\"}}}}\n\n"
        );
        let citation = format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"citations_delta\",\"citation\":{{\"cited_text\":\"{lone}\"}}}}}}\n\n"
        );
        for event in [text_delta, citation] {
            for with_facts in [false, true] {
                let out = mask_in_chunks(&event, &[], with_facts);
                assert!(!out.contains("ops@example.com"), "{out}");
                assert!(out.ends_with(&unreadable_event()), "{out}");
            }
            let mut masker = ResponseMasker::default();
            masker.start("text/event-stream");
            masker.chunk(&Bytes::from(event), false, None, None, &email());
            assert_eq!(masker.stopped(), Some(EVENT_UNREADABLE));
            let later = Bytes::from(delta_event("more"));
            assert!(masker.chunk(&later, true, None, None, &email()).is_empty());
        }

        let answer = format!("{{\"content\":[{{\"type\":\"text\",\"text\":\"{lone}\"}}]}}");
        let mut masker = ResponseMasker::default();
        masker.start("application/json");
        let out = masker.chunk(&Bytes::from(answer), true, None, None, &email());
        let out = String::from_utf8_lossy(&out);
        assert!(!out.contains("ops@example.com"), "{out}");
    }

    fn delta_event(text: &str) -> String {
        format_event(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}).to_string(),
        )
    }
}

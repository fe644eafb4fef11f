//! Masking of LLM answers: whole JSON bodies, and SSE streams event by event. A stream is never
//! held whole: per text block only the last `HOLDBACK` characters (less if a match ends sooner)
//! wait for the next delta, because a pattern may still be matching across the boundary.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::detectors::Detector;
use crate::sse::{complete_events_len, event_parts, format_event, BodyKind};

/// Characters of streamed text held back for matches that may continue in the next delta.
pub const HOLDBACK: usize = 64;

/// Per-request masking state, kept in the request's extensions.
#[derive(Debug, Default)]
pub struct ResponseMasker {
    mode: BodyKind,
    buffer: BytesMut,
    /// Streamed text not yet sent, per content block index.
    pending: HashMap<u64, String>,
}

/// Applies every detector's mask to `text`.
fn mask_all(text: &str, detectors: &[Detector]) -> String {
    detectors
        .iter()
        .fold(text.to_string(), |acc, d| d.mask(&acc).unwrap_or(acc))
}

impl ResponseMasker {
    /// Picks the mode from the content type; returns whether the body may change length.
    pub fn start(&mut self, content_type: &str) -> bool {
        self.mode = BodyKind::from_content_type(content_type);
        self.mode != BodyKind::Other
    }

    /// Processes one chunk, returning what to send now.
    pub fn chunk(&mut self, data: &Bytes, end: bool, detectors: &[Detector]) -> Bytes {
        match self.mode {
            BodyKind::Other => data.clone(),
            BodyKind::Json => {
                crate::sse::rewrite_json_at_end(&mut self.buffer, data, end, |json| {
                    let mut changed = false;
                    if let Some(Value::Array(blocks)) = json.get_mut("content") {
                        for block in blocks {
                            if let Some(Value::String(text)) = block.get_mut("text") {
                                let masked = mask_all(text, detectors);
                                changed |= masked != *text;
                                *text = masked;
                            }
                        }
                    }
                    changed
                })
            }
            BodyKind::Sse => {
                self.buffer.extend_from_slice(data);
                let complete = complete_events_len(&self.buffer);
                let events = self.buffer.split_to(complete).freeze();
                let mut out = String::new();
                match std::str::from_utf8(&events) {
                    Ok(text) => {
                        for event in text.split_inclusive("\n\n") {
                            self.event(event, detectors, &mut out);
                        }
                    }
                    Err(_) => return events,
                }
                if end {
                    // The stream ended without closing its blocks: send what is left.
                    let indices: Vec<u64> = self.pending.keys().copied().collect();
                    for index in indices {
                        self.flush(index, detectors, &mut out);
                    }
                    out.push_str(&String::from_utf8_lossy(&self.buffer.split()));
                }
                Bytes::from(out)
            }
        }
    }

    fn event(&mut self, event: &str, detectors: &[Detector], out: &mut String) {
        let (name, data) = event_parts(event);
        match name {
            Some("content_block_delta") => {
                let Ok(mut json) = serde_json::from_str::<Value>(&data) else {
                    out.push_str(event);
                    return;
                };
                let index = json.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(Value::String(text)) =
                    json.get_mut("delta").and_then(|d| d.get_mut("text"))
                else {
                    out.push_str(event);
                    return;
                };
                let pending = self.pending.entry(index).or_default();
                pending.push_str(text);
                let cut = safe_cut(pending, detectors);
                let ready: String = pending.drain(..cut).collect();
                *text = mask_all(&ready, detectors);
                out.push_str(&format_event(name, &json.to_string()));
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

    /// Sends the held-back text of block `index` as one more delta.
    fn flush(&mut self, index: u64, detectors: &[Detector], out: &mut String) {
        let Some(pending) = self.pending.remove(&index).filter(|p| !p.is_empty()) else {
            return;
        };
        let delta = json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": mask_all(&pending, detectors)}});
        out.push_str(&format_event(
            Some("content_block_delta"),
            &delta.to_string(),
        ));
    }
}

/// How much of `pending` can be sent: all but the last `HOLDBACK` characters, and never the
/// start of a match that runs into the held-back part.
fn safe_cut(pending: &str, detectors: &[Detector]) -> usize {
    let chars = pending.chars().count();
    if chars <= HOLDBACK {
        return 0;
    }
    let mut cut = pending
        .char_indices()
        .nth(chars - HOLDBACK)
        .map_or(0, |(i, _)| i);
    for detector in detectors {
        for span in detector.spans(pending) {
            if span.start < cut && span.end > cut {
                cut = span.start;
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(deltas: &[&str]) -> String {
        let detectors = [Detector::builtin("email").unwrap()];
        let mut masker = ResponseMasker::default();
        assert!(masker.start("text/event-stream"));
        let mut out = String::new();
        for delta in deltas {
            let event = format_event(Some("content_block_delta"), &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta}}).to_string());
            out.push_str(
                std::str::from_utf8(&masker.chunk(&Bytes::from(event), false, &detectors)).unwrap(),
            );
        }
        let stop = Bytes::from(
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        );
        out.push_str(std::str::from_utf8(&masker.chunk(&stop, true, &detectors)).unwrap());
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
        let out = masker.chunk(&Bytes::from(event), false, &detectors);
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
}

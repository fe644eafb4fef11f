//! Filters `tools/list`, `prompts/list` and `resources/list` answers down to what the caller may
//! use, in JSON bodies and in SSE streams. A JSON body is held until complete (list answers are
//! small); an SSE stream is held back at most one incomplete event at a time.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::rules::{Policy, Target};
use crate::api::Identity;
use crate::sse::BodyKind;

/// A list request awaiting its answer: the JSON-RPC id and what it lists.
#[derive(Debug, Clone)]
pub struct PendingList {
    /// The request id.
    pub id: Value,
    /// What is listed.
    pub target: Target,
}

/// Per-request filtering state, kept in the request's extensions.
#[derive(Debug, Default)]
pub struct ListFilter {
    /// The list requests of this exchange.
    pub pending: Vec<PendingList>,
    mode: BodyKind,
    buffer: BytesMut,
}

impl ListFilter {
    /// A filter for the answers to `pending`.
    pub fn new(pending: Vec<PendingList>) -> Self {
        Self {
            pending,
            ..Default::default()
        }
    }

    /// Picks the mode from the response's content type; returns whether the body will change
    /// (so its `Content-Length` must go).
    pub fn start(&mut self, content_type: &str) -> bool {
        self.mode = BodyKind::from_content_type(content_type);
        self.mode != BodyKind::Other
    }

    /// Processes one chunk, returning the bytes to send now.
    pub fn chunk(
        &mut self,
        data: &Bytes,
        end: bool,
        policy: &Policy,
        identity: Option<&Identity>,
    ) -> Bytes {
        match self.mode {
            BodyKind::Other => data.clone(),
            BodyKind::Json => {
                let pending = &self.pending;
                crate::sse::rewrite_json_at_end(&mut self.buffer, data, end, |json| {
                    filter_message(pending, json, policy, identity)
                })
            }
            BodyKind::Sse => {
                self.buffer.extend_from_slice(data);
                let complete = if end {
                    self.buffer.len()
                } else {
                    crate::sse::complete_events_len(&self.buffer)
                };
                let events = self.buffer.split_to(complete).freeze();
                if events.is_empty() {
                    return events;
                }
                self.filter_events(&events, policy, identity)
            }
        }
    }

    fn filter_events(&self, events: &Bytes, policy: &Policy, identity: Option<&Identity>) -> Bytes {
        // Not UTF-8, as SSE must be: filtered all the same, the bad bytes replaced.
        let text = String::from_utf8_lossy(events);
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        for event in crate::sse::split_events(&text) {
            match self.rewrite_event(event, policy, identity) {
                Some(rewritten) => {
                    changed = true;
                    out.push_str(&rewritten);
                }
                None => out.push_str(event),
            }
        }
        if changed {
            Bytes::from(out)
        } else {
            events.clone()
        }
    }

    /// The event with its JSON data filtered, if it answers a pending list request.
    fn rewrite_event(
        &self,
        event: &str,
        policy: &Policy,
        identity: Option<&Identity>,
    ) -> Option<String> {
        let (_, data) = crate::sse::event_parts(event);
        if data.is_empty() {
            return None;
        }
        let mut json: Value = serde_json::from_str(&data).ok()?;
        if !self.filter_message(&mut json, policy, identity) {
            return None;
        }
        let mut out = String::new();
        for line in crate::sse::lines(event).filter(|l| !l.starts_with("data:") && !l.is_empty()) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&json.to_string());
        out.push_str("\n\n");
        Some(out)
    }

    /// Filters a JSON-RPC response (or batch of them); returns whether anything changed.
    fn filter_message(
        &self,
        json: &mut Value,
        policy: &Policy,
        identity: Option<&Identity>,
    ) -> bool {
        filter_message(&self.pending, json, policy, identity)
    }
}

/// Filters the answers to the `pending` list requests in a JSON-RPC response (or batch);
/// returns whether anything changed.
fn filter_message(
    pending_lists: &[PendingList],
    json: &mut Value,
    policy: &Policy,
    identity: Option<&Identity>,
) -> bool {
    match json {
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            filter_message(pending_lists, item, policy, identity) | changed
        }),
        Value::Object(object) => {
            let Some(pending) = object
                .get("id")
                .and_then(|id| pending_lists.iter().find(|p| p.id == *id))
            else {
                return false;
            };
            let (key, field) = match pending.target {
                Target::Tool => ("tools", "name"),
                Target::Prompt => ("prompts", "name"),
                Target::Resource => ("resources", "uri"),
            };
            let Some(Value::Array(entries)) = object.get_mut("result").and_then(|r| r.get_mut(key))
            else {
                return false;
            };
            let before = entries.len();
            entries.retain(|entry| {
                entry
                    .get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|name| policy.allows(identity, pending.target, name))
            });
            entries.len() != before
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_answer_that_is_not_utf8_is_filtered_all_the_same() {
        let deny_all = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let answer = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_all\",\"description\":\"bad \xff byte\"}]}}";
        for content_type in ["application/json", "text/event-stream"] {
            let mut filter = ListFilter::new(vec![PendingList {
                id: Value::from(1),
                target: Target::Tool,
            }]);
            assert!(filter.start(content_type));
            let body = if content_type == "application/json" {
                answer.to_vec()
            } else {
                [&b"event: message\r\ndata: "[..], answer, b"\r\n\r\n"].concat()
            };
            let out = filter.chunk(&Bytes::from(body), true, &deny_all, None);
            let out = String::from_utf8(out.to_vec()).unwrap();
            assert!(!out.contains("delete_all"), "{content_type}: {out}");
            assert!(out.contains("\"tools\":[]"), "{content_type}: {out}");
        }
    }
}

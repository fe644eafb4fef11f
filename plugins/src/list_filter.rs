//! Filters `tools/list`, `prompts/list` and `resources/list` answers through a plugin's
//! [`ListJudge`] (`mcp-rbac`: what the caller may use; `mcp-tool-pin`: what is pinned), in JSON
//! bodies and in SSE streams. A JSON body is held until complete (list answers are small); an SSE
//! stream is held back at most one incomplete event at a time. Either is held up to
//! [`MAX_HELD_ANSWER`]: past that the answer is replaced by a JSON-RPC error, never sent
//! unfiltered.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use tollgate_plugin_api::protocol_error;
use tollgate_plugin_api::sse::{BodyKind, EventScanner};
use tollgate_plugin_api::{McpMessage, McpMethod, McpRequest, RejectKind, Rejection};

/// What kind of MCP object a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A tool, by name.
    Tool,
    /// A prompt, by name.
    Prompt,
    /// A resource, by URI.
    Resource,
}

impl Target {
    /// The key of its list in a list result, and the field that names an entry.
    pub fn list_key(self) -> (&'static str, &'static str) {
        match self {
            Target::Tool => ("tools", "name"),
            Target::Prompt => ("prompts", "name"),
            Target::Resource => ("resources", "uri"),
        }
    }
}

/// What a judge made of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Left as it was.
    Unchanged,
    /// Rewritten in place.
    Changed,
    /// Replaced by a JSON-RPC error (same id).
    Refused {
        /// The JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// `data.reason`.
        reason: &'static str,
    },
}

impl From<bool> for Judged {
    fn from(changed: bool) -> Self {
        if changed {
            Judged::Changed
        } else {
            Judged::Unchanged
        }
    }
}

/// What a plugin decides about the answers to the requests it awaits (`T`: what the request
/// asked, [`Target`] for lists).
pub trait ListJudge<T = Target> {
    /// Judges the `result` of one answer to a request for `target`, rewriting it in place or
    /// refusing it.
    fn judge(&mut self, target: T, result: &mut Map<String, Value>) -> Judged;
}

/// The plugin a filter works for, as its errors and warnings name it.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    /// The plugin type (`mcp-rbac`), in error messages and logs.
    pub plugin: &'static str,
    /// The reason of the error that replaces an answer too long to filter.
    pub too_long: &'static str,
    /// The reason of the error that replaces an answer that is not JSON it can read (serde
    /// refuses what a lenient client may read, a lone UTF-16 surrogate say: it is never sent
    /// unfiltered).
    pub unreadable: &'static str,
}

impl Default for Owner {
    fn default() -> Self {
        Self {
            plugin: "a plugin",
            too_long: "list.too_long",
            unreadable: "list.unreadable",
        }
    }
}

/// The JSON-RPC code of the errors that replace an answer: the gateway's own failure code.
const FAILURE_CODE: i64 = protocol_error::default_jsonrpc_code(RejectKind::Api);

/// A list request awaiting its answer: the JSON-RPC id and what it lists.
#[derive(Debug, Clone)]
pub struct PendingList<T = Target> {
    /// The request id.
    pub id: Value,
    /// What is listed.
    pub target: T,
}

/// Most bytes held to filter a list answer: a whole JSON body, or one SSE event (tool catalogs
/// with their input schemas run to a few hundred kilobytes).
pub use tollgate_plugin_api::limits::MAX_HELD_ANSWER;

/// Per-request filtering state, kept in the request's extensions.
#[derive(Debug)]
pub struct ListFilter<T = Target> {
    /// The list requests of this exchange.
    pub pending: Vec<PendingList<T>>,
    /// Which of `pending` an answer has been seen for.
    answered: Vec<bool>,
    /// Whether the request was a JSON-RPC batch (its JSON answer is an array).
    batch: bool,
    mode: BodyKind,
    buffer: BytesMut,
    /// Where the complete events of `buffer` end, read once per byte.
    scanner: EventScanner,
    /// Set once an answer too long to filter was replaced: nothing more is sent.
    stopped: bool,
    /// Whether the start of an SSE body has been seen (and a byte-order mark dropped).
    started_sse: bool,
    /// Reasons of answers replaced since the plugin last took them (for `cx.warnings`).
    warnings: Vec<&'static str>,
    owner: Owner,
}

impl<T: Copy> ListFilter<T> {
    /// A filter for `owner` of the answers to `pending`, requested in a batch or not.
    pub fn new(pending: Vec<PendingList<T>>, batch: bool, owner: Owner) -> Self {
        Self {
            answered: vec![false; pending.len()],
            pending,
            batch,
            owner,
            mode: BodyKind::default(),
            buffer: BytesMut::new(),
            scanner: EventScanner::default(),
            stopped: false,
            started_sse: false,
            warnings: Vec::new(),
        }
    }

    /// Picks the mode from the response's content type; returns whether the body will change
    /// (so its `Content-Length` must go).
    pub fn start(&mut self, content_type: &str) -> bool {
        self.mode = BodyKind::from_content_type(content_type);
        self.mode != BodyKind::Other
    }

    /// Whether the answer was stopped (too long or unreadable to filter): nothing more of it is
    /// sent.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The reasons of the answers replaced since the last call (the owner's `too_long` and
    /// `unreadable`), for the request's warnings.
    pub fn take_warnings(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.warnings)
    }

    /// Processes one chunk, returning the bytes to send now.
    pub fn chunk(&mut self, data: &Bytes, end: bool, judge: &mut dyn ListJudge<T>) -> Bytes {
        if self.stopped {
            return Bytes::new();
        }
        match self.mode {
            BodyKind::Other => data.clone(),
            BodyKind::Json => {
                if self.buffer.len() + data.len() > MAX_HELD_ANSWER {
                    // The answer to a batch is an array, even of one; a single request has one
                    // pending list.
                    let body = self.json_errors(self.owner.too_long);
                    return self.stop(body);
                }
                let (pending, answered) = (&self.pending, &mut self.answered);
                let read = tollgate_plugin_api::sse::rewrite_json_at_end(
                    &mut self.buffer,
                    data,
                    end,
                    |json| filter_message(pending, answered, json, judge),
                );
                match read {
                    Ok(sent) => sent,
                    Err(_) => {
                        // What cannot be read cannot be filtered: the list requests get errors.
                        tracing::warn!(
                            "{} replaced a list answer that is not JSON",
                            self.owner.plugin
                        );
                        self.warnings.push(self.owner.unreadable);
                        Bytes::from(self.json_errors(self.owner.unreadable))
                    }
                }
            }
            BodyKind::Sse if self.answered.iter().all(|answered| *answered) => {
                // Every list request has its answer: nothing is left to filter or to hold, the
                // rest of the stream (a batch's other answers) passes as it comes.
                if self.buffer.is_empty() {
                    data.clone()
                } else {
                    self.buffer.extend_from_slice(data);
                    self.buffer.split().freeze()
                }
            }
            BodyKind::Sse => {
                self.buffer.extend_from_slice(data);
                if !self.started_sse {
                    // A byte-order mark before the first field is dropped, as SSE readers do:
                    // left, it would hide the first event's `data:` from this filter only.
                    if self.buffer.len() < 3 && !end {
                        return Bytes::new();
                    }
                    if self.buffer.starts_with("\u{feff}".as_bytes()) {
                        let _ = self.buffer.split_to(3);
                    }
                    self.started_sse = true;
                }
                let complete = if end {
                    self.buffer.len()
                } else {
                    self.scanner.complete_len(&self.buffer)
                };
                let events = self.buffer.split_to(complete).freeze();
                let filtered = if events.is_empty() {
                    events
                } else {
                    self.filter_events(&events, judge)
                };
                if self.buffer.len() <= MAX_HELD_ANSWER {
                    return filtered;
                }
                // The events already filtered go out, then an error event for every list
                // request still unanswered; the event too long to read never does.
                let mut out = String::from_utf8_lossy(&filtered).into_owned();
                self.push_error_events(self.owner.too_long, &mut out);
                self.stop(out)
            }
        }
    }

    /// The JSON-RPC errors that answer the list requests still unanswered, for `reason`.
    fn unanswered_errors(&self, reason: &'static str) -> Vec<String> {
        let plugin = self.owner.plugin;
        let message = if reason == self.owner.too_long {
            format!(
                "{plugin} stopped the answer: it is over {} MiB, too long to filter",
                MAX_HELD_ANSWER >> 20
            )
        } else {
            format!("{plugin} stopped the answer: it is not JSON it can read to filter")
        };
        self.pending
            .iter()
            .zip(&self.answered)
            .filter(|(_, answered)| !**answered)
            .map(|(pending, _)| {
                protocol_error::jsonrpc_error(&pending.id, FAILURE_CODE, &message, reason)
            })
            .collect()
    }

    /// The body that answers a JSON request with errors for its unanswered list requests (an
    /// array for a batch, as the answer to a batch is, even of one).
    fn json_errors(&self, reason: &'static str) -> String {
        let mut errors = self.unanswered_errors(reason);
        if self.batch || errors.len() != 1 {
            format!("[{}]", errors.join(","))
        } else {
            errors.swap_remove(0)
        }
    }

    /// Appends an error event for every unanswered list request to `out`, which answers them.
    fn push_error_events(&mut self, reason: &'static str, out: &mut String) {
        for error in self.unanswered_errors(reason) {
            out.push_str("event: message\ndata: ");
            out.push_str(&error);
            out.push_str("\n\n");
        }
        self.answered
            .iter_mut()
            .for_each(|answered| *answered = true);
    }

    /// Ends the answer with `last`; what the upstream sends after it is dropped.
    fn stop(&mut self, last: String) -> Bytes {
        tracing::warn!(
            limit = MAX_HELD_ANSWER,
            "{} stopped an answer too long to filter",
            self.owner.plugin
        );
        self.warnings.push(self.owner.too_long);
        self.stopped = true;
        self.buffer = BytesMut::new();
        Bytes::from(last)
    }

    fn filter_events(&mut self, events: &Bytes, judge: &mut dyn ListJudge<T>) -> Bytes {
        // Not UTF-8, as SSE must be: filtered all the same, the bad bytes replaced.
        let text = String::from_utf8_lossy(events);
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        for event in tollgate_plugin_api::sse::split_events(&text) {
            match self.rewrite_event(event, judge) {
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
    fn rewrite_event(&mut self, event: &str, judge: &mut dyn ListJudge<T>) -> Option<String> {
        let (_, data) = tollgate_plugin_api::sse::event_parts(event);
        if data.is_empty() {
            return None;
        }
        let Ok(mut json) = serde_json::from_str::<Value>(&data) else {
            // It may be the list answer: the unanswered list requests get errors in its place.
            tracing::warn!("{} replaced an event that is not JSON", self.owner.plugin);
            let reason = self.owner.unreadable;
            self.warnings.push(reason);
            let mut out = String::new();
            self.push_error_events(reason, &mut out);
            return Some(out);
        };
        if !filter_message(&self.pending, &mut self.answered, &mut json, judge) {
            return None;
        }
        let mut out = String::new();
        for line in tollgate_plugin_api::sse::lines(event)
            .filter(|l| !l.starts_with("data:") && !l.is_empty())
        {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&json.to_string());
        out.push_str("\n\n");
        Some(out)
    }
}

/// The refusal of a request whose list answers could not be told apart: a list request without
/// an id (or with a null one), whose answer nothing could match, or one whose id another message
/// of the batch shares as lenient clients compare ids (`1`, `1.0`, `"1"`, `-0` and `0`), whose
/// answers a client could take for each other's. `None` when every list request is unambiguous.
pub fn ambiguous_lists(request: &McpRequest) -> Option<Rejection> {
    let is_list = |m: &McpMessage| {
        matches!(
            m.method,
            Some(
                McpMethod::ToolsList
                    | McpMethod::PromptsList
                    | McpMethod::ResourcesList
                    | McpMethod::ResourcesTemplatesList
            )
        )
    };
    let problem = request.messages.iter().enumerate().find_map(|(i, m)| {
        if !is_list(m) {
            return None;
        }
        match &m.id {
            None | Some(Value::Null) => Some("a list request needs an id"),
            Some(id) => request
                .messages
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && other.id.as_ref().is_some_and(|o| same_id(id, o)))
                .then_some("a list request's id is shared by another message of the batch"),
        }
    })?;
    Some(
        Rejection::new(RejectKind::InvalidRequest, AMBIGUOUS_REASON, problem)
            .with_jsonrpc_code(-32600),
    )
}

/// The reason of [`ambiguous_lists`] refusals.
pub const AMBIGUOUS_REASON: &str = "list.ambiguous_id";

/// Whether two JSON-RPC ids name the same request for a lenient client: equal, or equal as
/// numbers (`5`, `5.0`, `"5"`).
fn same_id(awaited: &Value, seen: &Value) -> bool {
    if awaited == seen {
        return true;
    }
    let number = |id: &Value| match id {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    matches!((number(awaited), number(seen)), (Some(a), Some(b)) if a == b)
}

/// Filters the answers to the `pending` list requests in a JSON-RPC response (or batch), noting
/// in `answered` which requests it answers; returns whether anything changed.
fn filter_message<T: Copy>(
    pending_lists: &[PendingList<T>],
    answered: &mut [bool],
    json: &mut Value,
    judge: &mut dyn ListJudge<T>,
) -> bool {
    match json {
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            filter_message(pending_lists, answered, item, judge) | changed
        }),
        Value::Object(object) => {
            // A response is matched by its id as clients read it (`5`, `5.0` and `"5"` name one
            // request for a JavaScript client); a response to no awaited request is judged as
            // the first awaited one's would be, so that an odd id never carries an answer past
            // the judge.
            let by_id = object.get("id").and_then(|id| {
                pending_lists
                    .iter()
                    .position(|pending| same_id(&pending.id, id))
            });
            let is_response = object.contains_key("result") || object.contains_key("error");
            let at = match by_id {
                Some(at) => at,
                None if is_response
                    && !object.contains_key("method")
                    && !pending_lists.is_empty() =>
                {
                    0
                }
                None => return false,
            };
            let Some(pending) = pending_lists.get(at) else {
                return false;
            };
            // A message with a `method` is a request or a notification to the client, whatever
            // else it carries: judged all the same, but the request stays awaited (else its
            // real answer, coming later in the stream, would pass unread).
            let answers = by_id.is_some() && !object.contains_key("method");
            let Some(result) = object.get_mut("result").and_then(Value::as_object_mut) else {
                // Not an answer a client takes (a result that is not an object): the request
                // stays awaited, and the next answer to it is judged.
                if object.contains_key("error") && answers {
                    if let Some(seen) = answered.get_mut(at) {
                        *seen = true;
                    }
                }
                return false;
            };
            if answers {
                if let Some(seen) = answered.get_mut(at) {
                    *seen = true;
                }
            }
            match judge.judge(pending.target, result) {
                Judged::Unchanged => false,
                Judged::Changed => true,
                Judged::Refused {
                    code,
                    message,
                    reason,
                } => {
                    let error = protocol_error::jsonrpc_error(&pending.id, code, &message, reason);
                    if let Ok(error) = serde_json::from_str(&error) {
                        *json = error;
                    }
                    true
                }
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp_rbac::judge::{CallerJudge, OWNER, TOO_LONG_REASON, UNREADABLE_REASON};
    use crate::mcp_rbac::rules::Policy;
    use serde_json::json;

    #[test]
    fn a_filtered_list_is_private_to_its_caller() {
        let policy = Policy {
            rules: Vec::new(),
            default_allow: true,
        };
        let pending = [PendingList {
            id: json!(1),
            target: Target::Tool,
        }];
        let mut answer = json!({"jsonrpc": "2.0", "id": 1, "result": {
            "tools": [{"name": "add"}], "ttlMs": 60000, "cacheScope": "public"}});
        let mut answered = [false];
        assert!(filter_message(
            &pending,
            &mut answered,
            &mut answer,
            &mut CallerJudge {
                policy: &policy,
                identity: None
            }
        ));
        assert_eq!(answer["result"]["cacheScope"], "private");
        assert_eq!(answer["result"]["tools"], json!([{"name": "add"}]));
        // A 2025-era answer has no cache scope to change: left as it is.
        let mut legacy = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "add"}]}});
        assert!(!filter_message(
            &pending,
            &mut answered,
            &mut legacy,
            &mut CallerJudge {
                policy: &policy,
                identity: None
            }
        ));
    }

    #[test]
    fn a_list_answer_that_is_not_utf8_is_filtered_all_the_same() {
        let deny_all = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let answer = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_all\",\"description\":\"bad \xff byte\"}]}}";
        for content_type in ["application/json", "text/event-stream"] {
            let mut filter = ListFilter::new(
                vec![PendingList {
                    id: Value::from(1),
                    target: Target::Tool,
                }],
                false,
                OWNER,
            );
            assert!(filter.start(content_type));
            let body = if content_type == "application/json" {
                answer.to_vec()
            } else {
                [&b"event: message\r\ndata: "[..], answer, b"\r\n\r\n"].concat()
            };
            let out = filter.chunk(
                &Bytes::from(body),
                true,
                &mut CallerJudge {
                    policy: &deny_all,
                    identity: None,
                },
            );
            let out = String::from_utf8(out.to_vec()).unwrap();
            assert!(!out.contains("delete_all"), "{content_type}: {out}");
            assert!(out.contains("\"tools\":[]"), "{content_type}: {out}");
        }
    }

    #[test]
    fn a_server_request_carrying_a_result_does_not_answer_a_list_request() {
        // Found by the `list_filter` fuzz target: a message with the list request's id, a
        // `method` and a `result` marked the request answered, so the real answer in a later
        // chunk passed unread; a client takes the first for a request to it, the second for
        // its answer.
        let deny_all = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let mut judge = CallerJudge {
            policy: &deny_all,
            identity: None,
        };
        let mut filter = ListFilter::new(tools_list(&[1]), false, OWNER);
        filter.start("text/event-stream");
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage",
            "result": {"tools": [{"name": "delete_all"}]}});
        let answer =
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "delete_all"}]}});
        let mut sent = Vec::new();
        for message in [request, answer] {
            let event = format!("event: message\ndata: {message}\n\n");
            sent.extend_from_slice(&filter.chunk(&Bytes::from(event), false, &mut judge));
        }
        let sent = String::from_utf8(sent).unwrap();
        assert!(!sent.contains("delete_all"), "{sent}");
        assert_eq!(sent.matches("\"tools\":[]").count(), 2, "{sent}");
    }

    fn tools_list(ids: &[i64]) -> Vec<PendingList> {
        ids.iter()
            .map(|&id| PendingList {
                id: Value::from(id),
                target: Target::Tool,
            })
            .collect()
    }

    /// A list answer for `id` with one forbidden tool whose description is `padding` bytes.
    fn long_answer(id: i64, padding: usize) -> String {
        json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
            {"name": "delete_all", "description": "x".repeat(padding)}
        ]}})
        .to_string()
    }

    fn too_long_error(json: &Value, id: i64) {
        assert_eq!(json["id"], id, "{json}");
        assert_eq!(json["error"]["code"], -32603, "{json}");
        assert_eq!(json["error"]["data"]["reason"], TOO_LONG_REASON, "{json}");
    }

    #[test]
    fn a_json_answer_too_long_to_filter_becomes_an_error() {
        let allow_none = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        for batch in [false, true] {
            let mut filter = ListFilter::new(tools_list(&[7]), batch, OWNER);
            filter.start("application/json");
            let answer = long_answer(7, MAX_HELD_ANSWER);
            let (head, tail) = answer.split_at(MAX_HELD_ANSWER / 2);
            let first = filter.chunk(
                &Bytes::from(head.to_string()),
                false,
                &mut CallerJudge {
                    policy: &allow_none,
                    identity: None,
                },
            );
            assert!(first.is_empty(), "a JSON answer is held until complete");
            let out = filter.chunk(
                &Bytes::from(tail.to_string()),
                false,
                &mut CallerJudge {
                    policy: &allow_none,
                    identity: None,
                },
            );
            let json: Value = serde_json::from_slice(&out).unwrap();
            match batch {
                false => too_long_error(&json, 7),
                true => too_long_error(&json[0], 7),
            }
            assert!(!String::from_utf8_lossy(&out).contains("delete_all"));
            let rest = filter.chunk(
                &Bytes::from_static(b"]}}"),
                true,
                &mut CallerJudge {
                    policy: &allow_none,
                    identity: None,
                },
            );
            assert!(rest.is_empty(), "nothing of the answer follows the error");
        }
    }

    #[test]
    fn once_every_list_is_answered_the_rest_of_a_stream_passes_as_it_comes() {
        let allow_none = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let mut filter = ListFilter::new(tools_list(&[1]), true, OWNER);
        filter.start("text/event-stream");
        let answer = format!(
            "data: {}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":2,",
            long_answer(1, 10)
        );
        let out = filter.chunk(
            &Bytes::from(answer),
            false,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        assert!(!String::from_utf8_lossy(&out).contains("delete_all"));
        // A batch's other answer, longer than any list answer may be, is not held.
        let other = Bytes::from(format!("\"result\":\"{}", "x".repeat(MAX_HELD_ANSWER)));
        let out = filter.chunk(
            &other,
            false,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        assert!(out.starts_with(b"data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"xxx"));
        assert_eq!(
            out.len(),
            "data: {\"jsonrpc\":\"2.0\",\"id\":2,".len() + other.len()
        );
        let end = Bytes::from_static(b"\"}\n\n");
        assert_eq!(
            filter.chunk(
                &end,
                true,
                &mut CallerJudge {
                    policy: &allow_none,
                    identity: None
                }
            ),
            end
        );
    }

    #[test]
    fn a_stream_event_too_long_to_filter_ends_the_stream_with_errors_for_the_unanswered() {
        let allow_none = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let mut filter = ListFilter::new(tools_list(&[1, 2]), true, OWNER);
        filter.start("text/event-stream");
        let progress = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n";
        let first = format!(
            "{progress}event: message\r\ndata: {}\r\n\r\n",
            long_answer(1, 10)
        );
        let out = filter.chunk(
            &Bytes::from(first),
            false,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(out.starts_with(progress), "{out}");
        assert!(
            !out.contains("delete_all"),
            "the short answer is filtered: {out}"
        );

        let long = format!(
            "event: message\r\ndata: {}",
            long_answer(2, MAX_HELD_ANSWER)
        );
        let out = filter.chunk(
            &Bytes::from(long),
            false,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        let out = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<&str> = out.split_terminator("\n\n").collect();
        assert_eq!(
            events.len(),
            1,
            "one error, for the request still unanswered: {out}"
        );
        let data = events[0].strip_prefix("event: message\ndata: ").unwrap();
        too_long_error(&serde_json::from_str(data).unwrap(), 2);
        let rest = filter.chunk(
            &Bytes::from_static(b"\r\n\r\n"),
            true,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        assert!(rest.is_empty(), "nothing of the stream follows the error");
        assert_eq!(filter.take_warnings(), [TOO_LONG_REASON]);
    }

    #[test]
    fn a_list_answer_that_is_not_json_becomes_errors_never_passes() {
        let allow_none = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        // serde refuses a lone surrogate; a JavaScript client would read the tools.
        let unreadable =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_all\ud800"}]}}"#;
        let mut filter = ListFilter::new(tools_list(&[1]), false, OWNER);
        filter.start("application/json");
        let out = filter.chunk(
            &Bytes::from(unreadable),
            true,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["id"], 1, "{json}");
        assert_eq!(json["error"]["data"]["reason"], UNREADABLE_REASON, "{json}");
        assert_eq!(filter.take_warnings(), [UNREADABLE_REASON]);

        let mut filter = ListFilter::new(tools_list(&[1, 2]), true, OWNER);
        filter.start("text/event-stream");
        let stream = format!(
            "event: message\ndata: {}\n\nevent: message\ndata: {unreadable}\n\n",
            long_answer(2, 1)
        );
        let out = filter.chunk(
            &Bytes::from(stream),
            false,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(!out.contains("delete_all"), "{out}");
        let errors: Vec<Value> = tollgate_plugin_api::sse::split_events(&out)
            .map(|event| tollgate_plugin_api::sse::event_parts(event).1)
            .filter_map(|data| serde_json::from_str::<Value>(&data).ok())
            .filter(|json| json.get("error").is_some())
            .collect();
        assert_eq!(errors.len(), 1, "for the request still unanswered: {out}");
        assert_eq!(errors[0]["id"], 1);
        assert_eq!(errors[0]["error"]["data"]["reason"], UNREADABLE_REASON);
        // Every list request has its answer now: the rest passes.
        let rest = filter.chunk(
            &Bytes::from_static(b": done\n\n"),
            true,
            &mut CallerJudge {
                policy: &allow_none,
                identity: None,
            },
        );
        assert_eq!(rest, ": done\n\n");
    }

    #[test]
    fn odd_ids_a_decoy_answer_and_a_byte_order_mark_do_not_carry_a_list_past_the_judge() {
        let deny_all = Policy {
            rules: Vec::new(),
            default_allow: false,
        };
        let listed = |id: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"delete_all"}}]}}}}"#
            )
        };
        for (content_type, body) in [
            ("application/json", listed("\"5\"")),
            ("application/json", listed("5.0")),
            ("application/json", listed("99")),
            (
                "text/event-stream",
                format!(
                    "data: {{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":[]}}\n\ndata: {}\n\n",
                    listed("5")
                ),
            ),
            (
                "text/event-stream",
                format!("\u{feff}data: {}\n\n", listed("5")),
            ),
        ] {
            let mut filter = ListFilter::new(tools_list(&[5]), false, OWNER);
            assert!(filter.start(content_type));
            let out = filter.chunk(
                &Bytes::from(body.clone()),
                true,
                &mut CallerJudge {
                    policy: &deny_all,
                    identity: None,
                },
            );
            let out = String::from_utf8(out.to_vec()).unwrap();
            assert!(!out.contains("delete_all"), "{body}\n-> {out}");
        }
    }

    #[test]
    fn list_requests_without_an_id_or_sharing_one_are_refused() {
        let message = |id: Option<Value>, method: McpMethod| McpMessage {
            id,
            method: Some(method),
            target: None,
        };
        let request = |messages: Vec<McpMessage>| McpRequest {
            batch: messages.len() > 1,
            messages,
        };
        let fine = request(vec![
            message(Some(json!(1)), McpMethod::ToolsList),
            message(Some(json!(2)), McpMethod::ToolsCall),
            message(None, McpMethod::NotificationsInitialized),
        ]);
        assert!(ambiguous_lists(&fine).is_none());
        for (messages, what) in [
            (vec![message(None, McpMethod::ToolsList)], "no id"),
            (
                vec![message(Some(Value::Null), McpMethod::PromptsList)],
                "null id",
            ),
            (
                vec![
                    message(Some(json!(1)), McpMethod::ToolsList),
                    message(Some(json!(1.0)), McpMethod::ToolsCall),
                ],
                "1 and 1.0",
            ),
            (
                vec![
                    message(Some(json!(0)), McpMethod::ToolsList),
                    message(Some(json!(-0.0)), McpMethod::ToolsCall),
                ],
                "0 and -0",
            ),
            (
                vec![
                    message(Some(json!("7")), McpMethod::ResourcesList),
                    message(Some(json!(7)), McpMethod::ToolsList),
                ],
                "\"7\" and 7",
            ),
        ] {
            let refusal = ambiguous_lists(&request(messages)).expect(what);
            assert_eq!(refusal.reason, AMBIGUOUS_REASON, "{what}");
            assert_eq!(refusal.jsonrpc_code, Some(-32600), "{what}");
        }
    }
}

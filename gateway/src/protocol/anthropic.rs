//! The Anthropic Messages API: request facts and usage from JSON bodies and SSE events.

use bytes::Bytes;
use serde_json::Value;
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::json_answer::JsonAnswer;
use tollgate_plugin_api::sse::json_string;
use tollgate_plugin_api::stream_events::{ContentDeltaRef, EventView};
use tollgate_plugin_api::{LlmRequest, RequestCtx};

/// Facts about a Messages request body (`POST /v1/messages`, `count_tokens`).
pub fn describe_request(json: &Value) -> LlmRequest {
    LlmRequest {
        model: json
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        stream: json.get("stream").and_then(Value::as_bool).unwrap_or(false),
        max_tokens: json.get("max_tokens").and_then(Value::as_u64),
        message_count: json
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    }
}

/// The same facts as [`describe_request`], read straight from the body without building a JSON
/// tree (for routes where no plugin reads the body: a 100 KB prompt is scanned, not copied).
/// `None` when the body is not a JSON object.
pub fn describe_raw(raw: &[u8]) -> Option<LlmRequest> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let head: RequestHead = serde_json::from_slice(raw).ok()?;
    Some(LlmRequest {
        model: head.model.and_then(|m| match m {
            Value::String(s) => Some(s),
            _ => None,
        }),
        stream: head.stream.and_then(|v| v.as_bool()).unwrap_or(false),
        max_tokens: head.max_tokens.and_then(|v| v.as_u64()),
        message_count: head.messages.map_or(0, |m| m.0),
    })
}

/// The fields of a Messages request the gateway reads; everything else is skipped unparsed.
#[derive(serde::Deserialize)]
struct RequestHead {
    model: Option<Value>,
    stream: Option<Value>,
    max_tokens: Option<Value>,
    messages: Option<ElementCount>,
}

/// The number of elements when the value is an array (0 otherwise), counted without keeping them.
struct ElementCount(usize);

impl<'de> serde::Deserialize<'de> for ElementCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = ElementCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ElementCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(ElementCount(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ElementCount, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(ElementCount(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
            fn visit_unit<E>(self) -> Result<ElementCount, E> {
                Ok(ElementCount(0))
            }
        }
        deserializer.deserialize_any(Counter)
    }
}

/// Records usage and model from a whole (non-streamed) response body.
pub fn observe_json_body(json: &Value, cx: &mut RequestCtx) {
    if let Some(model) = json.get("model").and_then(Value::as_str) {
        facts_mut(cx).response_model = Some(model.to_string());
    }
    if let Some(usage) = json.get("usage") {
        apply_usage(usage, cx);
    }
}

/// The same as [`observe_json_body`] on a whole response body, without building its JSON tree;
/// returns the reading for the route's plugins (where the answer's texts are), `None` for a body
/// not of the Messages shape (whose model and usage are still read if it has them).
pub fn observe_json_answer(body: Bytes, cx: &mut RequestCtx) -> Option<JsonAnswer> {
    match JsonAnswer::read(body.clone()) {
        Some((answer, fields)) => {
            apply_fields(fields.model, fields.usage.as_ref(), cx);
            Some(answer)
        }
        None => {
            observe_json_bytes(&body, cx);
            None
        }
    }
}

/// Model and usage of a whole response body of any shape (the rest is skipped unparsed).
pub fn observe_json_bytes(raw: &[u8], cx: &mut RequestCtx) {
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return;
    }
    let Ok(head) = serde_json::from_slice::<ResponseFacts>(raw) else {
        return;
    };
    apply_fields(head.model, head.usage.as_ref(), cx);
}

fn apply_fields(model: Option<Value>, usage: Option<&Value>, cx: &mut RequestCtx) {
    if let Some(Value::String(model)) = model {
        facts_mut(cx).response_model = Some(model);
    }
    if let Some(usage) = usage {
        apply_usage(usage, cx);
    }
}

/// The fields of a Messages response the gateway reads; the rest is skipped.
#[derive(serde::Deserialize)]
struct ResponseFacts {
    model: Option<Value>,
    usage: Option<Value>,
}

/// Records usage from one SSE event of a streamed response.
pub fn observe_event(event: &EventView<'_>, cx: &mut RequestCtx) {
    let field = match event.name {
        Some("content_block_delta") => {
            let facts = facts_mut(cx);
            if facts.first_token_at.is_none() {
                facts.first_token_at = Some(std::time::Instant::now());
            }
            if let Some(delta) = event.content_delta {
                estimate_streamed_output(delta, cx);
            }
            return;
        }
        Some("message_start") => "message",
        Some("message_delta") => "usage",
        _ => return,
    };
    let Ok(json) = serde_json::from_str::<Value>(event.data) else {
        return;
    };
    match json.get(field) {
        Some(message) if field == "message" => observe_json_body(message, cx),
        Some(usage) => apply_usage(usage, cx),
        None => {}
    }
}

/// Text streamed so far, in characters.
#[derive(Debug, Default)]
struct StreamedChars(u64);

/// Keeps an estimate of the output tokens (about four characters each) while text streams, so
/// that a stream the client abandons before `message_delta` is still charged for what was
/// generated; the exact figure of `message_delta` replaces it when it comes.
fn estimate_streamed_output(delta: &ContentDeltaRef<'_>, cx: &mut RequestCtx) {
    let chars = delta
        .delta
        .as_ref()
        .and_then(|d| {
            [d.text, d.partial_json, d.thinking]
                .into_iter()
                .flatten()
                .next()
        })
        .and_then(|raw| json_string(raw.get()))
        .map_or(0, |text| text.chars().count() as u64);
    let total = match cx.extensions.get_mut::<StreamedChars>() {
        Some(streamed) => {
            streamed.0 += chars;
            streamed.0
        }
        None => {
            cx.extensions.insert(StreamedChars(chars));
            chars
        }
    };
    let estimate = total.div_ceil(4);
    let usage = &mut facts_mut(cx).usage;
    if estimate > usage.output_tokens {
        usage.output_tokens = estimate;
        usage.reported = true;
    }
}

// Anthropic reports cumulative figures; cache reads and writes are input tokens too.
fn apply_usage(usage: &Value, cx: &mut RequestCtx) {
    let field = |name: &str| usage.get(name).and_then(Value::as_u64);
    let seen = &mut facts_mut(cx).usage;
    let input = [
        field("input_tokens"),
        field("cache_creation_input_tokens"),
        field("cache_read_input_tokens"),
    ];
    if input.iter().any(Option::is_some) {
        seen.input_tokens = input.iter().flatten().sum();
        seen.cache_write_tokens = input[1].unwrap_or(0);
        seen.cache_read_tokens = input[2].unwrap_or(0);
        seen.reported = true;
    }
    if let Some(output) = field("output_tokens") {
        seen.output_tokens = output;
        seen.reported = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::{RouteInfo, RouteKind};

    fn cx() -> RequestCtx {
        let route = RouteInfo {
            name: "a".into(),
            kind: RouteKind::Llm,
            provider: Some("anthropic".into()),
            path_prefix: "/anthropic".into(),
        };
        RequestCtx::new(
            route,
            http::Method::POST,
            "/v1/messages".parse().unwrap(),
            Default::default(),
        )
    }

    /// Observes one event as the gateway reads it off the wire.
    fn feed(cx: &mut RequestCtx, name: &str, data: &str) {
        let event = tollgate_plugin_api::sse::format_event(Some(name), data);
        tollgate_plugin_api::stream_events::observe_events(&event, |e| observe_event(e, cx));
    }

    #[test]
    fn usage_from_stream_events() {
        let mut cx = cx();
        feed(
            &mut cx,
            "message_start",
            r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
        );
        feed(
            &mut cx,
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
        );
        assert_eq!(cx.usage().input_tokens, 30);
        assert_eq!(cx.usage().cache_read_tokens, 5);
        assert_eq!(cx.usage().cache_write_tokens, 0);
        assert_eq!(cx.usage().output_tokens, 15);
        assert_eq!(cx.response_model(), Some("claude-x"));
    }

    #[test]
    fn abandoned_stream_is_estimated_from_its_text() {
        let mut cx = cx();
        feed(
            &mut cx,
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        );
        for text in ["twelve chars", r"tw\u00e9lve chars", r#"{\"a\": [1, 2]}"#] {
            let data = format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            );
            feed(&mut cx, "content_block_delta", &data);
        }
        assert_eq!(
            cx.usage().output_tokens,
            10,
            "37 characters (escapes decoded) ~ 10 tokens"
        );
        assert!(cx.first_token_at().is_some());
        feed(
            &mut cx,
            "message_delta",
            r#"{"type":"message_delta","usage":{"output_tokens":7}}"#,
        );
        assert_eq!(cx.usage().output_tokens, 7, "the exact figure wins");
    }

    #[test]
    fn request_facts() {
        let json = serde_json::json!({"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]});
        let req = describe_request(&json);
        assert_eq!(req.model.as_deref(), Some("m"));
        assert!(req.stream);
        assert_eq!(req.max_tokens, Some(64));
        assert_eq!(req.message_count, 1);
    }
}

#[cfg(test)]
mod raw_description_tests {
    use super::*;

    #[test]
    fn raw_description_matches_the_tree_one() {
        for body in [
            r#"{"model":"claude-x","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi \"there\""},{"role":"assistant","content":[{"type":"text","text":"ok"}]}],"system":"s"}"#,
            r#"{"model":7,"stream":"yes","max_tokens":-1,"messages":{"a":1}}"#,
            r#"  {"messages":[]}"#,
            r#"{}"#,
        ] {
            let tree = describe_request(&serde_json::from_str(body).unwrap());
            let raw = describe_raw(body.as_bytes()).unwrap();
            assert_eq!(format!("{tree:?}"), format!("{raw:?}"), "{body}");
        }
        let mut from_tree = RequestCtx::new(
            tollgate_plugin_api::RouteInfo {
                name: "r".into(),
                kind: tollgate_plugin_api::RouteKind::Llm,
                provider: None,
                path_prefix: "/".into(),
            },
            http::Method::POST,
            http::Uri::from_static("/"),
            http::HeaderMap::new(),
        );
        let mut from_bytes = RequestCtx::new(
            from_tree.route().clone(),
            http::Method::POST,
            http::Uri::from_static("/"),
            http::HeaderMap::new(),
        );
        let answer = r#"{"id":"m","model":"claude-x","content":[{"type":"text","text":"a \"quoted\" answer"}],"usage":{"input_tokens":12,"cache_read_input_tokens":5,"output_tokens":3}}"#;
        observe_json_body(&serde_json::from_str(answer).unwrap(), &mut from_tree);
        let read = observe_json_answer(Bytes::from_static(answer.as_bytes()), &mut from_bytes);
        assert_eq!(read.map(|a| a.texts().count()), Some(1));
        assert_eq!(from_bytes.response_model(), Some("claude-x"));
        assert_eq!(
            (
                from_tree.usage().input_tokens,
                from_tree.usage().output_tokens,
                from_tree.usage().reported
            ),
            (
                from_bytes.usage().input_tokens,
                from_bytes.usage().output_tokens,
                from_bytes.usage().reported
            )
        );
        assert_eq!(from_bytes.usage().input_tokens, 17);
        observe_json_bytes(b"[1]", &mut from_bytes);
        assert_eq!(
            from_bytes.response_model(),
            Some("claude-x"),
            "not an answer"
        );
        // Not the Messages shape (content is no array): nothing for plugins, usage still read.
        let odd = r#"{"model":"odd","content":"text","usage":{"output_tokens":9}}"#;
        assert!(observe_json_answer(Bytes::from_static(odd.as_bytes()), &mut from_bytes).is_none());
        assert_eq!(from_bytes.response_model(), Some("odd"));
        assert_eq!(from_bytes.usage().output_tokens, 9);
        for bad in ["[1,2]", "\"text\"", "{\"model\":", "", "null"] {
            assert!(describe_raw(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}

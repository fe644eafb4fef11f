//! The Anthropic Messages API as the gateway reads it: the request facts (`describe_raw`, the
//! tree-free reader, against `describe_request`), the answer's model and usage from a JSON body
//! (`JsonAnswer::read`) or an SSE stream cut in arbitrary chunks (the gateway's
//! `ResponseObserver`), and the settlement `token-ratelimit` makes with that usage. Never
//! panics; the readers agree with each other and with a JSON tree; chunking changes nothing.

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::internals::{anthropic, ResponseObserver};
use tollgate_fuzz::Cuts;
use tollgate_plugin_api::json_answer::JsonAnswer;
use tollgate_plugin_api::sse::json_string;
use tollgate_plugin_api::testing::{allowed, block_on, TestExchange, TestRequest};
use tollgate_plugin_api::toml::Table;
use tollgate_plugin_api::{PluginFactory, RequestBody, RequestCtx, RouteKind, Usage};
use tollgate_plugins::token_ratelimit::TokenRateLimitFactory;

/// The input, laid out so that a seed is easy to write: a flags byte (bit 0: the answer is a
/// stream, else a JSON body), `CUT_BYTES` bytes of chunk lengths, the request's length (two
/// bytes, little-endian), the request, the answer.
struct Input<'a> {
    stream: bool,
    cuts: Cuts,
    request: &'a [u8],
    answer: &'a [u8],
}

impl<'a> Input<'a> {
    fn read(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (cuts, rest) = Cuts::prefix(rest);
        let (len, rest) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]])).min(rest.len());
        let (request, answer) = rest.split_at(len);
        Some(Self {
            stream: flags & 1 == 1,
            cuts,
            request,
            answer,
        })
    }
}

/// The plugin's table, read once; a plugin (with its buckets) is built for each run.
fn limit() -> &'static Table {
    static LIMIT_TABLE: OnceLock<Table> = OnceLock::new();
    LIMIT_TABLE.get_or_init(|| LIMIT.parse().unwrap())
}

const LIMIT: &str = r#"
unit = "tokens"
key = "route"
max_tokens = 1000000
refill_tokens = 1
refill_interval = "1h"
"#;

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::read(data) else {
        return;
    };
    // The request: the reader without a tree finds what the tree holds.
    let raw = anthropic::describe_raw(input.request);
    if let Some(raw) = &raw {
        // A tree may refuse what the reader skips unread (a number too large for an f64).
        if let Ok(json) = serde_json::from_slice::<Value>(input.request) {
            assert!(json.is_object());
            assert_eq!(*raw, anthropic::describe_request(&json));
        }
    }

    // The exchange, through token-ratelimit.
    let plugin = TokenRateLimitFactory.build("tokens", limit()).unwrap();
    let mut request = TestRequest::llm("/v1/messages");
    if let Some(facts) = raw {
        request = request.llm_request(facts);
    }
    let mut exchange = TestExchange::new(plugin.clone(), request.clone());
    let mut body = RequestBody::new(Bytes::copy_from_slice(input.request), None);
    let admitted = block_on(exchange.on_request_body(&mut body)).unwrap();

    let content_type = if input.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let pieces = input.cuts.split(input.answer);
    let read = observe(exchange.cx_mut(), content_type, &pieces);
    // However the answer is cut, the same usage and model are read.
    let mut whole = TestRequest::llm("/v1/messages").build();
    let whole_read = observe(&mut whole, content_type, &[input.answer]);
    assert_eq!(facts(exchange.cx()), facts(&whole), "pieces {pieces:?}");
    assert_eq!(read.is_some(), whole_read.is_some());

    if !input.stream {
        check_json_answer(input.answer, read, exchange.cx());
    }

    if admitted.is_continue() {
        block_on(exchange.on_response(http::StatusCode::OK, &[("content-type", content_type)]))
            .unwrap();
        block_on(exchange.on_complete(&allowed(200)));
        // The same caller's next request meets the bucket as the usage left it.
        let mut next = TestExchange::new(plugin, request);
        let mut body = RequestBody::new(Bytes::copy_from_slice(input.request), None);
        if block_on(next.on_request_body(&mut body)).unwrap().is_continue() {
            block_on(next.on_response(http::StatusCode::OK, &[("content-type", content_type)]))
                .unwrap();
        }
    }
});

/// Runs the gateway's observer over `pieces`, as the proxy does; the reading of a JSON answer.
fn observe(cx: &mut RequestCtx, content_type: &str, pieces: &[&[u8]]) -> Option<JsonAnswer> {
    let mut observer = ResponseObserver::for_response(RouteKind::Llm, Some(content_type));
    for piece in pieces {
        let _ = observer.chunk(piece, true, cx);
    }
    observer.finish(cx, true)
}

fn facts(cx: &RequestCtx) -> (Usage, Option<String>) {
    (cx.usage(), cx.response_model().map(str::to_string))
}

/// A JSON answer's reading agrees with its JSON tree: the same model and usage, and every text
/// a client reads in `content` is among the texts the reading found (a plugin that checks the
/// texts sees all of them).
fn check_json_answer(body: &[u8], read: Option<JsonAnswer>, cx: &RequestCtx) {
    let Some(answer) = read else {
        return;
    };
    // The reader skips what it does not read unchecked (bytes that are not UTF-8, a number too
    // large for an f64): compared with the tree of the text a lenient client decodes, if any.
    let Ok(json) = serde_json::from_str::<Value>(&String::from_utf8_lossy(body)) else {
        return;
    };
    assert_eq!(&answer.body()[..], body);
    let mut tree = TestRequest::llm("/v1/messages").build();
    anthropic::observe_json_body(&json, &mut tree);
    assert_eq!(facts(cx), facts(&tree));
    let texts: Vec<String> = answer
        .texts()
        .map(|raw| {
            json_string(raw)
                .unwrap_or_else(|| panic!("{raw:?} is not a JSON string"))
                .into_owned()
        })
        .collect();
    let mut found = texts.iter();
    if let Some(Value::Array(blocks)) = json.get("content") {
        for text in blocks.iter().filter_map(|b| b.get("text")?.as_str()) {
            assert!(
                found.any(|t| t == text),
                "the text {text:?} was not found (found {texts:?})"
            );
        }
    }
}

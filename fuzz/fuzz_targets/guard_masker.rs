//! The guard's answer masker (`prompt-guard`'s `ResponseMasker`, through the plugin with the
//! gateway's own reading of the answer, as the proxy runs it) with the `email` builtin, on
//! Anthropic answers, JSON and SSE, whose texts hold e-mail addresses, cut in arbitrary chunks
//! and deltas: never panics, no address of the text reaches the client whole, and the client
//! reads each text block exactly as masking it whole gives.

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tollgate::internals::ResponseObserver;
use tollgate_fuzz::{client_events, Cuts};
use tollgate_plugin_api::testing::{block_on, build_plugin, json_body, TestExchange, TestRequest};
use tollgate_plugin_api::{Plugin, ResponseChunk, RouteKind};
use tollgate_plugins::prompt_guard::detectors::Detector;
use tollgate_plugins::prompt_guard::PromptGuardFactory;

const GUARD: &str = r#"
[[rules]]
builtin = "email"
action = "mask"
"#;

/// The plugin and the detector, built once (compiling their regex is most of a run's time
/// otherwise); the masker's state lives in each request's context.
fn guard() -> &'static (Arc<dyn Plugin>, Detector) {
    static GUARD_AND_EMAIL: OnceLock<(Arc<dyn Plugin>, Detector)> = OnceLock::new();
    GUARD_AND_EMAIL.get_or_init(|| {
        (
            build_plugin(&PromptGuardFactory, "guard", GUARD).unwrap(),
            Detector::builtin("email").unwrap(),
        )
    })
}

/// Longest address planted: longer matches that straddle a delta are masked only in part (the
/// documented limit of the 64 characters held back, docs/guard.md).
const MAX_ADDRESS: usize = 64;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    stream: bool,
    blocks: Vec<Block<'a>>,
    /// Which block's next delta comes next.
    schedule: Vec<u8>,
    line_end: u8,
    /// Texts written with every non-ASCII character escaped (`\u00e9`), as Python writes JSON.
    ascii: bool,
    pings: Vec<u8>,
    cuts: Cuts,
    /// The proxy path that hands the last data chunk with the end (and no reading of the
    /// events), else the streaming path (the gateway's reading, then an empty last chunk).
    end_with_data: bool,
}

#[derive(Debug, Arbitrary)]
struct Block<'a> {
    tokens: Vec<Token<'a>>,
    /// Characters per delta, in turn (0 reads as 1).
    deltas: Vec<u8>,
    stop: bool,
}

#[derive(Debug, Arbitrary)]
enum Token<'a> {
    Word(&'a str),
    /// A word of this many letters (a long text from a short input: the masker holds back the
    /// last 64 characters of a block).
    Filler(u8),
    Address {
        local: &'a [u8],
        domain: &'a [u8],
        tld: &'a [u8],
    },
}

const SEPARATORS: [&str; 4] = [" ", "\n", ", ", "\t"];

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ','
}

/// Builds a block's text from its tokens, separated; returns the text and its addresses.
fn text_of(tokens: &[Token<'_>], email: &Detector) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut addresses = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            text.push_str(SEPARATORS[i % SEPARATORS.len()]);
        }
        match token {
            Token::Word(word) => {
                let word: String = word
                    .chars()
                    .filter(|c| *c != '@' && !is_separator(*c))
                    .collect();
                text.push_str(if word.is_empty() { "w" } else { &word });
            }
            Token::Filler(len) => text.push_str(&"z".repeat(usize::from(*len).max(1))),
            Token::Address { local, domain, tld } => {
                let pick = |bytes: &[u8], alphabet: &[u8], max: usize| -> String {
                    bytes
                        .iter()
                        .take(max)
                        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
                        .collect()
                };
                let local = pick(local, b"abcdefghijklmnopqrstuvwxyz0123456789._%+-", 30);
                let domain = pick(domain, b"abcdefghijklmnopqrstuvwxyz0123456789.-", 24);
                let tld = pick(tld, b"abcdefghijklmnopqrstuvwxyz", 6);
                let address = format!("{local}@{domain}.{tld}");
                // Only what the detector reads whole as an address is planted as one.
                let whole = email.spans(&address).next() == Some(0..address.len());
                if whole && address.chars().count() <= MAX_ADDRESS {
                    text.push_str(&address);
                    addresses.push(address);
                } else {
                    text.push('x');
                }
            }
        }
    }
    (text, addresses)
}

/// `text` as a JSON string, escaped as a provider may write it.
fn json_text(text: &str, ascii: bool) -> String {
    let plain = serde_json::to_string(text).unwrap();
    if !ascii {
        return plain;
    }
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `text` cut into deltas of `sizes` characters.
fn deltas(text: &str, sizes: &[u8]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut at = 0;
    let mut sizes = sizes
        .iter()
        .copied()
        .chain(std::iter::repeat(sizes.last().copied().unwrap_or(u8::MAX)));
    while at < chars.len() {
        let len = usize::from(sizes.next().unwrap_or(1)).max(1);
        let end = (at + len).min(chars.len());
        out.push(chars[at..end].iter().collect());
        at = end;
    }
    out
}

fn stream_of(input: &Input<'_>, texts: &[String]) -> String {
    let end = ["\n", "\r\n", "\r"][usize::from(input.line_end) % 3];
    let mut out = String::new();
    let mut event = |name: &str, data: String| {
        out.push_str(&format!("event: {name}{end}data: {data}{end}{end}"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude", "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 1}}})
        .to_string(),
    );
    let mut queues: Vec<std::collections::VecDeque<String>> = texts
        .iter()
        .zip(&input.blocks)
        .map(|(text, block)| deltas(text, &block.deltas).into())
        .collect();
    let mut started = vec![false; queues.len()];
    let mut schedule = input.schedule.iter().copied().cycle();
    let mut pings = input.pings.iter().copied();
    loop {
        let open: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty() || !started[*i])
            .collect();
        if open.is_empty() {
            break;
        }
        let index = open[usize::from(schedule.next().unwrap_or(0)) % open.len()];
        if !started[index] {
            started[index] = true;
            event(
                "content_block_start",
                format!(
                    r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
                ),
            );
        }
        if let Some(delta) = queues[index].pop_front() {
            event(
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{}}}}}"#,
                    json_text(&delta, input.ascii)
                ),
            );
        }
        if queues[index].is_empty() && input.blocks[index].stop {
            event(
                "content_block_stop",
                format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
            );
        }
        if pings.next().is_some_and(|p| p % 4 == 0) {
            event("ping", r#"{"type": "ping"}"#.to_string());
        }
    }
    event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#
            .to_string(),
    );
    event("message_stop", r#"{"type":"message_stop"}"#.to_string());
    out
}

fn answer_of(input: &Input<'_>, texts: &[String]) -> String {
    let blocks: Vec<String> = texts
        .iter()
        .map(|text| {
            format!(
                r#"{{"type":"text","text":{}}}"#,
                json_text(text, input.ascii)
            )
        })
        .collect();
    format!(
        r#"{{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{}],"usage":{{"input_tokens":12,"output_tokens":9}}}}"#,
        blocks.join(r#",{"type":"tool_use","id":"t","name":"n","input":{"text":"a@b.io"}},"#)
    )
}

fuzz_target!(|input: Input<'_>| {
    if input.blocks.len() > 4 {
        return;
    }
    let (plugin, email) = guard();
    let (texts, addresses): (Vec<String>, Vec<Vec<String>>) = input
        .blocks
        .iter()
        .map(|block| text_of(&block.tokens, email))
        .unzip();
    let (content_type, answer) = if input.stream {
        ("text/event-stream", stream_of(&input, &texts))
    } else {
        ("application/json", answer_of(&input, &texts))
    };

    let mut exchange = TestExchange::new(plugin.clone(), TestRequest::llm("/v1/messages"));
    let request = json!({"model": "claude", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello"}]});
    let verdict = block_on(exchange.on_request_body(&mut json_body(&request))).unwrap();
    assert!(verdict.is_continue());
    block_on(exchange.on_response(StatusCode::OK, &[("content-type", content_type)])).unwrap();

    let pieces = input.cuts.split(answer.as_bytes());
    let mut observer = ResponseObserver::for_response(RouteKind::Llm, Some(content_type));
    let mut sent = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let data = Bytes::copy_from_slice(piece);
        let mut chunk = if input.end_with_data {
            ResponseChunk::new(data, i + 1 == pieces.len())
        } else {
            match observer.chunk(piece, true, exchange.cx_mut()) {
                Some(events) => ResponseChunk::with_events(data, false, events),
                None => ResponseChunk::new(data, false),
            }
        };
        plugin.on_response_chunk(exchange.cx_mut(), &mut chunk);
        sent.extend_from_slice(chunk.data());
    }
    if !input.end_with_data {
        let mut end = match observer.finish(exchange.cx_mut(), true) {
            Some(reading) => ResponseChunk::with_answer(Bytes::new(), reading),
            None => ResponseChunk::new(Bytes::new(), true),
        };
        plugin.on_response_chunk(exchange.cx_mut(), &mut end);
        sent.extend_from_slice(end.data());
    }

    // The texts as the client reads them, per block.
    let mut read: BTreeMap<u64, String> = BTreeMap::new();
    if input.stream {
        for event in client_events(&sent) {
            if event.name != "content_block_delta" {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data)
                .unwrap_or_else(|e| panic!("a delta that is not JSON ({e}): {:?}", event.data));
            let index = data["index"].as_u64().expect("a delta without its index");
            if let Some(text) = data["delta"]["text"].as_str() {
                read.entry(index).or_default().push_str(text);
            }
        }
    } else {
        let answer: Value = serde_json::from_slice(&sent).expect("an answer that is not JSON");
        let texts = answer["content"]
            .as_array()
            .expect("an answer without content");
        for (i, text) in texts
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .enumerate()
        {
            read.insert(i as u64, text.to_string());
        }
    }
    let sent_text = String::from_utf8_lossy(&sent);
    for (i, text) in texts.iter().enumerate() {
        let got = read.get(&(i as u64)).map_or("", String::as_str);
        for address in &addresses[i] {
            assert!(
                !got.contains(address.as_str()),
                "block {i}: {address} reached the client: {got:?}\nsent: {sent_text:?}"
            );
        }
        let want = email.mask(text).unwrap_or_else(|| text.clone());
        assert_eq!(got, want, "block {i} of {texts:?}\nsent: {sent_text:?}");
    }
});

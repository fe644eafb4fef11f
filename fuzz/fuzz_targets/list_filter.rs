//! The RBAC list filter (`mcp-rbac`'s `ListFilter`, through the plugin as the gateway runs it) on
//! answers to `tools/list`, JSON and SSE, arbitrary or built from JSON-RPC messages, cut in
//! arbitrary chunks: never panics, and the answer a client takes for a list request it sent
//! never names a tool the caller may not see.

#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tollgate_fuzz::{client_events, Cuts};
use tollgate_plugin_api::testing::{block_on, build_plugin, identity, TestExchange, TestRequest};
use tollgate_plugin_api::{McpMessage, McpMethod, McpRequest, Plugin, RequestBody, ResponseChunk};
use tollgate_plugins::mcp_rbac::McpRbacFactory;

/// Everyone may list any tool but `secret*` and `hidden_tool`, which only admins see.
const POLICY: &str = r#"
default = "allow"
[[rules]]
tools = ["secret*", "hidden_tool"]
claim = "groups"
any_of = ["admins"]
"#;

/// The plugin, built once: a request's filter lives in its context.
fn rbac() -> &'static Arc<dyn Plugin> {
    static RBAC: OnceLock<Arc<dyn Plugin>> = OnceLock::new();
    RBAC.get_or_init(|| build_plugin(&McpRbacFactory, "rbac", POLICY).unwrap())
}

fn hidden(name: &str) -> bool {
    name.starts_with("secret") || name == "hidden_tool"
}

const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "text/event-stream",
    "Application/JSON; charset=utf-8",
    " text/event-stream;charset=utf-8",
    "text/plain",
    "",
];

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    requests: Vec<(Id, Method)>,
    batch: bool,
    content_type: u8,
    cuts: Cuts,
    /// The answer ends with a last chunk holding data (else with an empty one).
    end_with_data: bool,
    answer: Answer<'a>,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Id {
    Int(i8),
    Float(i8),
    Text(u8),
    Null,
    Absent,
}

impl Id {
    fn json(self) -> Option<Value> {
        match self {
            Id::Int(n) => Some(json!(n)),
            Id::Float(n) => Some(json!(f64::from(n) + 0.0)),
            Id::Text(n) => Some(json!(n.to_string())),
            Id::Null => Some(Value::Null),
            Id::Absent => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Method {
    ToolsList,
    PromptsList,
    ToolsCall,
    Ping,
}

#[derive(Debug, Arbitrary)]
enum Answer<'a> {
    Raw(&'a [u8]),
    Built {
        messages: Vec<Message>,
        /// JSON: the messages as one array (else the first alone). SSE: how each is framed.
        array: bool,
        framing: Vec<Framing>,
        bom: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Message {
    id: Id,
    kind: Kind,
    tools: Vec<Tool>,
    cache_scope: bool,
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Result,
    Error,
    ErrorAndResult,
    ResultNotObject,
    /// A server request that also carries a `result`.
    RequestWithResult,
    Notification,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Tool {
    Public(u8),
    Secret(u8),
    HiddenTool,
    Escaped,
    NameNotText,
    NoName,
}

impl Tool {
    fn json(self) -> Value {
        match self {
            Tool::Public(n) => json!({"name": format!("tool{n}"), "description": "secret_ stuff"}),
            Tool::Secret(n) => json!({"name": format!("secret{n}")}),
            Tool::HiddenTool => json!({"name": "hidden_tool"}),
            // Written with an escape below.
            Tool::Escaped => json!({"name": "secret\u{e9}"}),
            Tool::NameNotText => json!({"name": 7}),
            Tool::NoName => json!({"title": "x"}),
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
struct Framing {
    line_end: LineEnd,
    named: bool,
    pretty: bool,
    comment: bool,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum LineEnd {
    Lf,
    CrLf,
    Cr,
}

impl LineEnd {
    fn text(self) -> &'static str {
        match self {
            LineEnd::Lf => "\n",
            LineEnd::CrLf => "\r\n",
            LineEnd::Cr => "\r",
        }
    }
}

impl Message {
    fn json(&self) -> Value {
        let mut result = json!({"tools": self.tools.iter().map(|t| t.json()).collect::<Vec<_>>()});
        if self.cache_scope {
            result["cacheScope"] = json!("public");
        }
        let mut message = json!({"jsonrpc": "2.0"});
        if let Some(id) = self.id.json() {
            message["id"] = id;
        }
        let error = json!({"code": -32000, "message": "no"});
        match self.kind {
            Kind::Result => message["result"] = result,
            Kind::Error => message["error"] = error,
            Kind::ErrorAndResult => {
                message["error"] = error;
                message["result"] = result;
            }
            Kind::ResultNotObject => message["result"] = json!(["secret1"]),
            Kind::RequestWithResult => {
                message["method"] = json!("sampling/createMessage");
                message["result"] = result;
            }
            Kind::Notification => {
                message["method"] = json!("notifications/message");
                message["params"] = result;
            }
        }
        message
    }
}

fn serialize(value: &Value, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value).unwrap()
    } else {
        value.to_string()
    };
    text.replace("secret\u{e9}", "secr\\u0065t\\u00e9")
}

impl Answer<'_> {
    fn bytes(&self, sse: bool) -> Vec<u8> {
        let (messages, array, framing, bom) = match self {
            Answer::Raw(bytes) => return bytes.to_vec(),
            Answer::Built {
                messages,
                array,
                framing,
                bom,
            } => (messages, *array, framing, *bom),
        };
        let values: Vec<Value> = messages.iter().map(Message::json).collect();
        if !sse {
            let value = match values.first() {
                Some(first) if !array => first.clone(),
                _ => Value::Array(values),
            };
            return serialize(&value, false).into_bytes();
        }
        let mut out = String::new();
        if bom {
            out.push('\u{feff}');
        }
        for (i, value) in values.iter().enumerate() {
            let f = framing.get(i).copied().unwrap_or(Framing {
                line_end: LineEnd::Lf,
                named: true,
                pretty: false,
                comment: false,
            });
            let end = f.line_end.text();
            if f.comment {
                out.push_str(&format!(": keep-alive{end}{end}"));
            }
            if f.named {
                out.push_str(&format!("event: message{end}"));
            }
            for line in serialize(value, f.pretty).split('\n') {
                out.push_str(&format!("data: {line}{end}"));
            }
            out.push_str(end);
        }
        out.into_bytes()
    }
}

fuzz_target!(|input: Input<'_>| {
    let messages: Vec<McpMessage> = input
        .requests
        .iter()
        .take(4)
        .map(|(id, method)| McpMessage {
            id: id.json(),
            method: Some(McpMethod::parse(match method {
                Method::ToolsList => "tools/list",
                Method::PromptsList => "prompts/list",
                Method::ToolsCall => "tools/call",
                Method::Ping => "ping",
            })),
            target: matches!(method, Method::ToolsCall).then(|| "tool1".to_string()),
        })
        .collect();
    if messages.is_empty() {
        return;
    }
    let request = McpRequest {
        batch: input.batch || messages.len() > 1,
        messages,
    };
    let plugin = rbac();
    let caller = TestRequest::mcp("/mcp")
        .identity(identity("alice", json!({"groups": ["users"]})))
        .mcp_request(request.clone());
    let mut exchange = TestExchange::new(plugin.clone(), caller);
    let mut body = RequestBody::new(Bytes::from_static(b"{}"), Some(json!({})));
    if !block_on(exchange.on_request_body(&mut body))
        .unwrap()
        .is_continue()
    {
        return;
    }
    let content_type = CONTENT_TYPES[usize::from(input.content_type) % CONTENT_TYPES.len()];
    block_on(exchange.on_response(StatusCode::OK, &[("content-type", content_type)])).unwrap();
    let kind = content_type.trim_start().to_ascii_lowercase();
    let sse = kind.starts_with("text/event-stream");
    let json = kind.starts_with("application/json");

    let answer = input.answer.bytes(sse);
    let pieces = input.cuts.split(&answer);
    let mut sent = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let end = input.end_with_data && i + 1 == pieces.len();
        let mut chunk = ResponseChunk::new(Bytes::copy_from_slice(piece), end);
        plugin.on_response_chunk(exchange.cx_mut(), &mut chunk);
        sent.extend_from_slice(chunk.data());
    }
    if !(input.end_with_data && !pieces.is_empty()) {
        let mut chunk = ResponseChunk::new(Bytes::new(), true);
        plugin.on_response_chunk(exchange.cx_mut(), &mut chunk);
        sent.extend_from_slice(chunk.data());
    }

    // What a client reads: the JSON body, or the data of every event.
    let read: Vec<Value> = if json {
        serde_json::from_slice::<Value>(&sent).into_iter().collect()
    } else if sse {
        client_events(&sent)
            .iter()
            .filter_map(|event| serde_json::from_str(&event.data).ok())
            .collect()
    } else {
        return;
    };
    let read: Vec<&Value> = read
        .iter()
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect();
    for awaited in request.messages.iter().filter(|m| {
        m.method == Some(McpMethod::ToolsList) && m.id.as_ref().is_some_and(|id| !id.is_null())
    }) {
        let id = awaited.id.as_ref().unwrap();
        // The answer a client takes: the first response whose id it matches (as a lenient
        // client does: `1`, `1.0` and `"1"` alike).
        let taken = read.iter().find(|message| {
            message.get("method").is_none()
                && (message.get("result").is_some() || message.get("error").is_some())
                && message.get("id").is_some_and(|seen| same_id(id, seen))
        });
        let Some(tools) = taken
            .and_then(|m| m.get("result"))
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                assert!(
                    !hidden(name),
                    "the caller was shown `{name}`: sent {:?}",
                    String::from_utf8_lossy(&sent)
                );
            }
        }
    }
});

/// Whether a lenient client takes `seen` for the id `awaited` (equal, or equal as numbers).
fn same_id(awaited: &Value, seen: &Value) -> bool {
    let number = |id: &Value| match id {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    awaited == seen || matches!((number(awaited), number(seen)), (Some(a), Some(b)) if a == b)
}

//! Criterion micro-benchmarks of the hot path's pieces, each through its public API exactly as
//! the proxy calls it: route match, JWT verification (HS256, RS256, ES256), an RBAC decision,
//! the guard's scan of 1 KB and 100 KB prompts, a local limiter reserve + settle, and SSE usage
//! parsing per event and of one long event arriving in small pieces; `budget` reserve + settle
//! in the process and in Redis; and tool integrity (group
//! `tool_pin`): `mcp-tool-pin` on a 200-tool `tools/list` answer and on a `tools/call`, and
//! `prompt-guard` on a `tools/call` result, driven phase by phase through
//! `tollgate_plugin_api::testing`.
//! `cargo bench -p tollgate --bench micro`; docs/benchmarks.md has figures.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tollgate::config::{load_str, RuntimeConfig};
use tollgate::internals::SseFramer;
use tollgate::internals::{anthropic, mcp};
use tollgate::token::{mint, TokenRequest};
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::testing::{build_plugin, identity, Emitted, TestExchange, TestRequest};
use tollgate_plugin_api::{
    Decision, Identity, McpRequest, Outcome, Plugin, RequestBody, RequestCtx, RouteInfo, RouteKind,
};
use tollgate_plugins::budget::BudgetFactory;
use tollgate_plugins::mcp_tool_pin::definition;
use tollgate_plugins::mcp_tool_pin::scan::{Scanner, ToolNames};
use tollgate_testkit::keys::KeyFiles;
use tollgate_testkit::RedisServer;

const HMAC_SECRET: &str = "micro-benchmark-hmac-secret-0123456789";

fn config(keys: &KeyFiles) -> RuntimeConfig {
    std::env::set_var("MICRO_HMAC_SECRET", HMAC_SECRET);
    // Twenty routes, as a mid-sized deployment might have.
    let mut routes = String::new();
    for i in 0..18 {
        routes.push_str(&format!(
            "[[route]]\nname = \"svc{i}\"\nmatch = {{ path_prefix = \"/svc{i}/api\" }}\nupstream = {{ url = \"http://127.0.0.1:9\" }}\n"
        ));
    }
    let source = format!(
        r#"
[plugin.jwt-hs256]
type = "jwt"
secret = {{ env = "MICRO_HMAC_SECRET" }}

[plugin.jwt-rs256]
type = "jwt"
public_key = {{ file = "{rsa}" }}

[plugin.jwt-es256]
type = "jwt"
public_key = {{ file = "{ec}" }}

[plugin.rbac]
type = "mcp-rbac"
default = "deny"
rules = [
  {{ tools = ["add", "multiply"], claim = "groups", any_of = ["math-users"] }},
  {{ tools = ["admin_*"], claim = "groups", any_of = ["admins"] }},
  {{ tools = ["*"], claim = "sub", any_of = ["root@example.com"] }},
]

[plugin.guard]
type = "prompt-guard"
rules = [
  {{ regex = "(?i)ignore (previous|all) instructions", action = "reject" }},
  {{ builtin = "anthropic_api_key", action = "reject" }},
  {{ builtin = "private_key", action = "reject" }},
  {{ builtin = "email", action = "mask" }},
  {{ builtin = "credit_card", action = "mask" }},
]

[plugin.pin]
type = "mcp-tool-pin"

[plugin.pin-noscan]
type = "mcp-tool-pin"
scan_descriptions = false

[plugin.result-guard]
type = "prompt-guard"
rules = [
  {{ builtin = "email", action = "mask" }},
  {{ builtin = "aws_access_key", action = "mask" }},
]

[plugin.limit]
type = "token-ratelimit"
unit = "tokens"
key = "header:x-user"
max_tokens = 1000000000
refill_tokens = 1000000000
refill_interval = "1s"

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "http://127.0.0.1:9/mcp", kind = "mcp" }}
plugins = ["rbac"]

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://127.0.0.1:9", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["guard", "limit"]

{routes}"#,
        rsa = keys.path("rsa1.pub"),
        ec = keys.path("ec.pub"),
    );
    load_str(
        Path::new("micro.toml"),
        &source,
        &tollgate_plugins::builtins(),
    )
    .unwrap_or_else(|e| panic!("benchmark config: {e}"))
}

fn plugin(config: &RuntimeConfig, name: &str) -> Arc<dyn Plugin> {
    config.plugins[name].1.clone()
}

fn context(kind: RouteKind, headers: HeaderMap) -> RequestCtx {
    let route = RouteInfo {
        name: "bench".into(),
        kind,
        provider: (kind == RouteKind::Llm).then(|| "anthropic".into()),
        path_prefix: "/bench".into(),
    };
    RequestCtx::new(route, Method::POST, Uri::from_static("/bench"), headers)
}

fn route_match(c: &mut Criterion, config: &RuntimeConfig) {
    c.bench_function("route match (20 routes)", |b| {
        b.iter(|| {
            let found = config.routes.find(
                Some("gateway.local"),
                &Method::POST,
                black_box("/svc17/api/v1/items"),
            );
            black_box(found.is_ok())
        })
    });
}

fn jwt_verify(c: &mut Criterion, config: &RuntimeConfig, keys: &KeyFiles) {
    let request = TokenRequest {
        subject: "alice@example.com".into(),
        issuer: None,
        audience: None,
        ttl_secs: 3600,
        claims: vec![("groups".into(), "math-users".into())],
        kid: None,
    };
    let mut group = c.benchmark_group("jwt verify");
    for (alg, name, key) in [
        (
            Algorithm::HS256,
            "jwt-hs256",
            HMAC_SECRET.as_bytes().to_vec(),
        ),
        (Algorithm::RS256, "jwt-rs256", keys.read("rsa1.key")),
        (Algorithm::ES256, "jwt-es256", keys.read("ec.key")),
    ] {
        let token = mint(&request, alg, &key).expect("mint");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let plugin = plugin(config, name);
        let mut table = config.plugins[name].0.clone();
        table.remove("type");
        let registry = tollgate_plugins::builtins();
        let Some(factory) = registry.get("jwt") else {
            panic!("jwt plugin type missing");
        };
        let verify = |plugin: &Arc<dyn Plugin>| {
            let mut cx = context(RouteKind::Llm, headers.clone());
            let verdict = block_on(plugin.on_request(&mut cx)).expect("verdict");
            black_box((verdict, cx.identity.is_some()))
        };
        // First sight of a token: a fresh instance, so the signature is checked.
        group.bench_function(BenchmarkId::new("first use", format!("{alg:?}")), |b| {
            b.iter_batched(
                || factory.build(name, &table).expect("plugin"),
                |fresh| verify(&fresh),
                BatchSize::SmallInput,
            )
        });
        // The same token again (an agent's next request): served from the verified-token cache.
        group.bench_function(BenchmarkId::new("repeat", format!("{alg:?}")), |b| {
            b.iter(|| verify(&plugin))
        });
    }
    group.finish();
}

fn rbac_decision(c: &mut Criterion, config: &RuntimeConfig) {
    let plugin = plugin(config, "rbac");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "multiply", "arguments": {"a": 6, "b": 7}}})
    .to_string();
    let identity = Identity {
        subject: "alice@example.com".into(),
        claims: std::sync::Arc::new(
            json!({"sub": "alice@example.com", "groups": ["math-users"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
    };
    c.bench_function("rbac decision (tools/call, 3 rules)", |b| {
        b.iter(|| {
            let (json, request) = mcp::parse(body.as_bytes()).expect("json-rpc");
            let mut cx = context(RouteKind::Mcp, HeaderMap::new());
            cx.identity = Some(identity.clone());
            facts_mut(&mut cx).mcp = Some(request);
            let mut body = RequestBody::new(Bytes::from(body.clone()), Some(json));
            black_box(block_on(plugin.on_request_body(&mut cx, &mut body)).is_ok())
        })
    });
}

fn prompt(bytes: usize) -> serde_json::Value {
    let sentence = "The quarterly report covers revenue, churn and the hiring plan for next year. ";
    let text = sentence.repeat(bytes / sentence.len() + 1);
    json!({"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": text}]})
}

fn guard_scan(c: &mut Criterion, config: &RuntimeConfig) {
    let plugin = plugin(config, "guard");
    let mut group = c.benchmark_group("guard scan (5 rules)");
    for size in [1024, 100 * 1024] {
        let json = prompt(size);
        let raw = Bytes::from(json.to_string());
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{} KB", size / 1024)),
            |b| {
                b.iter(|| {
                    let mut cx = context(RouteKind::Llm, HeaderMap::new());
                    facts_mut(&mut cx).llm = Some(anthropic::describe_request(&json));
                    let mut body = RequestBody::new(raw.clone(), Some(json.clone()));
                    black_box(block_on(plugin.on_request_body(&mut cx, &mut body)).is_ok())
                })
            },
        );
    }
    group.finish();
}

fn limiter(c: &mut Criterion, config: &RuntimeConfig) {
    let plugin = plugin(config, "limit");
    let json = prompt(256);
    let mut headers = HeaderMap::new();
    headers.insert("x-user", HeaderValue::from_static("bench-user"));
    let outcome = Outcome {
        status: 200,
        decision: Decision::Allowed,
        error: None,
    };
    c.bench_function("token-ratelimit local reserve + settle", |b| {
        b.iter(|| {
            let mut cx = context(RouteKind::Llm, headers.clone());
            facts_mut(&mut cx).llm = Some(anthropic::describe_request(&json));
            let mut body = RequestBody::new(Bytes::new(), Some(json.clone()));
            let admitted = block_on(plugin.on_request(&mut cx)).is_ok()
                && block_on(plugin.on_request_body(&mut cx, &mut body)).is_ok();
            let usage = &mut facts_mut(&mut cx).usage;
            usage.input_tokens = 120;
            usage.output_tokens = 16;
            usage.reported = true;
            block_on(plugin.on_complete(&cx, &outcome));
            black_box(admitted)
        })
    });
}

/// `budget` on an LLM request, reserve (body phase) and settle (completion), with its spending
/// in the process and in Redis (when `redis-server` is on the PATH: one script round trip and
/// one `HINCRBY` per request).
fn budget(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
        .then(|| runtime.block_on(RedisServer::start()));
    let mut stores = vec![("local", String::new())];
    if let Some(redis) = &redis {
        stores.push((
            "redis",
            format!("store = {{ redis = \"{}\" }}", redis.url()),
        ));
    }
    let json = prompt(256);
    let body =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": json["messages"]});
    let llm = anthropic::describe_request(&body);
    let mut group = c.benchmark_group("budget reserve + settle");
    for (store, table) in stores {
        let plugin = build_plugin(
            &BudgetFactory,
            &format!("bench-{store}"),
            &format!("key = \"jwt.team\"\nlimit_usd = 1000000000\nperiod = \"month\"\n{table}"),
        )
        .expect("a budget");
        let outcome = Outcome {
            status: 200,
            decision: Decision::Allowed,
            error: None,
        };
        group.bench_function(store, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = TestRequest::llm("/v1/messages")
                        .identity(identity("u", json!({"team": "eng"})))
                        .llm_request(llm.clone());
                    let mut exchange = TestExchange::new(plugin.clone(), request);
                    let mut request_body = RequestBody::new(Bytes::new(), Some(body.clone()));
                    let verdict = exchange.on_request_body(&mut request_body).await;
                    exchange.set_usage(120, 16);
                    exchange.on_complete(&outcome).await;
                    black_box(verdict.is_ok())
                })
            })
        });
    }
    group.finish();
}

fn sse_usage(c: &mut Criterion) {
    let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there, \"}}\n\n";
    let usage = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n";
    let mut group = c.benchmark_group("sse usage parsing (per event)");
    // "located": as on a route with plugins, where the events' places are handed to them.
    for (name, event, locate) in [
        ("text delta", &delta[..], false),
        ("text delta, located", &delta[..], true),
        ("message_delta usage", &usage[..], false),
    ] {
        group.throughput(Throughput::Bytes(event.len() as u64));
        group.bench_function(name, |b| {
            let mut framer = SseFramer::new();
            let mut cx = context(RouteKind::Llm, HeaderMap::new());
            b.iter(|| {
                black_box(framer.feed(black_box(event), locate, |e| {
                    anthropic::observe_event(e, &mut cx)
                }));
            });
            black_box(cx.usage().output_tokens);
        });
    }
    group.finish();

    // An upstream that writes a long event a few bytes at a time: each byte is read once, not
    // the whole carried event again at every piece.
    let long_event = [
        &b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\""[..],
        &vec![b'x'; 256 << 10],
        b"\"}}\n\n",
    ]
    .concat();
    let mut group = c.benchmark_group("sse usage parsing (long event)");
    group.throughput(Throughput::Bytes(long_event.len() as u64));
    group.bench_function("256 KiB event in 64-byte pieces", |b| {
        let mut framer = SseFramer::new();
        let mut cx = context(RouteKind::Llm, HeaderMap::new());
        b.iter(|| {
            for piece in long_event.chunks(64) {
                black_box(framer.feed(black_box(piece), false, |e| {
                    anthropic::observe_event(e, &mut cx)
                }));
            }
        });
        black_box(cx.usage().output_tokens);
    });
    group.finish();
}

/// A new instance of the configuration's plugin `name` (an empty pin store, say).
fn fresh(config: &RuntimeConfig, name: &str) -> Arc<dyn Plugin> {
    let mut table = config.plugins[name].0.clone();
    let Some(toml::Value::String(kind)) = table.remove("type") else {
        panic!("plugin {name} has no type");
    };
    let registry = tollgate_plugins::builtins();
    let Some(factory) = registry.get(&kind) else {
        panic!("plugin type {kind} missing");
    };
    factory.build(name, &table).expect("plugin")
}

const VERBS: [(&str, &str); 8] = [
    ("list", "Lists"),
    ("get", "Reads one of"),
    ("create", "Creates"),
    ("update", "Updates"),
    ("delete", "Deletes"),
    ("search", "Searches"),
    ("archive", "Archives"),
    ("export", "Exports"),
];

const NOUNS: [&str; 25] = [
    "issues",
    "pull_requests",
    "branches",
    "commits",
    "releases",
    "labels",
    "milestones",
    "comments",
    "reviews",
    "workflows",
    "deployments",
    "webhooks",
    "projects",
    "discussions",
    "gists",
    "teams",
    "members",
    "packages",
    "artifacts",
    "runners",
    "environments",
    "tags",
    "forks",
    "invitations",
    "checks",
];

/// (name, type, description) of the input properties a tool takes, the first 3 to 5.
const PROPERTIES: [(&str, &str, &str); 5] = [
    (
        "owner",
        "string",
        "Account or organisation that owns the repository, as in its URL.",
    ),
    (
        "repo",
        "string",
        "Name of the repository, without the owner; not case-sensitive.",
    ),
    (
        "state",
        "string",
        "Only the entries in this state: open, closed or all (the default).",
    ),
    (
        "per_page",
        "integer",
        "How many entries one page holds, from 1 to 100; 30 when omitted.",
    ),
    (
        "cursor",
        "string",
        "Opaque cursor from the previous page's answer, to read the next one.",
    ),
];

/// 200 tools as a server lists them: a name, a description of about 200 characters, an input
/// schema of 3 to 5 described properties, annotations. With `servers` prefixes, the tools are
/// split between that many servers of a federated route (`gh__list_issues`).
fn tool_catalog(servers: &[&str]) -> Vec<Value> {
    (0..200)
        .map(|i| {
            let ((verb, does), noun) = (VERBS[i % VERBS.len()], NOUNS[i / VERBS.len()]);
            let name = match servers.get(i * servers.len() / 200) {
                Some(server) => format!("{server}__{verb}_{noun}"),
                None => format!("{verb}_{noun}"),
            };
            let what = noun.replace('_', " ");
            let description = format!(
                "{does} the {what} of a repository the caller can read. Answers are paged: pass \
                 the cursor of the previous page to read on, up to 100 entries each. Returns the \
                 {what} with their ids, authors and dates."
            );
            let mut properties = serde_json::Map::new();
            for (property, kind, text) in &PROPERTIES[..3 + i % 3] {
                let mut schema = json!({"type": kind, "description": text});
                match *property {
                    "state" => schema["enum"] = json!(["open", "closed", "all"]),
                    "per_page" => {
                        schema["minimum"] = json!(1);
                        schema["maximum"] = json!(100);
                    }
                    _ => {}
                }
                properties.insert(property.to_string(), schema);
            }
            json!({
                "name": name,
                "description": description,
                "inputSchema": {"type": "object", "properties": properties,
                                "required": ["owner", "repo"]},
                "annotations": {"readOnlyHint": matches!(verb, "list" | "get" | "search")},
            })
        })
        .collect()
}

/// An MCP request as the proxy hands it to the plugins: its parsed JSON-RPC and its body.
struct McpCall {
    request: McpRequest,
    raw: Bytes,
    json: Value,
}

impl McpCall {
    fn new(json: Value) -> Self {
        let raw = Bytes::from(json.to_string());
        let (json, request) = mcp::parse(&raw).expect("json-rpc");
        Self { request, raw, json }
    }

    /// This request on route `tools` through `plugin`, its request phases run.
    fn exchange(&self, plugin: &Arc<dyn Plugin>) -> (TestExchange, bool) {
        let request = TestRequest::mcp("/mcp")
            .route("tools", "/mcp")
            .mcp_request(self.request.clone());
        let mut exchange = TestExchange::new(plugin.clone(), request);
        let mut body = RequestBody::new(self.raw.clone(), Some(self.json.clone()));
        let verdict = block_on(exchange.on_request_body(&mut body)).expect("verdict");
        (exchange, verdict.is_continue())
    }
}

/// An answer as the upstream sends it: its content type and its pieces of at most 16 KiB.
struct Answer {
    content_type: &'static str,
    pieces: Vec<Bytes>,
    len: usize,
}

impl Answer {
    fn new(message: &Value, sse: bool) -> Self {
        let (content_type, text) = if sse {
            (
                "text/event-stream",
                format!("event: message\ndata: {message}\n\n"),
            )
        } else {
            ("application/json", message.to_string())
        };
        let pieces = text
            .as_bytes()
            .chunks(16 << 10)
            .map(Bytes::copy_from_slice)
            .collect();
        Self {
            content_type,
            pieces,
            len: text.len(),
        }
    }

    /// The response phases of `exchange` on this answer: what went to the client.
    fn through(&self, exchange: &mut TestExchange) -> Emitted {
        let head = [("content-type", self.content_type)];
        block_on(exchange.on_response(StatusCode::OK, &head)).expect("head");
        exchange.on_response_chunks(self.pieces.iter().cloned())
    }
}

/// The JSON-RPC message of what an exchange sent on (the data of an SSE event).
fn sent_message(sent: &Emitted) -> Value {
    let text = sent.text();
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or(&text);
    serde_json::from_str(data).expect("a JSON-RPC message")
}

/// `mcp-tool-pin` (tofu, in-memory store) on a 200-tool `tools/list` answer: the first listing,
/// which pins every tool, and the steady state, where all are pinned; each from the request's
/// body phase to the answer's last chunk.
fn tool_pin_list(c: &mut Criterion, config: &RuntimeConfig) {
    let list = McpCall::new(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let single = tool_catalog(&[]);
    let federated = tool_catalog(&["gh", "jira", "slack", "drive", "pg"]);
    let message = |tools: &[Value]| json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}});
    let mut group = c.benchmark_group("tool_pin list (200 tools)");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(10));
    let json_answer = Answer::new(&message(&single), false);
    group.throughput(Throughput::Bytes(json_answer.len as u64));
    // What any filter of the answer pays: reading the JSON.
    let whole: Vec<u8> = json_answer.pieces.concat();
    group.bench_function("reference: serde_json parse of the answer", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&whole)).is_ok()))
    });
    // Parts of the judgement, tool by tool: the hash of the canonical definition, and the scan
    // (one server: no other servers' tool names to look for).
    group.bench_function("part: definition hash of the 200 tools", |b| {
        b.iter(|| {
            for tool in &single {
                black_box(definition::hash(black_box(tool)));
            }
        })
    });
    let scanner = Scanner::new().expect("scanner");
    let no_names = ToolNames::new(&[]);
    group.bench_function("part: scan of the 200 tools, 1 server", |b| {
        b.iter(|| {
            for tool in &single {
                black_box(scanner.scan(black_box(tool), &no_names));
            }
        })
    });
    let cases = [
        ("1 server, JSON", &single, false),
        ("1 server, SSE", &single, true),
        ("5 servers (federated), JSON", &federated, false),
    ];
    for (shape, tools, sse) in cases {
        let answer = Answer::new(&message(tools), sse);
        group.throughput(Throughput::Bytes(answer.len as u64));
        for (scan, name) in [("scan on", "pin"), ("scan off", "pin-noscan")] {
            // Every tool passes: none is hidden or warned about.
            let check = |plugin: &Arc<dyn Plugin>| {
                let (mut exchange, admitted) = list.exchange(plugin);
                let sent = sent_message(&answer.through(&mut exchange));
                let listed = sent["result"]["tools"].as_array().map_or(0, Vec::len);
                assert!(admitted && listed == 200, "{shape}, {scan}: {listed} tools");
                assert!(exchange.cx().warnings.is_empty(), "{shape}, {scan}");
            };
            let steady = fresh(config, name);
            check(&steady);
            check(&steady);
            group.bench_function(
                BenchmarkId::new(format!("first (tofu), {shape}"), scan),
                |b| {
                    b.iter_batched(
                        || fresh(config, name),
                        |plugin| {
                            let (mut exchange, admitted) = list.exchange(&plugin);
                            let sent = answer.through(&mut exchange);
                            // The instance and what was sent are dropped outside the measure.
                            (plugin, admitted, sent)
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
            group.bench_function(BenchmarkId::new(format!("steady, {shape}"), scan), |b| {
                b.iter_with_large_drop(|| {
                    let (mut exchange, admitted) = list.exchange(&steady);
                    (admitted, answer.through(&mut exchange))
                })
            });
        }
    }
    group.finish();
}

/// A `tools/call` result as a tool answers: about 4 KB of text (issues, one a line), with an
/// email address and an AWS access key in it when `secrets`.
fn tool_result(secrets: bool) -> Value {
    let mut text = String::new();
    for i in 0..28 {
        text.push_str(&format!(
            "#{n} Flaky login test on CI (open), opened by octocat, updated 2026-11-{d:02}: the \
             session cookie expires mid-test about one run in twenty.\n",
            n = 4100 + i,
            d = 1 + i % 28,
        ));
        if secrets && i == 9 {
            text.push_str("Reported by jane.doe@example.com with key AKIAIOSFODNN7EXAMPLE.\n");
        }
    }
    json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": text}], "isError": false}})
}

/// `mcp-tool-pin` on a `tools/call`: the request's check (a pinned tool, which goes on; a tool
/// never listed, refused in-band) and its answer passing through.
fn tool_pin_call(c: &mut Criterion, config: &RuntimeConfig) {
    let pin = fresh(config, "pin");
    let list = McpCall::new(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let (mut exchange, _) = list.exchange(&pin);
    let listing = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tool_catalog(&[])}});
    Answer::new(&listing, false).through(&mut exchange);
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool,
               "arguments": {"owner": "acme", "repo": "site", "state": "open"}}})
        .to_string()
    };
    let mut group = c.benchmark_group("tool_pin call");
    for (case, tool, goes_on) in [
        ("request check, pinned tool", "list_issues", true),
        (
            "request check, unknown tool (refused)",
            "drop_tables",
            false,
        ),
    ] {
        let body = Bytes::from(call(tool));
        let (_, admitted) =
            McpCall::new(serde_json::from_slice(&body).expect("json")).exchange(&pin);
        assert_eq!(admitted, goes_on, "{case}");
        // As the rbac decision above: the JSON-RPC parse included.
        group.bench_function(case, |b| {
            b.iter(|| {
                let (json, request) = mcp::parse(black_box(&body)).expect("json-rpc");
                let request = TestRequest::mcp("/mcp")
                    .route("tools", "/mcp")
                    .mcp_request(request);
                let mut exchange = TestExchange::new(pin.clone(), request);
                let mut body = RequestBody::new(body.clone(), Some(json));
                black_box(block_on(exchange.on_request_body(&mut body)).is_ok())
            })
        });
    }
    let call = McpCall::new(serde_json::from_str(&call("list_issues")).expect("json"));
    for (framing, sse) in [("JSON", false), ("SSE", true)] {
        let answer = Answer::new(&tool_result(false), sse);
        group.throughput(Throughput::Bytes(answer.len as u64));
        let name = format!("answer passing through, 4 KB {framing}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || call.exchange(&pin).0,
                |mut exchange| (answer.through(&mut exchange), exchange),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// `prompt-guard` (2 mask rules: email, aws_access_key) on a `tools/call` result of about 4 KB:
/// the answer's phases only (the request's, which set the filter up, are not measured); clean,
/// and with one email address and one key to mask.
fn tool_pin_guard_result(c: &mut Criterion, config: &RuntimeConfig) {
    let guard = plugin(config, "result-guard");
    let call = McpCall::new(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "list_issues", "arguments": {"owner": "acme", "repo": "site"}}}));
    let mut group = c.benchmark_group("tool_pin guard on tools/call result (2 mask rules)");
    for (framing, sse) in [("JSON", false), ("SSE", true)] {
        for (case, secrets) in [("clean", false), ("2 masked", true)] {
            let answer = Answer::new(&tool_result(secrets), sse);
            let (mut exchange, _) = call.exchange(&guard);
            let sent = answer.through(&mut exchange);
            let text = sent_message(&sent)["result"]["content"][0]["text"].to_string();
            let whole = answer.pieces.concat();
            assert_eq!(sent.bytes() != whole, secrets, "{framing} {case}");
            assert_eq!(
                text.contains("<REDACTED:email>"),
                secrets,
                "{framing} {case}"
            );
            assert_eq!(text.contains("<REDACTED:aws_access_key>"), secrets);
            group.throughput(Throughput::Bytes(answer.len as u64));
            group.bench_function(BenchmarkId::new(format!("4 KB {framing}"), case), |b| {
                b.iter_batched(
                    || call.exchange(&guard).0,
                    |mut exchange| (answer.through(&mut exchange), exchange),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn all(c: &mut Criterion) {
    let keys = KeyFiles::generate();
    let config = config(&keys);
    route_match(c, &config);
    jwt_verify(c, &config, &keys);
    rbac_decision(c, &config);
    guard_scan(c, &config);
    limiter(c, &config);
    budget(c);
    sse_usage(c);
    tool_pin_list(c, &config);
    tool_pin_call(c, &config);
    tool_pin_guard_result(c, &config);
}

criterion_group!(benches, all);
criterion_main!(benches);

//! Criterion micro-benchmarks of the hot path's pieces, each through its public API exactly as
//! the proxy calls it: route match, JWT verification (HS256, RS256, ES256), an RBAC decision,
//! the guard's scan of 1 KB and 100 KB prompts, a local limiter reserve + settle, and SSE usage
//! parsing per event and of one long event arriving in small pieces.
//! `cargo bench -p tollgate --bench micro`; docs/benchmarks.md has figures.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use http::{HeaderMap, HeaderValue, Method, Uri};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tollgate::config::{load_str, RuntimeConfig};
use tollgate::internals::SseFramer;
use tollgate::internals::{anthropic, mcp};
use tollgate::token::{mint, TokenRequest};
use tollgate_plugin_api::host::facts_mut;
use tollgate_plugin_api::{
    Decision, Identity, Outcome, Plugin, RequestBody, RequestCtx, RouteInfo, RouteKind,
};
use tollgate_testkit::keys::KeyFiles;

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

fn all(c: &mut Criterion) {
    let keys = KeyFiles::generate();
    let config = config(&keys);
    route_match(c, &config);
    jwt_verify(c, &config, &keys);
    rbac_decision(c, &config);
    guard_scan(c, &config);
    limiter(c, &config);
    sse_usage(c);
}

criterion_group!(benches, all);
criterion_main!(benches);

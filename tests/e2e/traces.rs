//! OpenTelemetry traces through a real collector (`rotel`, OTLP over gRPC and HTTP): the server
//! span continues the client's `traceparent`, the upstream call is its child and its context
//! reaches the upstream, GenAI / MCP attributes carry what the upstream reported; a collector
//! that is down costs no request and the lost spans are counted; and no secret appears in any
//! log, audit record, metric or span of the run.

use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use tollgate_testkit::otlp::{OtlpReceiver, ReceivedSpan, Rotel};
use tollgate_testkit::{client, eventually, free_addr, mcp, sample, RunningGateway};

use crate::common::gateway;
use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;

const JWT_SECRET: &str = "traces-test-jwt-secret-0123456789";
const PROVIDER_KEY: &str = "sk-ant-api03-traces-test-provider-key-must-never-leak";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

fn config(upstream: &str, telemetry: &str, audit_file: &str) -> String {
    format!(
        r#"[telemetry]
{telemetry}
service_name = "tollgate-under-test"
audit_log = "{audit_file}"
audit_bodies = true

[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_TRACES_JWT" }}
token_from = ["authorization", "x-api-key"]

[plugin.key]
type = "secret-injection"
header = "x-api-key"
value = {{ env = "E2E_TRACES_KEY" }}

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{upstream}/mcp", kind = "mcp" }}
plugins = ["auth"]

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{upstream}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["auth", "key"]
"#
    )
}

/// A gateway with `telemetry` and an audit log in `audit.jsonl` of the directory returned.
async fn start(upstream: &TestUpstream, telemetry: &str) -> (RunningGateway, TempDir) {
    let audit = tempfile::tempdir().unwrap();
    let audit_file = audit.path().join("audit.jsonl");
    let gw = gateway(&config(
        &upstream.url(),
        telemetry,
        &audit_file.display().to_string(),
    ))
    .env("E2E_TRACES_JWT", JWT_SECRET)
    .env("E2E_TRACES_KEY", PROVIDER_KEY)
    .start()
    .await;
    (gw, audit)
}

fn traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

async fn mcp_call(gw: &RunningGateway, token: &str) {
    let call = mcp::tool_call(7, "add", json!({"a": 2, "b": 3}));
    let resp = mcp::post(&client(), &gw.url("/mcp"), &call)
        .bearer_auth(token)
        .header("traceparent", traceparent())
        .header("mcp-session-id", "sess-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log());
}

async fn llm_call(gw: &RunningGateway, token: &str) {
    let resp = client()
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .header("traceparent", traceparent())
        .json(&json!({"model": "claude-test-1", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["usage"]["input_tokens"], 12);
}

/// The upstream span under `server` and the `traceparent` the upstream got for it.
fn check_upstream_child(
    upstream: &TestUpstream,
    spans: &[ReceivedSpan],
    server: &ReceivedSpan,
    path: &str,
) {
    let child = spans
        .iter()
        .find(|s| s.parent_span_id == server.span_id && s.kind == CLIENT)
        .unwrap_or_else(|| panic!("no upstream span under {}: {spans:#?}", server.name));
    assert_eq!(child.trace_id, CLIENT_TRACE);
    assert!(child.name.starts_with("upstream "), "{}", child.name);
    assert_eq!(child.attributes["http.response.status_code"], "200");
    let sent = upstream
        .recorder
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.uri.starts_with(path))
        .expect("upstream request");
    let header = sent.headers["traceparent"].to_str().unwrap().to_string();
    assert_eq!(
        header,
        format!("00-{CLIENT_TRACE}-{}-01", child.span_id),
        "the upstream continues the trace under the upstream span"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_collector_over_grpc_with_genai_and_mcp_attributes() {
    let receiver = OtlpReceiver::start().await;
    let rotel = Rotel::start(&receiver).await;
    let upstream = TestUpstream::start().await;
    let (gw, audit) = start(
        &upstream,
        &format!(
            "otlp_endpoint = \"http://{}\"\notlp_protocol = \"grpc\"",
            rotel.grpc
        ),
    )
    .await;
    let token = hs256_token(JWT_SECRET, "alice@example.com", "math-users");
    mcp_call(&gw, &token).await;
    llm_call(&gw, &token).await;
    // A refused request: no token.
    let refused = client()
        .post(gw.url("/anthropic/v1/messages"))
        .header("traceparent", traceparent())
        .json(&json!({"model": "claude-test-1", "max_tokens": 1, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let mcp = receiver
        .wait_for("tools/call add", |s| s.name == "tools/call add")
        .await;
    assert_eq!(mcp.kind, SERVER);
    assert_eq!(mcp.service, "tollgate-under-test");
    assert_eq!(
        mcp.trace_id, CLIENT_TRACE,
        "the client's trace is continued"
    );
    assert_eq!(mcp.parent_span_id, CLIENT_SPAN);
    assert_eq!(mcp.attributes["mcp.method.name"], "tools/call");
    assert_eq!(mcp.attributes["gen_ai.tool.name"], "add");
    assert_eq!(mcp.attributes["mcp.session.id"], "sess-123");
    assert_eq!(mcp.attributes["tollgate.route"], "mcp");
    assert_eq!(mcp.attributes["tollgate.decision"], "allowed");
    assert_eq!(mcp.attributes["http.response.status_code"], "200");

    let llm = receiver
        .wait_for("chat claude-test-1", |s| {
            s.name == "chat claude-test-1"
                && s.attributes.get("tollgate.decision").map(String::as_str) == Some("allowed")
        })
        .await;
    assert_eq!(llm.kind, SERVER);
    assert_eq!(llm.attributes["gen_ai.provider.name"], "anthropic");
    assert_eq!(llm.attributes["gen_ai.request.model"], "claude-test-1");
    assert_eq!(llm.attributes["gen_ai.operation.name"], "chat");
    assert_eq!(
        llm.attributes["gen_ai.usage.input_tokens"], "12",
        "as the upstream reported"
    );
    assert_eq!(llm.attributes["gen_ai.usage.output_tokens"], "3");
    assert_eq!(llm.attributes["enduser.id"], "alice@example.com");

    let rejected = receiver
        .wait_for("the refused request", |s| {
            s.attributes.get("tollgate.decision").map(String::as_str) == Some("rejected")
        })
        .await;
    assert_eq!(rejected.attributes["tollgate.plugin"], "auth");
    assert_eq!(rejected.attributes["tollgate.reason"], "jwt.missing");
    assert_eq!(rejected.attributes["http.response.status_code"], "401");

    // Upstream spans arrive in the same batches as their parents or earlier.
    eventually(
        "two upstream spans received",
        Duration::from_secs(10),
        async || {
            let spans = receiver.spans();
            if spans.iter().filter(|s| s.kind == CLIENT).count() >= 2 {
                Ok(())
            } else {
                Err(format!("{spans:#?}"))
            }
        },
    )
    .await;
    let spans = receiver.spans();
    check_upstream_child(&upstream, &spans, &mcp, "/mcp");
    check_upstream_child(&upstream, &spans, &llm, "/v1/messages");
    assert!(
        !spans.iter().any(|s| s.parent_span_id == rejected.span_id),
        "a refused request has no upstream span"
    );

    // The audit log names the same trace, and with `audit_bodies` the forwarded arguments.
    let scrape = gw.metrics().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let audit_text = std::fs::read_to_string(audit.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mcp_record = records.iter().find(|r| r["route"] == "mcp").unwrap();
    assert_eq!(mcp_record["trace_id"], CLIENT_TRACE);
    assert_eq!(
        mcp_record["body"]["params"]["arguments"],
        json!({"a": 2, "b": 3})
    );
    let llm_record = records
        .iter()
        .find(|r| r["route"] == "anthropic" && r["decision"] == "allowed")
        .unwrap();
    assert_eq!(llm_record["body"]["messages"][0]["content"], "hello");

    // No secret anywhere: gateway log, audit log, metrics, exported spans.
    let raw_spans = String::from_utf8_lossy(&receiver.raw()).into_owned();
    for (what, text) in [
        ("gateway log", gw.log()),
        ("audit log", audit_text),
        ("metrics", scrape),
        ("spans", raw_spans),
    ] {
        assert!(!text.contains(PROVIDER_KEY), "provider key in the {what}");
        assert!(!text.contains(&token), "JWT in the {what}");
        assert!(!text.contains(JWT_SECRET), "JWT secret in the {what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_a_collector_over_http_protobuf() {
    let receiver = OtlpReceiver::start().await;
    let rotel = Rotel::start(&receiver).await;
    let upstream = TestUpstream::start().await;
    // A base URL as in OTEL_EXPORTER_OTLP_ENDPOINT: `/v1/traces` is added.
    let (gw, _audit) = start(
        &upstream,
        &format!(
            "otlp_endpoint = \"http://{}\"\notlp_protocol = \"http/protobuf\"",
            rotel.http
        ),
    )
    .await;
    let token = hs256_token(JWT_SECRET, "bob@example.com", "math-users");
    llm_call(&gw, &token).await;
    let llm = receiver
        .wait_for("chat claude-test-1", |s| s.name == "chat claude-test-1")
        .await;
    assert_eq!(llm.trace_id, CLIENT_TRACE);
    assert_eq!(llm.attributes["gen_ai.usage.input_tokens"], "12");
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_down_costs_no_request_and_dropped_spans_are_counted() {
    let upstream = TestUpstream::start().await;
    let nobody = free_addr();
    let (gw, _audit) = start(
        &upstream,
        &format!("otlp_endpoint = \"http://{nobody}\"\notlp_protocol = \"http/protobuf\""),
    )
    .await;
    let token = hs256_token(JWT_SECRET, "carol@example.com", "math-users");
    for _ in 0..5 {
        llm_call(&gw, &token).await;
    }
    eventually(
        "10 dropped spans counted",
        Duration::from_secs(15),
        async || {
            let scrape = gw.metrics().await;
            let dropped =
                sample(&scrape, "tollgate_trace_spans_total{result=\"dropped\"}").unwrap_or(0.0);
            if dropped >= 10.0 {
                Ok(())
            } else {
                Err(scrape)
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsampled_requests_export_nothing_and_tell_the_upstream() {
    // Straight to the test's OTLP/HTTP receiver: this test is about sampling, not collectors.
    let receiver = OtlpReceiver::start().await;
    let upstream = TestUpstream::start().await;
    let (gw, _audit) = start(
        &upstream,
        &format!(
            "otlp_endpoint = \"http://{}\"\notlp_protocol = \"http/protobuf\"\ntrace_sample_ratio = 0.0",
            receiver.addr
        ),
    )
    .await;
    let token = hs256_token(JWT_SECRET, "dave@example.com", "math-users");
    // A new trace (no traceparent): ratio 0, not recorded. A lone `tracestate` belongs to no
    // trace of ours and must not go upstream.
    let resp = client()
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-api-key", &token)
        .header("tracestate", "rogue=1")
        .json(&json!({"model": "claude-unsampled", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let sent = upstream
        .recorder
        .requests()
        .pop()
        .expect("upstream request");
    let header = sent.headers["traceparent"].to_str().unwrap().to_string();
    assert!(
        header.starts_with("00-") && header.ends_with("-00"),
        "the upstream learns the trace is not sampled: {header}"
    );
    assert!(
        !sent.headers.contains_key("tracestate"),
        "a new trace starts without the client's tracestate"
    );
    // A sampled parent is still followed, so export works in this configuration.
    llm_call(&gw, &token).await;
    let recorded = receiver
        .wait_for("the sampled request", |s| s.name == "chat claude-test-1")
        .await;
    assert_eq!(recorded.trace_id, CLIENT_TRACE);
    check_upstream_child(&upstream, &receiver.spans(), &recorded, "/v1/messages");
    let unsampled_trace = header.split('-').nth(1).unwrap_or_default().to_string();
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| s.trace_id != unsampled_trace && !s.name.contains("claude-unsampled")),
        "no span of the unsampled request is exported"
    );
}

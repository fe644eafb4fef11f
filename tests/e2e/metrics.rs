//! Prometheus metrics after real MCP and LLM traffic: `promtool check metrics` accepts the scrape
//! and the counters hold the expected values.

use std::time::Duration;

use serde_json::json;
use tollgate_testkit::{client, eventually, sample, RunningGateway};

use crate::common::gateway;
use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;

const SECRET: &str = "metrics-test-secret-0123456789abcdef";

/// Scrapes until `name_and_labels` reads `want` (metrics are recorded as each exchange ends).
async fn wait_for(gw: &RunningGateway, name_and_labels: &str, want: f64) -> String {
    let what = format!("{name_and_labels} is {want}");
    eventually(&what, Duration::from_secs(5), async || {
        let scrape = gw.metrics().await;
        if sample(&scrape, name_and_labels) == Some(want) {
            Ok(scrape)
        } else {
            Err(scrape)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_after_mcp_and_llm_traffic_pass_promtool() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[telemetry]
metric_models = ["claude-*"]
metric_tools = ["multiply", "delete_all"]

[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_METRICS_SECRET" }}

[plugin.tool-access]
type = "mcp-rbac"
rules = [{{ tools = ["multiply"], claim = "groups", any_of = ["math-users"] }}]

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["auth", "tool-access"]

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
"#,
        u = up.url()
    );
    let gw = gateway(&config)
        .env("E2E_METRICS_SECRET", SECRET)
        .start()
        .await;
    let client = client();
    let alice = hs256_token(SECRET, "alice", "math-users");
    let call = |tool: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}});

    let message = |model: &str, stream: bool| json!({"model": model, "max_tokens": 8, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    for body in [
        message("claude-test", false),
        message("claude-test", true),
        message("secret-model-x", false),
    ] {
        let resp = client
            .post(gw.url("/anthropic/v1/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    // A series is found again the second time (kept with the route): it must count on.
    for (token, tool) in [
        (Some(&alice), "multiply"),
        (Some(&alice), "multiply"),
        (Some(&alice), "delete_all"),
        (None, "multiply"),
        (Some(&alice), "add"),
        (Some(&alice), "subtract"),
    ] {
        let mut request = client.post(gw.url("/mcp")).json(&call(tool));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().bytes().await.unwrap();
    }
    client.get(gw.url("/nowhere")).send().await.unwrap();

    // The test upstream reports 12 input and 3 output tokens per answer; the model the client
    // asked for is echoed back, and unknown models fold into "other".
    wait_for(
        &gw,
        r#"tollgate_requests_total{kind="none",route="",status="404"}"#,
        1.0,
    )
    .await;
    let scrape = wait_for(
        &gw,
        r#"tollgate_requests_total{kind="mcp",route="mcp",status="401"}"#,
        1.0,
    )
    .await;
    let expect = [
        (
            r#"tollgate_requests_total{kind="llm",route="llm",status="200"}"#,
            3.0,
        ),
        (
            r#"tollgate_requests_total{kind="mcp",route="mcp",status="200"}"#,
            5.0,
        ),
        (
            r#"tollgate_gen_ai_tokens_total{model="claude-test",provider="anthropic",route="llm",type="input"}"#,
            24.0,
        ),
        (
            r#"tollgate_gen_ai_tokens_total{model="claude-test",provider="anthropic",route="llm",type="output"}"#,
            6.0,
        ),
        (
            r#"tollgate_gen_ai_tokens_total{model="other",provider="anthropic",route="llm",type="input"}"#,
            12.0,
        ),
        (
            r#"tollgate_gen_ai_time_to_first_token_seconds_count{model="claude-test",route="llm"}"#,
            1.0,
        ),
        (
            r#"tollgate_mcp_requests_total{method="tools/call",outcome="ok",route="mcp",server="",tool="multiply"}"#,
            2.0,
        ),
        (
            // Tools outside `metric_tools` share `other`, each call counted (refused by
            // `mcp-rbac`: only `multiply` is allowed).
            r#"tollgate_mcp_requests_total{method="tools/call",outcome="rejected",route="mcp",server="",tool="other"}"#,
            2.0,
        ),
        (
            r#"tollgate_mcp_requests_total{method="tools/call",outcome="rejected",route="mcp",server="",tool="delete_all"}"#,
            1.0,
        ),
        (
            r#"tollgate_plugin_rejections_total{plugin="tool-access",reason="rbac.denied",route="mcp"}"#,
            3.0,
        ),
        (
            r#"tollgate_plugin_rejections_total{plugin="auth",reason="jwt.missing",route="mcp"}"#,
            1.0,
        ),
        (
            r#"tollgate_upstream_duration_seconds_count{route="llm"}"#,
            3.0,
        ),
        (r#"tollgate_config_reloads_total{result="ok"}"#, 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&scrape, series), Some(value), "{series}\n{scrape}");
    }
    assert!(
        !scrape.contains("secret-model-x"),
        "unlisted models never become labels"
    );
    assert!(!scrape.contains(&alice), "no token in metrics");

    tollgate_testkit::prometheus::assert_promtool_accepts(&scrape);
}

//! `budget`: spending in USD per team, from the usage the provider reports and a price table,
//! with keys the gateway issued (`api-key`) as the identity. Two replicas share one Redis
//! budget; requests have Claude Code's shape; the test upstream reports 12 input and 3 output
//! tokens per answer (JSON or stream), and the price file makes that $0.042.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tollgate_testkit::{client, eventually, python, RedisServer, RunningGateway};

use crate::admin_api::{admin_call, TOKEN};
use crate::api_key::tollgate_cli;
use crate::common::gateway;
use crate::common::upstream::TestUpstream;

/// 12 input tokens at $1,000/M ($0.012) and 3 output tokens at $10,000/M ($0.03).
const PRICES: &str = "[[model]]\nmatch = \"test-model*\"\ninput = 1000.0\noutput = 10000.0\ncache_read = 100.0\ncache_write = 1250.0\n";

fn config(redis: &str, prices: &str, webhook: &str, upstream: &str) -> String {
    format!(
        r#"
[plugin.keys]
type = "api-key"
store = {{ redis = "{redis}" }}

[plugin.spend]
type = "budget"
key = "jwt.team"
limit_usd = 0.10
period = "month"
prices = {{ file = "{prices}" }}
alerts = [0.5]
alert_webhook = "{webhook}"
store = {{ redis = "{redis}" }}

[plugin.watch]
type = "budget"
key = "jwt.team"
limit_usd = 0.05
period = "day"
prices = {{ file = "{prices}" }}
shadow = true
store = {{ redis = "{redis}" }}

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{upstream}", kind = "llm", strip_prefix = true }}
plugins = ["keys", "spend"]

[[route]]
name = "watched"
match = {{ path_prefix = "/watched" }}
upstream = {{ url = "{upstream}", kind = "llm", strip_prefix = true }}
plugins = ["keys", "watch"]
"#
    )
}

/// A Claude Code-shaped request (system blocks, tools, metadata, beta header) with `key`.
async fn claude_code(
    gw: &RunningGateway,
    path: &str,
    key: &str,
    stream: bool,
) -> (StatusCode, String) {
    let body = json!({
        "model": "test-model-1",
        "max_tokens": 8,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": "user_abc_account__session_1"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files"}]}],
    });
    let resp = client()
        .post(gw.url(&format!("{path}/v1/messages")))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

async fn spent(gw: &RunningGateway, plugin: &str, team: &str) -> f64 {
    let (status, body) = admin_call(
        gw,
        Method::GET,
        &format!("/admin/v1/plugins/{plugin}/spend?key={team}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["keys"][0]["spent_usd"].as_f64().unwrap()
}

/// A webhook receiver that keeps what it is sent.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/alert"), seen)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_spends_its_budget_across_replicas_and_is_refused_past_it() {
    let redis = RedisServer::start().await;
    let up = TestUpstream::start().await;
    let (hook, alerts) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, PRICES).unwrap();
    let config = config(&redis.url(), prices.to_str().unwrap(), &hook, &up.url());
    let replica = || {
        gateway(&config)
            .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
            .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
            .audit_log()
            .start()
    };
    let (a, b) = (replica().await, replica().await);
    let (status, created) = admin_call(
        &a,
        Method::POST,
        "/admin/v1/plugins/keys/keys",
        Some(TOKEN),
        Some(&json!({"subject": "alice", "claims": {"team": "eng"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_string();

    // Three answers, alternating replicas, JSON and streamed: $0.042 each, settled on the
    // usage the answer reported (the reservation was $0.08 of output alone).
    let (status, _) = claude_code(&a, "/anthropic", &key, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(close(spent(&b, "spend", "eng").await, 0.042));
    let (status, streamed) = claude_code(&b, "/anthropic", &key, true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(streamed.contains("message_stop"), "{streamed}");
    assert!(
        close(spent(&a, "spend", "eng").await, 0.084),
        "a stream is settled on its usage"
    );
    // The Python SDK with the key, through the other replica.
    let (code, out, log) = python::run(
        "anthropic_client.py",
        vec![
            "--base-url".into(),
            a.url("/anthropic"),
            "--api-key".into(),
            key.clone(),
            "--model".into(),
            "test-model-1".into(),
            "--only".into(),
            "create".into(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}\n{out}");
    assert!(close(spent(&b, "spend", "eng").await, 0.126));

    // Each replica reports what it last saw of eng's spending.
    let scrape = b.metrics().await;
    assert!(
        scrape.contains("tollgate_budget_spent_usd{budget=\"spend\",key=\"eng\"}")
            && scrape.contains("tollgate_budget_remaining_usd{budget=\"spend\",key=\"eng\"}"),
        "{scrape}"
    );
    tollgate_testkit::prometheus::assert_promtool_accepts(&scrape);

    // Past $0.10: refused on both replicas, JSON and stream alike, before the upstream.
    let before = up.recorder.requests().len();
    for (gw, stream) in [(&a, false), (&b, true)] {
        let (status, body) = claude_code(gw, "/anthropic", &key, stream).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`spend`")
                && message.contains("`eng`")
                && message.contains("resets at"),
            "{message}"
        );
    }
    assert_eq!(
        up.recorder.requests().len(),
        before,
        "refused before the upstream"
    );

    // The 50% alert fired once (at the first request after $0.05 was spent), on one replica.
    eventually(
        "the webhook is called",
        std::time::Duration::from_secs(5),
        async || !alerts.lock().unwrap().is_empty(),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent = alerts.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["key"], "eng");
    assert_eq!(sent[0]["share"], 0.5);
    let records: Vec<Value> = [&a, &b]
        .iter()
        .flat_map(|gw| {
            std::fs::read_to_string(gw.dir().join("audit.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let alerted = records
        .iter()
        .filter(|r| {
            r["warnings"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w == "budget.alert"))
        })
        .count();
    assert_eq!(alerted, 1, "one audit record carries the alert");

    // An override raises eng's limit at once, on both replicas; cleared, the refusal is back.
    let (status, body) = admin_call(
        &b,
        Method::POST,
        "/admin/v1/plugins/spend/overrides",
        Some(TOKEN),
        Some(&json!({"key": "eng", "limit_usd": 1.0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = claude_code(&a, "/anthropic", &key, false).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the override applies on the other replica"
    );

    // The override is in the audit log, as an admin call with what it changed.
    let admin_records = std::fs::read_to_string(b.dir().join("audit.jsonl")).unwrap_or_default();
    assert!(
        admin_records
            .lines()
            .any(|l| l.contains("\"kind\":\"admin\"") && l.contains("limit of `eng` set to $1.00")),
        "{admin_records}"
    );

    // Prices reload: output now free, so the next answer costs only its input ($0.012).
    std::fs::write(&prices, PRICES.replace("output = 10000.0", "output = 0.0")).unwrap();
    let mut last = spent(&a, "spend", "eng").await;
    eventually(
        "the new prices are charged",
        std::time::Duration::from_secs(15),
        async || {
            let (status, _) = claude_code(&a, "/anthropic", &key, false).await;
            assert_eq!(status, StatusCode::OK);
            let now = spent(&a, "spend", "eng").await;
            let step = now - last;
            last = now;
            close(step, 0.012)
        },
    )
    .await;
    let (status, _) = admin_call(
        &a,
        Method::DELETE,
        "/admin/v1/plugins/spend/overrides?key=eng",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = claude_code(&b, "/anthropic", &key, false).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "back to the configured limit"
    );

    // The same through `tollgate spend`.
    let path = a.config_path();
    let path = path.to_str().unwrap();
    let env = [("TOLLGATE_ADMIN_TOKEN", TOKEN)];
    let (ok, out, err) = tollgate_cli(&["spend", "show", "-c", path, "--key", "eng"], &env);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert!(
        shown["keys"][0]["spent_usd"].as_f64().unwrap() > 0.1,
        "{shown}"
    );
    assert_eq!(shown["keys"][0]["remaining_usd"], 0.0, "{shown}");
    let (ok, _, err) = tollgate_cli(
        &[
            "spend",
            "override",
            "-c",
            path,
            "--key",
            "eng",
            "--limit-usd",
            "5",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let (status, _) = claude_code(&b, "/anthropic", &key, false).await;
    assert_eq!(status, StatusCode::OK);
    let (ok, _, err) = tollgate_cli(&["spend", "clear", "-c", path, "--key", "eng"], &env);
    assert!(ok, "{err}");
    let (status, _) = claude_code(&b, "/anthropic", &key, false).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Shadow mode: over its $0.05 ($0.012 a request at the new prices), the watched route
    // still answers and says so.
    for _ in 0..6 {
        let (status, _) = claude_code(&a, "/watched", &key, false).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(spent(&b, "watch", "eng").await > 0.05);
    let scrape = a.metrics().await;
    assert!(
        scrape.contains("reason=\"budget.exceeded_shadow\""),
        "shadow overruns are counted: {scrape}"
    );
}

/// The store down: `failure_mode = "closed"` refuses (503, in the caller's protocol), `"open"`
/// lets the request through and counts it. A model no price table names is charged at the
/// fallback price, never free, and warned about. Bad admin input is a 400 that says why.
#[tokio::test(flavor = "multi_thread")]
async fn outages_unknown_models_and_bad_admin_input() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[plugin.closed]
type = "budget"
key = "header:x-team"
limit_usd = 10
period = "day"
store = {{ redis = "redis://127.0.0.1:9" }}
store_timeout = "100ms"

[plugin.open]
type = "budget"
key = "header:x-team"
limit_usd = 10
period = "day"
store = {{ redis = "redis://127.0.0.1:9" }}
store_timeout = "100ms"
failure_mode = "open"

[plugin.local]
type = "budget"
key = "header:x-team"
limit_usd = 10
period = "week"
fallback_price = {{ input = 15.0, output = 75.0, cache_read = 1.5, cache_write = 18.75 }}

[[route]]
name = "closed"
match = {{ path_prefix = "/closed" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["closed"]

[[route]]
name = "open"
match = {{ path_prefix = "/open" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["open"]

[[route]]
name = "local"
match = {{ path_prefix = "/local" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["local"]
"#,
        u = up.url()
    );
    let gw = gateway(&config)
        .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
        .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
        .start()
        .await;
    let ask = |path: &str, model: &str| {
        client()
            .post(gw.url(&format!("{path}/v1/messages")))
            .header("x-team", "eng")
            .json(&json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let resp = ask("/closed", "claude-sonnet-4-5").await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["type"], "api_error", "{error}");
    let resp = ask("/open", "claude-sonnet-4-5").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        up.recorder.requests().len() == 1,
        "only the open route reached the upstream"
    );

    // 12 input and 3 output tokens at $15/$75 per million: $0.000405.
    let resp = ask("/local", "mystery-model-1").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let spent = spent(&gw, "local", "eng").await;
    assert!(
        close(spent, 0.000405),
        "charged at the fallback price: {spent}"
    );
    let scrape = gw.metrics().await;
    for reason in ["budget.store_unavailable", "budget.unknown_model"] {
        assert!(
            scrape.contains(&format!("reason=\"{reason}\"")),
            "{reason} counted: {scrape}"
        );
    }

    for body in [
        json!({"key": "eng", "limit_usd": -1}),
        json!({"key": "", "limit_usd": 1}),
        json!({"key": "eng", "limit": 1}),
    ] {
        let (status, answer) = admin_call(
            &gw,
            Method::POST,
            "/admin/v1/plugins/local/overrides",
            Some(TOKEN),
            Some(&body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let (status, answer) = admin_call(
        &gw,
        Method::GET,
        "/admin/v1/plugins/closed/spend",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
}

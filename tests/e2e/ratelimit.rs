//! `token-ratelimit`: token budgets settled with the usage the provider reported, 429 in the
//! caller's protocol with `retry-after`, separate buckets per caller, and no upstream call for a
//! refused request.

use serde_json::{json, Value};
use tollgate_testkit::{client, sample, RedisServer, RunningGateway};

use crate::common::gateway;
use crate::common::upstream::TestUpstream;
use crate::common::warnings::assert_warnings;

#[tokio::test(flavor = "multi_thread")]
async fn budgets_are_charged_real_usage_and_refuse_in_each_protocol() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[plugin.llm-budget]
type = "token-ratelimit"
unit = "tokens"
key = "header:x-user"
max_tokens = 40
refill_tokens = 1
refill_interval = "1h"

[plugin.mcp-calls]
type = "token-ratelimit"
unit = "requests"
key = "header:x-user"
max_tokens = 2
refill_tokens = 1
refill_interval = "1h"

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["llm-budget"]

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["mcp-calls"]
"#,
        u = up.url()
    );
    let gw = gateway(&config).start().await;
    let client = client();
    let message =
        json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let send = |user: &'static str| {
        client
            .post(gw.url("/anthropic/v1/messages"))
            .header("x-user", user)
            .json(&message)
            .send()
    };

    // Each answer reports 12 + 3 = 15 tokens; the 40-token budget admits three requests (the
    // third takes the bucket below zero: over-use is charged) and refuses the fourth.
    for i in 0..3 {
        let resp = send("alice").await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert!(resp.headers().contains_key("x-ratelimit-remaining-tokens"));
        assert!(resp.headers().contains_key("x-ratelimit-reset-tokens"));
        resp.bytes().await.unwrap();
    }
    // on_complete settles after the response; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = up.recorder.requests().len();
    let resp = send("alice").await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-tollgate-reason"], "ratelimit.exceeded");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        up.recorder.requests().len(),
        before,
        "a refused request costs no upstream call"
    );
    assert_eq!(
        send("bob").await.unwrap().status(),
        200,
        "bob has his own bucket"
    );

    // Requests unit on an MCP route: the third call is refused with a JSON-RPC error and HTTP 429.
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "add", "arguments": {}}});
    for _ in 0..2 {
        let resp = client
            .post(gw.url("/mcp"))
            .header("x-user", "carol")
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let remaining: u64 = resp.headers()["x-ratelimit-remaining-requests"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 2);
    }
    let resp = client
        .post(gw.url("/mcp"))
        .header("x-user", "carol")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 5);
    assert_eq!(body["error"]["code"], -32003);
    assert_eq!(body["error"]["data"]["reason"], "ratelimit.exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_limit_through_redis_and_fail_as_configured() {
    let up = TestUpstream::start().await;
    let mut redis = RedisServer::start().await;
    let config = |failure_mode: &str| {
        format!(
            r#"
[plugin.shared]
type = "token-ratelimit"
unit = "requests"
key = "header:x-user"
max_tokens = 3
refill_tokens = 1
refill_interval = "1h"
store = {{ redis = "{redis}" }}
failure_mode = "{failure_mode}"
store_timeout = "200ms"

[[route]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = {{ url = "{u}", strip_prefix = true }}
plugins = ["shared"]
"#,
            redis = redis.url(),
            u = up.url()
        )
    };
    let a = gateway(&config("closed")).start().await;
    let b = gateway(&config("closed")).start().await;
    let open = gateway(&config("open")).audit_log().start().await;
    let client = client();
    let call = |gw: &RunningGateway| client.get(gw.url("/api/x")).header("x-user", "erin").send();

    // Three requests in all, whichever replica serves them: one limit, not one per replica.
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b, &a] {
        statuses.push(call(gw).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    redis.stop();
    let resp = call(&a).await.unwrap();
    assert_eq!(
        resp.status(),
        503,
        "failure_mode = closed refuses while Redis is down"
    );
    assert_eq!(resp.headers()["x-tollgate-reason"], "ratelimit.unavailable");
    assert_eq!(
        call(&open).await.unwrap().status(),
        200,
        "failure_mode = open lets traffic through"
    );
    assert!(
        a.log().matches("rate-limit store unreachable").count() <= 1,
        "logged once per interval, not per request"
    );
    // Both failure modes are counted: refusals as rejections, fail-open passes as warnings.
    for _ in 0..2 {
        call(&a).await.unwrap();
        call(&open).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let closed_scrape = a.metrics().await;
    assert_eq!(
        sample(
            &closed_scrape,
            r#"tollgate_plugin_rejections_total{plugin="shared",reason="ratelimit.unavailable",route="api"}"#
        ),
        Some(3.0),
        "{closed_scrape}"
    );
    // Each fail-open pass is in the audit log as well as in the metric.
    let warned: &[&str] = &["ratelimit.store_unavailable"];
    assert_warnings(&open, "api", &[warned; 3]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_charged_from_the_stream_also_when_the_client_leaves() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[plugin.budget]
type = "token-ratelimit"
unit = "tokens"
key = "header:x-user"
max_tokens = 1000
refill_tokens = 1
refill_interval = "1h"

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["budget"]
"#,
        u = up.url()
    );
    let gw = gateway(&config).start().await;
    let client = client();
    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let remaining = |resp: &reqwest::Response| -> i64 {
        resp.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };

    // A: a whole stream; message_start reports 12 input and message_delta 3 output tokens.
    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-user", "fay")
        .json(&body)
        .send()
        .await
        .unwrap();
    let rem_a = remaining(&resp);
    resp.text().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // B: the client leaves after a few 5-character deltas, before message_delta.
    let mut resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-user", "fay")
        .header(
            "x-test-say",
            "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let rem_b = remaining(&resp);
    let mut seen = String::new();
    while seen.matches("content_block_delta").count() < 3 {
        seen.push_str(&String::from_utf8_lossy(
            &resp.chunk().await.unwrap().unwrap(),
        ));
    }
    drop(resp);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-user", "fay")
        .json(&body)
        .send()
        .await
        .unwrap();
    let rem_c = remaining(&resp);
    resp.text().await.unwrap();

    // Each request reserved the same estimate, so the differences are the settled charges.
    assert_eq!(
        rem_a - rem_b,
        15,
        "a whole stream is charged what message_start and message_delta reported"
    );
    let charged_b = rem_b - rem_c;
    assert!(
        (14..=25).contains(&charged_b),
        "the abandoned stream was charged {charged_b}: 12 input + the streamed part"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_load_on_two_replicas_stays_within_one_shared_token_budget() {
    let up = TestUpstream::start().await;
    let redis = RedisServer::start().await;
    let config = format!(
        r#"
[plugin.team]
type = "token-ratelimit"
unit = "tokens"
key = "route"
max_tokens = 600
refill_tokens = 1
refill_interval = "1h"
store = {{ redis = "{redis}" }}

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["team"]
"#,
        redis = redis.url(),
        u = up.url()
    );
    let a = gateway(&config).start().await;
    let b = gateway(&config).start().await;
    let urls = [
        a.url("/anthropic/v1/messages"),
        b.url("/anthropic/v1/messages"),
    ];
    const WORKERS: usize = 8;
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let reservation = (10 + body.to_string().len() / 4) as u64;
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (urls, body) = (urls.clone(), body.clone());
            tokio::spawn(async move {
                let client = client();
                let (mut admitted, mut refused) = (0u64, 0);
                let mut n = i;
                while refused < 3 {
                    let resp = client.post(&urls[n % 2]).json(&body).send().await.unwrap();
                    match resp.status().as_u16() {
                        200 => admitted += 1,
                        429 => refused += 1,
                        other => panic!("unexpected status {other}"),
                    }
                    resp.bytes().await.unwrap();
                    n += 1;
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for worker in workers {
        admitted += worker.await.unwrap();
    }
    // Every answer costs 15 tokens (12 in, 3 out).
    let used = admitted * 15;
    let bound = 600 + WORKERS as u64 * reservation;
    assert!(used <= bound, "{admitted} requests used {used} tokens, more than the budget plus one reservation per worker ({bound})");
    assert!(used >= 600 - 15, "the budget was used up ({used} tokens)");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_and_per_team_limits_stack_on_one_route() {
    let up = TestUpstream::start().await;
    let limit = |name: &str, key: &str, max: u32| {
        format!("[plugin.{name}]\ntype = \"token-ratelimit\"\nunit = \"requests\"\nkey = \"{key}\"\nmax_tokens = {max}\nrefill_tokens = 1\nrefill_interval = \"1h\"\n\n")
    };
    let config = format!(
        "{}{}[[route]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nupstream = {{ url = \"{}\", strip_prefix = true }}\nplugins = [\"per-user\", \"per-team\"]\n",
        limit("per-user", "header:x-user", 3),
        limit("per-team", "header:x-team", 4),
        up.url()
    );
    let gw = gateway(&config).start().await;
    let call = |user: &'static str| {
        client()
            .get(gw.url("/api/x"))
            .header("x-user", user)
            .header("x-team", "blue")
            .send()
    };
    let mut alice = Vec::new();
    for _ in 0..4 {
        alice.push(call("alice").await.unwrap().status().as_u16());
    }
    assert_eq!(alice, [200, 200, 200, 429], "alice's own limit is 3");
    assert_eq!(
        call("bob").await.unwrap().status(),
        200,
        "the team's fourth request"
    );
    let resp = call("bob").await.unwrap();
    assert_eq!(
        resp.status(),
        429,
        "the team's limit of 4 is spent although bob made one request"
    );
    assert!(
        resp.text().await.unwrap().contains("per-team"),
        "the refusal names the limit that was hit"
    );
}

//! Regression tests of what an attacker found (issue "Hardening"): each request here once
//! reached what it must not. Requests are written byte for byte on a TCP socket, because HTTP
//! clients normalise paths themselves.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::gateway;
use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;

const SECRET: &str = "hardening-tests-hmac-secret-0123456789";

/// Sends `head` (request line and headers, without the blank line) and `body` on a new
/// connection; answers the status and the body.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{head}\r\nHost: gw.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");
    status_and_body(&answer)
}

/// The status and the body of a raw HTTP/1.1 answer (0 and empty when there is none).
fn status_and_body(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A public `/sdk` route and a protected `/sdk/mcp` one on the same upstream, with
/// `/public` and `/private` the same way.
fn split_routes(upstream: &str) -> String {
    format!(
        "[plugin.auth]\ntype = \"jwt\"\nsecret = {{ env = \"E2E_HARDENING_SECRET\" }}\n\n\
         [[route]]\nname = \"sdk-public\"\nmatch = {{ path_prefix = \"/sdk\" }}\n\
         upstream = {{ url = \"{upstream}\" }}\n\n\
         [[route]]\nname = \"sdk-mcp\"\nmatch = {{ path_prefix = \"/sdk/mcp\" }}\n\
         upstream = {{ url = \"{upstream}\" }}\nplugins = [\"auth\"]\n\n\
         [[route]]\nname = \"public\"\nmatch = {{ path_prefix = \"/public\" }}\n\
         upstream = {{ url = \"{upstream}\" }}\n\n\
         [[route]]\nname = \"private\"\nmatch = {{ path_prefix = \"/private\" }}\n\
         upstream = {{ url = \"{upstream}\" }}\nplugins = [\"auth\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_match_the_normalised_path_and_upstreams_receive_it() {
    let up = TestUpstream::start().await;
    let gw = gateway(&split_routes(&up.url()))
        .env("E2E_HARDENING_SECRET", SECRET)
        .start()
        .await;
    // Spellings of a protected path: each reaches the protected route, which wants a token.
    for path in [
        "/sdk/%6Dcp",
        "/sdk/%6dcp",
        "/sdk//mcp",
        "/sdk/./mcp",
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "/public/.%2E/private/x",
    ] {
        let (status, body) = raw(gw.addr, &format!("POST {path} HTTP/1.1"), "{}").await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    assert!(
        up.recorder.requests().is_empty(),
        "nothing reached the upstream without a token"
    );
    // With a token, the upstream is sent the path the route matched.
    let token = hs256_token(SECRET, "alice", "staff");
    let mut stream_paths = Vec::new();
    for path in ["/public/../private/x?q=%2F", "/sdk/%6Dcp"] {
        let head = format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}");
        let (status, body) = raw(gw.addr, &head, "").await;
        assert_eq!(status, 200, "{path}: {body}");
        let seen: Value = serde_json::from_str(&body).expect("the upstream's echo");
        stream_paths.push(seen["uri"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(stream_paths, ["/private/x?q=%2F", "/sdk/mcp"]);
    // What upstreams could read as another path is refused.
    for path in [
        "/sdk%2Fmcp",
        "/sdk%2fmcp",
        "/sdk%5Cmcp",
        "/sdk\\mcp",
        "/sdk;x=1/mcp",
        "/sdk/%256Dcp",
        "/sdk/%zz",
        "/sdk/%00",
    ] {
        let (status, body) = raw(gw.addr, &format!("POST {path} HTTP/1.1"), "{}").await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            error["error"]["code"], "request.invalid_path",
            "{path}: {body}"
        );
    }
    assert_eq!(up.recorder.requests().len(), 2);
}

fn llm_route(upstream: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"anthropic\"\nmatch = {{ path_prefix = \"/anthropic\" }}\n\
         upstream = {{ url = \"{upstream}\", kind = \"llm\", strip_prefix = true{extra} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_llm_route_forwards_only_the_endpoints_it_understands() {
    let up = TestUpstream::start().await;
    let gw = gateway(&llm_route(&up.url(), "")).start().await;
    for (method, path) in [
        ("POST", "/anthropic/v1/messages/batches"),
        ("GET", "/anthropic/v1/messages/batches"),
        ("GET", "/anthropic/v1/messages/batches/msgbatch_01/results"),
        ("GET", "/anthropic/v1/files"),
        ("POST", "/anthropic/v1/complete"),
        ("GET", "/anthropic/v1/mess%61ges/batches"),
    ] {
        let (status, body) = raw(gw.addr, &format!("{method} {path} HTTP/1.1"), "").await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        let error: Value = serde_json::from_str(&body).expect("Anthropic error JSON");
        assert_eq!(error["type"], "error", "{body}");
        assert_eq!(error["error"]["type"], "not_found_error", "{body}");
    }
    assert!(
        up.recorder.requests().is_empty(),
        "the gateway's key went nowhere"
    );
    let (status, body) = raw(gw.addr, "GET /anthropic/v1/models HTTP/1.1", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw(
        gw.addr,
        "GET /anthropic/v1/models/claude-sonnet-4-5 HTTP/1.1",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Listed by the operator: forwarded.
    let gw = gateway(&llm_route(
        &up.url(),
        ", allow_paths = [\"/v1/messages/batches\", \"/v1/messages/batches/*\"]",
    ))
    .start()
    .await;
    let (status, body) = raw(
        gw.addr,
        "GET /anthropic/v1/messages/batches/msgbatch_01 HTTP/1.1",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw(gw.addr, "GET /anthropic/v1/files HTTP/1.1", "").await;
    assert_eq!(status, 404);
    let seen: Vec<String> = up
        .recorder
        .requests()
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(
        seen,
        [
            "/v1/models",
            "/v1/models/claude-sonnet-4-5",
            "/v1/messages/batches/msgbatch_01"
        ]
    );
}

#[test]
fn allow_paths_are_checked_where_they_are_written() {
    let (code, output, _) = tollgate_testkit::check(
        &crate::common::tollgate_bin(),
        &llm_route("http://127.0.0.1:9", ", allow_paths = [\"/v1/*/x\"]"),
        &[],
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("check.toml:4:") && output.contains("last segment"),
        "{output}"
    );
    let (code, output, _) = tollgate_testkit::check(
        &crate::common::tollgate_bin(),
        "[[route]]\nname = \"web\"\nmatch = { path_prefix = \"/\" }\n\
         upstream = { url = \"http://127.0.0.1:9\", allow_paths = [\"/x\"] }\n",
        &[],
    );
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("only for kind = \"llm\""), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_are_asked_for_plain_answers_and_compressed_ones_never_pass() {
    let up = TestUpstream::start().await;
    let config = format!(
        "{}\n[[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{}/mcp\", kind = \"mcp\" }}\n",
        llm_route(&up.url(), ""),
        up.url()
    );
    let gw = gateway(&config).start().await;
    let message = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let mcp_head = "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n\
                    Accept: application/json, text/event-stream\r\n\
                    MCP-Protocol-Version: 2025-11-25";
    for (head, body) in [
        (
            "POST /anthropic/v1/messages HTTP/1.1\r\nContent-Type: application/json".to_string(),
            message,
        ),
        (mcp_head.to_string(), list),
    ] {
        let asking = format!("{head}\r\nAccept-Encoding: gzip, br");
        let (status, answer) = raw(gw.addr, &asking, body).await;
        assert_eq!(status, 200, "{answer}");
        let sent = up.recorder.requests().pop().expect("forwarded");
        assert_eq!(
            sent.headers["accept-encoding"], "identity",
            "{head}: the client's encodings are not passed on"
        );
        let compressed = format!("{head}\r\nX-Test-Content-Encoding: gzip");
        let (status, answer) = raw(gw.addr, &compressed, body).await;
        assert_eq!(status, 502, "{head}: {answer}");
        assert!(
            answer.contains("upstream.encoded_answer") || answer.contains("compressed"),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_plugins_would_not_judge_never_pass() {
    let up = TestUpstream::start().await;
    let config = format!(
        "[plugin.tool-access]\ntype = \"mcp-rbac\"\nrules = [{{ tools = [\"add\"], claim = \"sub\", any_of = [\"nobody\"] }}]\n\n\
         {}\n[[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{}/mcp\", kind = \"mcp\" }}\nplugins = [\"tool-access\"]\n",
        llm_route(&up.url(), ""),
        up.url()
    );
    let gw = gateway(&config).start().await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}"#;
    let message = r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}"#;
    for (head, body) in [
        ("PUT /mcp HTTP/1.1\r\nContent-Type: application/json", call),
        (
            "DELETE /mcp HTTP/1.1\r\nContent-Type: application/json",
            call,
        ),
        ("GET /mcp HTTP/1.1\r\nContent-Type: application/json", call),
        (
            "PUT /anthropic/v1/messages HTTP/1.1\r\nContent-Type: application/json",
            message,
        ),
    ] {
        let (status, answer) = raw(gw.addr, head, body).await;
        assert_eq!(status, 400, "{head}: {answer}");
        assert!(
            answer.contains("request.unexpected_body") || answer.contains("only POST"),
            "{answer}"
        );
    }
    // The same call as a POST is judged (and refused by the rule).
    let post = "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25";
    let (status, answer) = raw(gw.addr, post, call).await;
    assert!(answer.contains("rbac.denied"), "{status}: {answer}");
    // 2026-07-28 headers that contradict the body are refused before any policy.
    let lying = format!("{post}\r\nMcp-Method: tools/call\r\nMcp-Name: add");
    let (status, answer) = raw(gw.addr, &lying, call).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("-32020"), "{answer}");
    assert!(
        up.recorder.requests().is_empty(),
        "nothing reached the upstream"
    );
}

/// Runs `tollgate check -c config`; `None` when it has not ended within 10 s (killed then).
fn check_within_deadline(config: &std::path::Path) -> Option<(bool, String)> {
    let mut child = std::process::Command::new(crate::common::tollgate_bin())
        .args(["check", "-c"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tollgate check");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let output = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return Some((output.status.success(), text));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn files_the_configuration_names_are_regular_and_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("secret.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let huge = dir.path().join("huge.secret");
    std::fs::write(&huge, vec![b'x'; 70 * 1024]).expect("write");
    for (secret, expected) in [
        (&fifo, "not a regular file"),
        (&huge, "limit of 65536 bytes"),
    ] {
        let config = dir.path().join("tollgate.toml");
        std::fs::write(
            &config,
            format!(
                "[plugin.auth]\ntype = \"jwt\"\nsecret = {{ file = {:?} }}\n\n\
                 [[route]]\nname = \"web\"\nmatch = {{ path_prefix = \"/\" }}\n\
                 upstream = {{ url = \"http://127.0.0.1:9\" }}\nplugins = [\"auth\"]\n",
                secret.display().to_string()
            ),
        )
        .expect("config");
        let (ok, output) =
            check_within_deadline(&config).expect("check ends instead of waiting on the file");
        assert!(!ok, "{output}");
        assert!(output.contains(expected), "{output}");
    }
    // The configuration itself, as a FIFO: an error, not a wait.
    let config_fifo = dir.path().join("config.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&config_fifo)
        .status()
        .expect("mkfifo")
        .success());
    let (ok, output) = check_within_deadline(&config_fifo).expect("check ends");
    assert!(!ok && output.contains("not a regular file"), "{output}");
}

/// `max_tokens` is the client's: near `u64::MAX`, the reservation (output ceiling plus input
/// size) overflowed, which panicked the request (debug) or wrapped to a tiny reservation.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_max_tokens_reserves_the_bucket_and_breaks_nothing() {
    let up = TestUpstream::start().await;
    let config = format!(
        "[plugin.tokens]\ntype = \"token-ratelimit\"\nunit = \"tokens\"\nkey = \"header:x-user\"\n\
         max_tokens = 1000\nrefill_tokens = 1\nrefill_interval = \"1h\"\n\n\
         [[route]]\nname = \"anthropic\"\nmatch = {{ path_prefix = \"/anthropic\" }}\n\
         upstream = {{ url = \"{}\", kind = \"llm\", strip_prefix = true }}\nplugins = [\"tokens\"]\n",
        up.url()
    );
    let gw = gateway(&config).start().await;
    let head =
        "POST /anthropic/v1/messages HTTP/1.1\r\nContent-Type: application/json\r\nX-User: mallory";
    for max_tokens in ["18446744073709551615", "18446744073709551000"] {
        let body = format!(
            r#"{{"model":"m","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let (status, answer) = raw(gw.addr, head, &body).await;
        assert_eq!(status, 200, "max_tokens {max_tokens}: {answer}");
    }
    assert_eq!(up.recorder.requests().len(), 2);
}

/// Tool labels are bounded (100 names, then `other`): names that `mcp-rbac` refused, which any
/// client can make up, once filled the slots and pushed every real tool into `other`.
#[tokio::test(flavor = "multi_thread")]
async fn refused_tool_names_take_no_metric_label_slot() {
    let up = TestUpstream::start().await;
    let gw = rbac_gateway(&up).await;
    let token = hs256_token(SECRET, "alice", "staff");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
         Authorization: Bearer {token}"
    );
    let call = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        )
    };
    for i in 0..120 {
        let (status, answer) = raw(gw.addr, &head, &call(&format!("junk_{i}"))).await;
        assert!(answer.contains("rbac.denied"), "{status}: {answer}");
    }
    let (status, answer) = raw(gw.addr, &head, &call("add")).await;
    assert_eq!(status, 200, "{answer}");
    let scrape = gw.metrics().await;
    let series = |tool: &str, outcome: &str| {
        scrape
            .lines()
            .find(|l| {
                l.starts_with("tollgate_mcp_requests_total{")
                    && l.contains(&format!("tool=\"{tool}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        series("add", "ok"),
        Some(1.0),
        "the real tool keeps its label"
    );
    assert_eq!(series("other", "rejected"), Some(120.0));
    assert!(!scrape.contains("junk_"), "no refused name became a label");
}

/// `X-Forwarded-Host` named the host of the RFC 9728 URL (and reached upstreams) for any
/// client; now it is believed only from `[server] trusted_proxies` and removed from the rest.
#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let up = TestUpstream::start().await;
    for trusted in [false, true] {
        let config = format!(
            "[plugin.auth]\ntype = \"jwt\"\nsecret = {{ env = \"E2E_HARDENING_SECRET\" }}\n\
             issuer = \"https://login.test\"\n\n\
             [[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
             upstream = {{ url = \"{u}/mcp\", kind = \"mcp\" }}\nplugins = [\"auth\"]\n\n\
             [[route]]\nname = \"open\"\nmatch = {{ path_prefix = \"/open\" }}\n\
             upstream = {{ url = \"{u}\" }}\n",
            u = up.url()
        );
        let mut builder = gateway(&config).env("E2E_HARDENING_SECRET", SECRET);
        if trusted {
            builder = builder.server_line("trusted_proxies = [\"127.0.0.0/8\", \"::1\"]");
        }
        let gw = builder.start().await;
        let client = tollgate_testkit::client();
        let forwarded = |request: reqwest::RequestBuilder| {
            request
                .header("x-forwarded-host", "evil.test")
                .header("x-forwarded-proto", "https")
                .header("forwarded", "host=evil.test;proto=https")
        };
        let want_base = if trusted {
            "https://evil.test".to_string()
        } else {
            format!("http://{}", gw.addr)
        };

        let resp = forwarded(client.post(gw.url("/mcp")))
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{want_base}/.well-known/oauth-protected-resource/mcp\""
            )),
            "trusted {trusted}: {challenge}"
        );
        let doc: Value = forwarded(client.get(gw.url("/.well-known/oauth-protected-resource/mcp")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc["resource"],
            format!("{want_base}/mcp"),
            "trusted {trusted}"
        );

        let before = up.recorder.requests().len();
        let resp = forwarded(client.get(gw.url("/open/page")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let seen = &up.recorder.requests()[before];
        for name in ["x-forwarded-host", "x-forwarded-proto", "forwarded"] {
            assert_eq!(
                seen.headers.contains_key(name),
                trusted,
                "trusted {trusted}: {name} upstream"
            );
        }
        assert!(
            seen.headers.contains_key("x-forwarded-for"),
            "always written"
        );
    }
}

/// One MCP route and one LLM route on the test upstream, no plugins.
fn plain_routes(upstream: &str) -> String {
    format!(
        "[[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{upstream}/mcp\", kind = \"mcp\" }}\n\n\
         [[route]]\nname = \"llm\"\nmatch = {{ path_prefix = \"/anthropic\" }}\n\
         upstream = {{ url = \"{upstream}\", kind = \"llm\", strip_prefix = true }}\n\
         plugins = [\"guard\"]\n\n\
         [plugin.guard]\ntype = \"prompt-guard\"\n\
         rules = [{{ builtin = \"anthropic_api_key\", action = \"reject\" }}]\n"
    )
}

/// A key given twice was checked as serde_json reads it (the last) but forwarded as sent, and
/// an upstream that keeps the first acted on the other value: such bodies are refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_named_twice_is_refused_before_any_plugin_or_upstream() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url())).start().await;
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream"
        )
    };
    let key = "sk-ant-api03-AAAAbbbbCCCCddddEEEEffff0123456789";
    let llm = format!(
        r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"my key {key}","content":"hello"}}]}}"#
    );
    let (status, answer) = raw(gw.addr, &head("/anthropic/v1/messages"), &llm).await;
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("Anthropic error JSON");
    assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
    let mcp = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","name":"delete_all","arguments":{}}}"#;
    let (status, answer) = raw(gw.addr, &head("/mcp"), mcp).await;
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON-RPC error");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("twice"));
    assert!(
        up.recorder.requests().is_empty(),
        "nothing reached the upstream"
    );
    // The same bodies with each key once pass.
    let (status, _) = raw(
        gw.addr,
        &head("/mcp"),
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{}}}"#,
    )
    .await;
    assert_eq!(status, 200);
}

/// Writes `head` (with its blank line) and `body_start` on a new connection, then waits for the
/// answer without sending more; the status, the body and how long the answer took.
async fn stalled_request(
    addr: SocketAddr,
    head: &str,
    body_start: &[u8],
) -> (u16, String, std::time::Duration) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body_start).await.expect("body");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the gateway never answered nor closed");
    let (status, body) = status_and_body(&answer);
    (status, body, started.elapsed())
}

/// A body that trickles in (or stops) is answered 408 at `body_timeout`, not held for as long
/// as each read keeps within its own timeout; a broken chunked body is a 400, not a 500.
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_broken_bodies_get_the_clients_error() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url()))
        .server_line("body_timeout = \"1s\"")
        .start()
        .await;
    let head = "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n";
    let (status, body, took) = stalled_request(gw.addr, head, b"{\"jsonrpc\":").await;
    assert_eq!(status, 408, "{body}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "answered at the deadline: {took:?}"
    );
    let error: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert!(error["error"]["message"].is_string(), "{error}");

    let llm_head = "POST /anthropic/v1/messages HTTP/1.1\r\nHost: gw.test\r\n\
                    Content-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    let (status, body, _) = stalled_request(gw.addr, llm_head, b"{\"model\":").await;
    assert_eq!(status, 408, "{body}");
    let error: Value = serde_json::from_str(&body).expect("an Anthropic error");
    assert_eq!(error["type"], "error", "{error}");

    let chunked = "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
                   Accept: application/json, text/event-stream\r\n\
                   Transfer-Encoding: chunked\r\n\r\n";
    let (status, body, _) =
        stalled_request(gw.addr, chunked, b"zz-not-hex\r\n{}\r\n0\r\n\r\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        up.recorder.requests().is_empty(),
        "nothing reached the upstream"
    );
}

/// A client that sends its head a byte now and then (slowloris) is cut off at `header_timeout`
/// while other clients are served; past `max_connections` (and `max_connections_per_client`) a
/// connection is closed at once.
#[tokio::test(flavor = "multi_thread")]
async fn slow_heads_are_cut_off_and_connections_are_capped() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url()))
        .server_line("header_timeout = \"1s\"")
        .server_line("max_connections = 4")
        .server_line("max_connections_per_client = 3")
        .start()
        .await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let head = "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream";

    // The slow client writes a header line every 300 ms, forever.
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let cut_off = async {
        let mut line = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            line += 1;
            let header = format!("X-Slow-{line}: {}\r\n", "a".repeat(10));
            if slow.write_all(header.as_bytes()).await.is_err() {
                return started.elapsed();
            }
            let mut probe = [0u8; 1];
            // Closed (or answered, then closed): either way the head was not waited for.
            let probe =
                tokio::time::timeout(std::time::Duration::from_millis(1), slow.read(&mut probe));
            if let Ok(_closed_or_answered) = probe.await {
                return started.elapsed();
            }
            assert!(line < 50, "the slow head was never cut off");
        }
    };
    let (took, (status, _)) = tokio::join!(cut_off, raw(gw.addr, head, list));
    assert_eq!(status, 200, "another client is served meanwhile");
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "cut off at the deadline: {took:?}"
    );
    let scrape = gw.metrics().await;
    assert!(
        scrape.contains("tollgate_client_header_timeouts_total 1"),
        "{scrape}"
    );

    // Three idle connections from 127.0.0.1 fill its share; a fourth is closed at once, while
    // 127.0.0.2 is still served (the fourth place in all).
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        closed_unanswered(gw.addr).await,
        "over the per-client cap: closed without an answer"
    );
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = other.connect(gw.addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: gw.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
        list.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Idle connections, too, are cut off at the head deadline: their places come back.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, _) = raw(gw.addr, head, list).await;
    assert_eq!(status, 200, "the places came back");
    let scrape = gw.metrics().await;
    assert!(
        scrape.contains(
            "tollgate_client_connections_refused_total{cause=\"max_connections_per_client\"} 1"
        ),
        "{scrape}"
    );
    drop(idle);
}

/// A head lost to the client (cut off at `header_timeout`, or left in the middle) is counted,
/// not logged as an error: Pingora wrote an ERROR line for each, as many as an attacker opens
/// connections. On a new connection and on a kept-alive one.
#[tokio::test(flavor = "multi_thread")]
async fn heads_lost_to_the_client_are_counted_not_logged_as_errors() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url()))
        .server_line("header_timeout = \"1s\"")
        .start()
        .await;
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /mcp HTTP/1.1\r\nHost: gw.test\r\n")
        .await
        .unwrap();
    let mut left = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    left.write_all(b"GET /mcp HT").await.unwrap();
    drop(left);
    // Answered once, then a second head that never ends.
    let mut kept = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    kept.write_all(b"GET /nowhere HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .unwrap();
    let answer = read_one_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    kept.write_all(b"GET /mcp HTTP/1.1\r\nHost: gw.test\r\n")
        .await
        .unwrap();
    for (name, stream) in [("new", &mut slow), ("kept-alive", &mut kept)] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert!(closed.is_ok(), "the {name} connection was cut off");
    }
    let scrape = gw.metrics().await;
    assert!(
        scrape.contains("tollgate_client_header_timeouts_total 2"),
        "{scrape}"
    );
    let log = gw.log();
    assert!(!log.contains(" ERROR "), "{log}");
    assert!(!log.contains("Fail to proxy"), "{log}");
}

/// Reads one answer with a `Content-Length` body from a kept-alive connection.
async fn read_one_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("an answer head");
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("the answer body");
    answer.extend_from_slice(&body);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether a request on a new connection is closed (or reset) without any answer.
async fn closed_unanswered(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return true;
    };
    let request = "GET /mcp HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return true;
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer).await {
        Ok(_) => answer.is_empty(),
        Err(_) => true,
    }
}

/// The head deadline is for HTTP/1 heads: an h2c connection (frames, no heads) lives on past it.
#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_connection_outlives_the_head_deadline() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url()))
        .server_line("h2c = true")
        .server_line("header_timeout = \"1s\"")
        .start()
        .await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let list = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for _ in 0..2 {
        let resp = h2c
            .post(gw.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&list)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    let scrape = gw.metrics().await;
    assert!(
        scrape.contains("tollgate_client_header_timeouts_total 0"),
        "no h2c connection was cut off: {scrape}"
    );
    assert!(
        scrape.contains("tollgate_client_connections 1"),
        "one connection served both: {scrape}"
    );
}

/// At `RUST_LOG=trace` Pingora printed whole request heads: the provider key that
/// `secret-injection` adds and the client's own key reached the log. Its debug and trace lines
/// are now never written, whatever `RUST_LOG` says; the gateway's own still are.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_at_trace_level() {
    const PROVIDER_KEY: &str = "sk-ant-provider-held-9f8e7d6c5b4a";
    const CLIENT_KEY: &str = "sk-ant-client-laptop-1a2b3c4d5e6f";
    let up = TestUpstream::start().await;
    let config = format!(
        "[plugin.provider-key]\ntype = \"secret-injection\"\nheader = \"x-api-key\"\n\
         value = {{ env = \"E2E_PROVIDER_KEY\" }}\n\n\
         [[route]]\nname = \"llm\"\nmatch = {{ path_prefix = \"/anthropic\" }}\n\
         upstream = {{ url = \"{}\", kind = \"llm\", strip_prefix = true }}\n\
         plugins = [\"provider-key\"]\n\n\
         [[route]]\nname = \"open\"\nmatch = {{ path_prefix = \"/open\" }}\n\
         upstream = {{ url = \"{}\" }}\nplugins = [\"provider-key\"]\n",
        up.url(),
        up.url()
    );
    let gw = gateway(&config)
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .log_filter("trace")
        .start()
        .await;
    let client = tollgate_testkit::client();
    for stream in [false, true] {
        let resp = client
            .post(gw.url("/anthropic/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .json(
                &serde_json::json!({"model": "m", "max_tokens": 8, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let resp = client
        .get(gw.url("/open/page"))
        .header("x-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.recorder.requests();
    assert!(
        seen.iter().all(|r| r.headers["x-api-key"] == PROVIDER_KEY),
        "the upstream got the gateway's key"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = gw.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace was on: {log}"
    );
    assert!(!log.contains(PROVIDER_KEY), "the provider key was logged");
    assert!(!log.contains(CLIENT_KEY), "the client's key was logged");
}

/// Two requests written at once (HTTP/1.1 pipelining): the second was dropped silently with
/// the connection. Both are answered now, in order, on one connection.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let up = TestUpstream::start().await;
    let gw = gateway(&plain_routes(&up.url())).start().await;
    let request = |id: u32, close: bool| {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        format!(
            "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
    };
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let both = format!("{}{}", request(1, false), request(2, true));
    stream.write_all(both.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut answer),
    )
    .await
    .expect("both answered")
    .unwrap();
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &answer[at + 9..at + 12])
        .collect();
    assert_eq!(statuses, ["200", "200"], "{answer}");
    let first = answer.find("\"id\":1").expect("the first answer");
    let second = answer.find("\"id\":2").expect("the second answer");
    assert!(first < second, "in order: {answer}");
    assert_eq!(up.recorder.requests().len(), 2);
}

/// On a plain `mcp` route too, a 2026-07-28 list answer `mcp-rbac` filtered goes out with
/// `cacheScope: "private"`: a public scope would let a shared cache give one caller's list to
/// the others.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_mcp_rbac_filtered_on_a_plain_route_is_private() {
    let up = TestUpstream::start().await;
    let gw = rbac_gateway(&up).await;
    let listed = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {
        "tools": [{"name": "add", "inputSchema": {"type": "object"}},
                  {"name": "delete_all", "inputSchema": {"type": "object"}}],
        "ttlMs": 60000, "cacheScope": "public", "resultType": "complete"}});
    let request = tollgate_testkit::mcp::modern_request(1, "tools/list", None);
    let resp = tollgate_testkit::client()
        .post(gw.url("/mcp"))
        .bearer_auth(hs256_token(SECRET, "alice", "staff"))
        .header("accept", "application/json, text/event-stream")
        .headers(tollgate_testkit::mcp::modern_headers(&request))
        .header("x-test-raw-answer", listed.to_string())
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let names: Vec<&str> = answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["add"], "{answer}");
    assert_eq!(answer["result"]["cacheScope"], "private", "{answer}");
    assert_eq!(answer["result"]["ttlMs"], 60000, "{answer}");
}

/// A gateway with one `mcp` route to `up`, behind `jwt` and an `mcp-rbac` rule that lets only
/// alice call `add`.
async fn rbac_gateway(up: &TestUpstream) -> tollgate_testkit::RunningGateway {
    let config = format!(
        "[plugin.auth]\ntype = \"jwt\"\nsecret = {{ env = \"E2E_HARDENING_SECRET\" }}\n\n\
         [plugin.tool-access]\ntype = \"mcp-rbac\"\n\
         rules = [{{ tools = [\"add\"], claim = \"sub\", any_of = [\"alice\"] }}]\n\n\
         [[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{}/mcp\", kind = \"mcp\" }}\nplugins = [\"auth\", \"tool-access\"]\n",
        up.url()
    );
    gateway(&config)
        .env("E2E_HARDENING_SECRET", SECRET)
        .start()
        .await
}

//! Stdio MCP servers end to end: the gateway runs `tests/python/mcp_stdio_server.py` (the Python
//! SDK over stdio, both eras) as `[mcp_server.<name>] command = [...]` and federates it. The
//! server's tools report what the process sees (`pid`, `env`, `cwd`), or end it (`exit`), or
//! freeze it (`hang`); the tests check processes by their pids in `/proc`, where a zombie would
//! still show.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_testkit::python::{python, script_path};
use tollgate_testkit::{client, eventually, mcp, RunningGateway};

use crate::common::gateway;
use crate::common::mcp_script::{
    assert_server_failed, call, only_message, run_script_at, send, Mode, SERVER_FAILED,
};

/// An `[mcp_server.<name>]` running the stdio test server with `args`, and `extra` lines.
fn stdio_table(name: &str, args: &[&str], extra: &str) -> String {
    let mut command = vec![
        python().display().to_string(),
        script_path("mcp_stdio_server.py").display().to_string(),
        "--name".to_string(),
        name.to_string(),
    ];
    command.extend(args.iter().map(|a| a.to_string()));
    format!("[mcp_server.{name}]\ncommand = {command:?}\n{extra}\n")
}

/// A federated route at `path` over `servers`.
fn route(path: &str, servers: &[&str]) -> String {
    let name = path.trim_start_matches('/');
    format!(
        "[[route]]\nname = \"{name}\"\nmatch = {{ path_prefix = \"{path}\" }}\n\
         upstream = {{ kind = \"mcp\", servers = {servers:?} }}\n\n"
    )
}

/// Whether process `pid` exists (a zombie counts: it has not been reaped).
fn exists(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits until process `pid` is gone, reaped.
async fn gone(what: &str, pid: u64, within: Duration) {
    eventually(what, within, async || !exists(pid)).await;
}

/// The text of a `tools/call` answer, or its JSON-RPC error.
fn text(message: &Value) -> Result<String, Value> {
    match message
        .pointer("/result/content/0/text")
        .and_then(Value::as_str)
    {
        Some(text) => Ok(text.to_string()),
        None => Err(message.get("error").cloned().unwrap_or(message.clone())),
    }
}

/// Calls `tool` statelessly (2026-07-28) on the gateway's `path`.
async fn modern_call(gw: &RunningGateway, path: &str, tool: &str, args: Value) -> Value {
    let call = mcp::modern_request(
        1,
        "tools/call",
        Some(json!({"name": tool, "arguments": args})),
    );
    only_message(&send(mcp::modern_post(&client(), &gw.url(path), &call)).await)
}

/// Calls `tool` in a 2025-era `session` on the gateway's `path`.
async fn session_call(
    gw: &RunningGateway,
    session: &mcp::Session,
    path: &str,
    tool: &str,
    args: Value,
) -> Value {
    let call = mcp::tool_call(2, tool, args);
    only_message(&send(session.post(&client(), &gw.url(path), &call)).await)
}

/// The pid a `pid` tool answered.
fn pid_of(message: &Value) -> u64 {
    text(message)
        .unwrap_or_else(|e| panic!("pid failed: {e}"))
        .parse()
        .expect("a pid")
}

/// Ends a 2025-era session (DELETE).
async fn delete(gw: &RunningGateway, session: &mcp::Session, path: &str) {
    let status = client()
        .delete(gw.url(path))
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", &session.version)
        .send()
        .await
        .expect("DELETE")
        .status();
    assert!(status.is_success(), "DELETE: {status}");
}

/// The value of a metric series, 0 when absent.
async fn metric(gw: &RunningGateway, series: &str) -> f64 {
    tollgate_testkit::prometheus::sample(&gw.metrics().await, series).unwrap_or(0.0)
}

fn exits(server: &str, cause: &str) -> String {
    format!(r#"tollgate_mcp_process_exits_total{{cause="{cause}",server="{server}"}}"#)
}

#[tokio::test]
async fn a_process_gets_only_its_configured_environment_in_both_eras() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().canonicalize().expect("cwd");
    let extra = format!(
        "env = {{ GREETING = \"hello\", TOKEN = {{ env = \"E2E_STDIO_TOKEN\" }} }}\ncwd = {:?}",
        cwd.display().to_string()
    );
    let config = format!(
        "{}{}",
        stdio_table("box", &[], &extra),
        route("/mcp", &["box"])
    );
    let gw = gateway(&config)
        .env("E2E_STDIO_TOKEN", "tok-3f9a1c")
        .env("E2E_STDIO_GATEWAY_ONLY", "provider-key-material")
        .start()
        .await;
    let env = |name: &str| call("box__env", json!({"name": name}));
    let steps = json!([
        env("GREETING"),
        env("TOKEN"),
        env("E2E_STDIO_GATEWAY_ONLY"),
        env("PATH"),
        env("HOME"),
        call("box__cwd", json!({})),
    ]);
    for mode in Mode::BOTH {
        let run = run_script_at(&gw, "/mcp", mode, &steps, &[]).await;
        assert_eq!(run.text(0), "hello");
        assert_eq!(
            run.text(1),
            "tok-3f9a1c",
            "a secret source reaches the process"
        );
        assert_eq!(
            run.text(2),
            "<unset>",
            "{mode:?}: the gateway's own environment stays out"
        );
        assert_ne!(run.text(3), "<unset>", "PATH is passed");
        assert_eq!(run.text(4), std::env::var("HOME").unwrap_or_default());
        assert_eq!(run.text(5), cwd.display().to_string());
    }
    assert!(
        !gw.log().contains("tok-3f9a1c"),
        "the secret value never reaches the log"
    );
}

#[tokio::test]
async fn each_2025_session_has_its_own_process_and_a_shared_server_has_one_for_all() {
    let config = [
        stdio_table("own", &[], ""),
        stdio_table("one", &[], "sharing = \"shared\""),
        route("/own", &["own"]),
        route("/one", &["one"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    let pids = json!([call("own__pid", json!({})), call("own__pid", json!({}))]);
    let first = run_script_at(&gw, "/own", Mode::Legacy, &pids, &[]).await;
    let second = run_script_at(&gw, "/own", Mode::Legacy, &pids, &[]).await;
    let stateless = run_script_at(&gw, "/own", Mode::Auto, &pids, &[]).await;
    let pid = |run: &crate::common::mcp_script::Run, i| run.text(i).parse::<u64>().unwrap();
    assert_eq!(pid(&first, 0), pid(&first, 1), "one session, one process");
    assert_eq!(pid(&second, 0), pid(&second, 1));
    assert_ne!(
        pid(&first, 0),
        pid(&second, 0),
        "two sessions, two processes"
    );
    for session in [&first, &second] {
        assert_ne!(
            pid(&stateless, 0),
            pid(session, 0),
            "stateless calls use the pool"
        );
    }

    let pids = json!([call("one__pid", json!({}))]);
    let shared: Vec<u64> = futures::future::join_all(
        [Mode::Legacy, Mode::Legacy, Mode::Auto]
            .map(|mode| run_script_at(&gw, "/one", mode, &pids, &[])),
    )
    .await
    .iter()
    .map(|run| pid(run, 0))
    .collect();
    assert!(
        shared.iter().all(|p| *p == shared[0]),
        "one process for everyone: {shared:?}"
    );

    // A session's own process can ask its client (sampling), in either era.
    let ask = json!([call("own__ask", json!({"question": "6 x 7?"}))]);
    for mode in Mode::BOTH {
        let run = run_script_at(&gw, "/own", mode, &ask, &["--sampling-reply", "42"]).await;
        assert_eq!(run.text(0), "42", "{mode:?}");
        assert_eq!(run.count("sampling_requests"), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn delete_and_the_idle_timeout_end_processes_and_leave_no_zombie() {
    let config = [
        stdio_table("own", &[], "idle_timeout = \"1s\""),
        route("/mcp", &["own"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    let url = gw.url("/mcp");

    let deleted = mcp::Session::open(&client(), &url).await.expect("session");
    let pid = pid_of(&session_call(&gw, &deleted, "/mcp", "own__pid", json!({})).await);
    assert!(exists(pid));
    delete(&gw, &deleted, "/mcp").await;
    gone(
        "the DELETEd session's process to end",
        pid,
        Duration::from_secs(5),
    )
    .await;

    let idle = mcp::Session::open(&client(), &url).await.expect("session");
    let first = pid_of(&session_call(&gw, &idle, "/mcp", "own__pid", json!({})).await);
    gone("the idle process to end", first, Duration::from_secs(8)).await;
    // The session goes on, on a new process.
    let second = pid_of(&session_call(&gw, &idle, "/mcp", "own__pid", json!({})).await);
    assert_ne!(first, second);

    assert!(metric(&gw, &exits("own", "session_ended")).await >= 1.0);
    assert!(metric(&gw, &exits("own", "idle")).await >= 1.0);
    let live = metric(&gw, r#"tollgate_mcp_processes{server="own"}"#).await;
    assert!((1.0..=2.0).contains(&live), "live processes: {live}");
}

#[tokio::test]
async fn past_max_processes_a_call_fails_at_once() {
    let config = [
        stdio_table("own", &[], "max_processes = 1"),
        route("/mcp", &["own"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    let url = gw.url("/mcp");
    let holder = mcp::Session::open(&client(), &url).await.expect("session");
    pid_of(&session_call(&gw, &holder, "/mcp", "own__pid", json!({})).await);

    let started = Instant::now();
    let steps = json!([call("own__pid", json!({}))]);
    let refused = run_script_at(&gw, "/mcp", Mode::Legacy, &steps, &[]).await;
    assert_server_failed(refused.error(0), "own", "upstream.at_capacity");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused at once, not after a wait: {:?}",
        started.elapsed()
    );

    delete(&gw, &holder, "/mcp").await;
    let served = eventually(
        "a process slot to free up",
        Duration::from_secs(10),
        async || {
            let run = run_script_at(&gw, "/mcp", Mode::Legacy, &steps, &[]).await;
            run.out["steps"][0]["result"].as_str().map(str::to_string)
        },
    )
    .await;
    assert!(served.parse::<u64>().is_ok(), "{served}");
}

#[tokio::test]
async fn a_process_that_exits_fails_its_call_and_the_next_call_gets_a_new_one() {
    let config = [stdio_table("own", &[], ""), route("/mcp", &["own"])].concat();
    let gw = gateway(&config).start().await;
    let steps = json!([
        call("own__pid", json!({})),
        call("own__exit", json!({"code": 3})),
        call("own__pid", json!({})),
    ]);
    for mode in Mode::BOTH {
        let run = run_script_at(&gw, "/mcp", mode, &steps, &[]).await;
        let before: u64 = run.text(0).parse().unwrap();
        assert_server_failed(run.error(1), "own", "upstream.unavailable");
        let after: u64 = run.text(2).parse().unwrap();
        assert_ne!(before, after, "{mode:?}: a fresh process");
        gone(
            "the exited process to be reaped",
            before,
            Duration::from_secs(5),
        )
        .await;
    }
    assert!(metric(&gw, &exits("own", "crashed")).await >= 2.0);
}

#[tokio::test]
async fn a_server_that_keeps_dying_is_restarted_with_backoff_and_no_call_hangs() {
    let config = [
        stdio_table("dying", &["--exit-after-start"], ""),
        route("/mcp", &["dying"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    for _ in 0..4 {
        let started = Instant::now();
        let answer = modern_call(&gw, "/mcp", "dying__echo", json!({"text": "x"})).await;
        let error = text(&answer).expect_err("no process to answer");
        assert_eq!(error["code"], SERVER_FAILED, "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    let starts = metric(&gw, r#"tollgate_mcp_process_starts_total{server="dying"}"#).await;
    assert!(
        (1.0..4.0).contains(&starts),
        "backoff spares restarts: {starts} starts for 4 calls"
    );
    assert!(gw.log().contains("keeps exiting"), "{}", gw.log());
}

#[tokio::test]
async fn a_process_that_stops_answering_is_ended_and_replaced() {
    let config = [
        stdio_table("own", &[], "timeout = \"2s\""),
        route("/mcp", &["own"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    // A process may take longer than the 2 s timeout to start on a busy machine.
    let pid = async || text(&modern_call(&gw, "/mcp", "own__pid", json!({})).await);
    let started = Duration::from_secs(30);
    let frozen: u64 = eventually("a process to answer", started, async || pid().await)
        .await
        .parse()
        .unwrap();
    let answer = modern_call(&gw, "/mcp", "own__hang", json!({"seconds": 60})).await;
    assert_server_failed(
        &text(&answer).expect_err("a frozen process does not answer"),
        "own",
        "upstream.timeout",
    );
    gone(
        "the frozen process to be ended",
        frozen,
        Duration::from_secs(10),
    )
    .await;
    let fresh: u64 = eventually("a fresh process", started, async || pid().await)
        .await
        .parse()
        .unwrap();
    assert_ne!(frozen, fresh);
    assert_eq!(metric(&gw, &exits("own", "unresponsive")).await, 1.0);
}

#[tokio::test]
async fn stderr_and_stray_stdout_are_logged_within_a_budget_and_not_fatal() {
    let config = [
        stdio_table("noisy", &["--garbage", "--stderr-lines", "300"], ""),
        route("/mcp", &["noisy"]),
    ]
    .concat();
    let gw = gateway(&config).start().await;
    let answer = modern_call(&gw, "/mcp", "noisy__echo", json!({"text": "hi"})).await;
    assert_eq!(text(&answer).unwrap(), "noisy:hi");
    let log = gw.log();
    assert!(log.contains("noise 1"), "{log}");
    assert!(log.contains("not JSON-RPC"), "{log}");
    assert!(
        !log.contains("noise 300"),
        "stderr is logged within a budget"
    );
}

#[tokio::test]
async fn progress_reaches_the_client_event_by_event() {
    let config = [stdio_table("own", &[], ""), route("/mcp", &["own"])].concat();
    let gw = gateway(&config).start().await;
    let mut call = mcp::modern_request(
        1,
        "tools/call",
        Some(json!({"name": "own__progress", "arguments": {"steps": 3}})),
    );
    call["params"]["_meta"]["progressToken"] = json!("p");
    let mut response = mcp::modern_post(&client(), &gw.url("/mcp"), &call)
        .send()
        .await
        .expect("send");
    let mut arrivals = Vec::new();
    let mut seen = String::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        let text = String::from_utf8_lossy(&chunk);
        for _ in 0..text.matches("notifications/progress").count() {
            arrivals.push(Instant::now());
        }
        seen.push_str(&text);
    }
    assert_eq!(arrivals.len(), 3, "{seen}");
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(120),
            "events arrive as the server sends them, 0.2 s apart: {:?}",
            pair[1] - pair[0]
        );
    }
    assert!(seen.contains("\"done\""), "{seen}");
}

#[tokio::test]
async fn a_reload_ends_the_processes_of_a_changed_server_and_keeps_the_others() {
    let tables = |greeting: &str| {
        [
            stdio_table("kept", &[], ""),
            stdio_table(
                "changed",
                &[],
                &format!("env = {{ GREETING = \"{greeting}\" }}"),
            ),
            route("/mcp", &["kept", "changed"]),
        ]
        .concat()
    };
    let gw = gateway(&tables("one")).start().await;
    let kept = pid_of(&modern_call(&gw, "/mcp", "kept__pid", json!({})).await);
    let changed = pid_of(&modern_call(&gw, "/mcp", "changed__pid", json!({})).await);
    gw.rewrite_config(&tables("two"));
    gw.signal("HUP");
    gone(
        "the changed server's process to end",
        changed,
        Duration::from_secs(10),
    )
    .await;
    let greeting = modern_call(&gw, "/mcp", "changed__env", json!({"name": "GREETING"})).await;
    assert_eq!(text(&greeting).unwrap(), "two");
    assert_eq!(
        pid_of(&modern_call(&gw, "/mcp", "kept__pid", json!({})).await),
        kept,
        "an unchanged server keeps its process"
    );
    assert!(metric(&gw, &exits("changed", "retired")).await >= 1.0);

    gw.signal("TERM");
    gone(
        "the kept process to end with the gateway",
        kept,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn the_gateway_checks_what_a_2026_http_server_would_for_a_stdio_server() {
    let config = [stdio_table("own", &[], ""), route("/mcp", &["own"])].concat();
    let gw = gateway(&config).start().await;
    // The SDK client mirrors `region` into Mcp-Param-Region from the listed schema.
    let steps = json!([call("own__region", json!({"region": "eu-west"}))]);
    for mode in Mode::BOTH {
        let run = run_script_at(&gw, "/mcp", mode, &steps, &[]).await;
        assert_eq!(run.text(0), "region=eu-west", "{mode:?}");
    }

    let url = gw.url("/mcp");
    let region_call = |header: Option<&str>| {
        let call = mcp::modern_request(
            7,
            "tools/call",
            Some(json!({"name": "own__region", "arguments": {"region": "eu-west"}})),
        );
        let request = mcp::modern_post(&client(), &url, &call);
        match header {
            Some(value) => request.header("mcp-param-region", value),
            None => request,
        }
    };
    for (header, why) in [
        (Some("us-east"), "another value"),
        (None, "no header"),
        (Some("=?base64?ZXUtd2VzdA?="), "non-canonical base64"),
    ] {
        let answer = send(region_call(header)).await;
        assert_eq!(answer.status, 400, "{why}: {answer:?}");
        let error = &only_message(&answer)["error"];
        assert_eq!(error["code"], -32020, "{why}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Mcp-Param-Region"),
            "{why}: {error}"
        );
    }
    let encoded = send(region_call(Some("=?base64?ZXUtd2VzdA==?="))).await;
    assert_eq!(encoded.status, 200, "{encoded:?}");
    assert_eq!(text(&only_message(&encoded)).unwrap(), "region=eu-west");

    // An error the server answers a 2026 client has the status a 2026 HTTP server gives it;
    // a 2025 session's stays 200.
    // `ask` needs the sampling capability, which these requests do not declare: -32021.
    let ask = json!({"name": "own__ask", "arguments": {"question": "?"}});
    let modern = mcp::modern_request(8, "tools/call", Some(ask.clone()));
    let answer = send(mcp::modern_post(&client(), &url, &modern)).await;
    assert_eq!(only_message(&answer)["error"]["code"], -32021, "{answer:?}");
    assert_eq!(answer.status, 400, "{answer:?}");
    let session = mcp::Session::open(&client(), &url).await.expect("session");
    let legacy = mcp::request(9, "tools/call", Some(ask));
    let answer = send(session.post(&client(), &url, &legacy)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(only_message(&answer).get("error").is_some(), "{answer:?}");
}

/// Opens a 2025-era session on `url` for a client that can sample.
async fn sampling_session(url: &str) -> mcp::Session {
    let initialize = mcp::request(
        1,
        "initialize",
        Some(json!({"protocolVersion": mcp::HANDSHAKE_VERSION,
                    "capabilities": {"sampling": {}},
                    "clientInfo": {"name": "e2e", "version": "1"}})),
    );
    let answer = send(mcp::post(&client(), url, &initialize)).await;
    let session = mcp::Session {
        id: answer.headers["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string(),
        version: mcp::HANDSHAKE_VERSION.to_string(),
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    send(session.post(&client(), url, &initialized)).await;
    session
}

/// The sampling reply of a client whose model answers `text`.
fn sampling_reply(id: &Value, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "role": "assistant", "model": "e2e", "content": {"type": "text", "text": text}}})
}

#[tokio::test]
async fn a_client_cannot_answer_the_requests_of_another_sessions_process() {
    let config = [stdio_table("own", &[], ""), route("/mcp", &["own"])].concat();
    let gw = gateway(&config).start().await;
    let url = gw.url("/mcp");
    let victim = sampling_session(&url).await;
    let attacker = sampling_session(&url).await;

    let ask = mcp::tool_call(5, "own__ask", json!({"question": "transfer?"}));
    let response = victim
        .post(&client(), &url, &ask)
        .send()
        .await
        .expect("call");
    let mut events = tollgate_testkit::sse::SseReader::new(response);
    let request = loop {
        let event = events
            .next_event()
            .await
            .expect("read")
            .expect("a sampling request");
        let data: String = event
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .collect();
        if let Ok(message) = serde_json::from_str::<Value>(&data) {
            if message["method"] == "sampling/createMessage" {
                break message;
            }
        }
    };
    // The attacker saw the id (or guessed it): its answer, in its own session, is dropped.
    let forged = sampling_reply(&request["id"], "yes, all of it");
    let status = send(attacker.post(&client(), &url, &forged)).await.status;
    assert_eq!(status, 202);
    // The victim's own answer is the one the tool gets; a second answer is dropped too.
    let own = sampling_reply(&request["id"], "no");
    send(victim.post(&client(), &url, &own)).await;
    send(victim.post(&client(), &url, &forged)).await;
    let result = loop {
        let event = events
            .next_event()
            .await
            .expect("read")
            .expect("the result");
        if event.text.contains("\"result\"") && event.text.contains("\"id\":5") {
            break event.text;
        }
    };
    assert!(result.contains("\"no\""), "{result}");
    assert!(!result.contains("all of it"), "{result}");
}

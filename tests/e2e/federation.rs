//! MCP federation end to end: one gateway route over several `[mcp_server.<name>]` tables, each
//! a real Python SDK server (`tests/python/mcp_fed_server.py`, `--era both|legacy|modern`), and
//! the Python SDK client (`tests/python/mcp_client.py`) in both of its modes: `legacy` (the
//! 2025-11-25 handshake, so a sealed `Mcp-Session-Id`) and `auto` (stateless 2026-07-28). What
//! needs no SDK (replicas, routing headers, timings) is raw HTTP.
//!
//! Every test server is named after its table, and its tools say who answered: `echo` answers
//! `<server>:<text>`, `whoami` the server, the session and the protocol version it was served at.
//! A test marked `#[ignore = "gateway bug: ..."]` is written as the feature should behave.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_testkit::python::PythonServer;
use tollgate_testkit::{check, client, free_addr, mcp, GatewayBuilder, RunningGateway};

use crate::common::mcp_script::{
    assert_server_failed, call, only_message, op, run_script, send, Mode, LEGACY_VERSION,
};
use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;
use crate::common::{gateway, tollgate_bin};

/// The tools of every test server, in the order it lists them.
const TOOLS: [&str; 8] = [
    "echo", "add", "slow", "progress", "whoami", "ask", "elicit", "add_tool",
];
/// `[server] session_key` comes from this variable.
const SESSION_KEY_ENV: &str = "E2E_FED_SESSION_KEY";
const SESSION_KEY: &str = "federation-e2e-session-key-0123456789";

/// `mcp_fed_server.py --name <name> --era <era> <extra>`.
async fn fed_server(name: &str, era: &str, extra: &[&str]) -> PythonServer {
    let mut args = vec!["--name", name, "--era", era];
    args.extend_from_slice(extra);
    PythonServer::start_with_args("mcp_fed_server.py", &args).await
}

/// An `[mcp_server.<name>]` table for the server at `url`, with `extra` lines.
fn server_table(name: &str, url: &str, extra: &str) -> String {
    format!("[mcp_server.{name}]\nurl = \"{url}\"\n{extra}\n")
}

/// A federated route at `path` over `servers` (in that order) through `plugins`.
fn federated_route(path: &str, servers: &[&str], plugins: &[&str]) -> String {
    let name = path.trim_start_matches('/');
    format!(
        "[[route]]\nname = \"{name}\"\nmatch = {{ path_prefix = \"{path}\" }}\n\
         upstream = {{ kind = \"mcp\", servers = {servers:?} }}\nplugins = {plugins:?}\n\n"
    )
}

/// One table per `(name, server)` and the route `/mcp` over them in that order.
fn federation(servers: &[(&str, &PythonServer)]) -> String {
    let mut config: String = servers
        .iter()
        .map(|(name, server)| server_table(name, &server.url("/mcp"), ""))
        .collect();
    let names: Vec<&str> = servers.iter().map(|(name, _)| *name).collect();
    config.push_str(&federated_route("/mcp", &names, &[]));
    config
}

/// A gateway with `config`, sealing session ids with `key`.
fn keyed_gateway(config: &str, key: &str) -> GatewayBuilder {
    gateway(config)
        .server_line(&format!("session_key = {{ env = \"{SESSION_KEY_ENV}\" }}"))
        .env(SESSION_KEY_ENV, key)
}

/// Test servers `(name, era)`, started together, and a gateway with `/mcp` over them in that
/// order; keep the servers alive as long as the gateway.
async fn federated(servers: &[(&str, &str)]) -> (Vec<PythonServer>, RunningGateway) {
    let started =
        futures::future::join_all(servers.iter().map(|(name, era)| fed_server(name, era, &[])))
            .await;
    let named: Vec<(&str, &PythonServer)> = servers
        .iter()
        .zip(&started)
        .map(|((name, _), server)| (*name, server))
        .collect();
    let gw = keyed_gateway(&federation(&named), SESSION_KEY)
        .start()
        .await;
    (started, gw)
}

/// `names` as a server with `prefix` exposes them.
fn exposed(prefix: &str, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| format!("{prefix}__{name}"))
        .collect()
}

/// The tools of test servers with these prefixes, as a route over them in this order lists them.
fn tools_of(prefixes: &[&str]) -> Vec<String> {
    prefixes.iter().flat_map(|p| exposed(p, &TOOLS)).collect()
}

/// The tool names of a `tools/list` answer.
fn listed_tools(answer: &mcp::Answer) -> Vec<String> {
    let message = only_message(answer);
    message["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list result: {message}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The tools `url` lists to a 2026-07-28 request.
async fn modern_tools(url: &str) -> Vec<String> {
    let list = mcp::modern_request(1, "tools/list", None);
    let answer = send(mcp::modern_post(&client(), url, &list)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    listed_tools(&answer)
}

/// Two servers behind one route, `alpha` (`--era both`) first and `beta` (`--era beta_era`):
/// their tools and prompts listed under their prefixes in route order, each call, prompt and
/// resource served by its own server, at the client's era where the server takes it, and the
/// progress of a call relayed.
async fn two_servers(mode: Mode, beta_era: &str) {
    let (_servers, gw) = federated(&[("alpha", "both"), ("beta", beta_era)]).await;
    let steps = json!([
        op("list_tools"),
        call("alpha__echo", json!({"text": "hi"})),
        call("beta__echo", json!({"text": "yo"})),
        call("alpha__whoami", json!({})),
        call("beta__whoami", json!({})),
        op("list_prompts"),
        {"op": "get_prompt", "name": "alpha__greet", "args": {"who": "ann"}},
        {"op": "get_prompt", "name": "beta__greet", "args": {"who": "bob"}},
        // Listed by beta, the second server: found by the URI.
        {"op": "read_resource", "uri": "res://beta/info"},
        // Listed by no one: found by alpha's template.
        {"op": "read_resource", "uri": "res://alpha/items/7"},
        {"op": "call", "name": "beta__progress", "args": {"steps": 3}, "progress": true},
        {"op": "call", "name": "alpha__progress", "args": {"steps": 3}, "progress": true},
    ]);
    let run = run_script(&gw, mode, &steps, &[]).await;
    assert_eq!(run.names(0, "tools"), tools_of(&["alpha", "beta"]));
    assert_eq!(run.text(1), "alpha:hi");
    assert_eq!(run.text(2), "beta:yo");
    // Each server is spoken to in the client's era when it takes it.
    let beta_version = if beta_era == "legacy" {
        LEGACY_VERSION
    } else {
        mode.version()
    };
    for (step, server, version) in [(3, "alpha", mode.version()), (4, "beta", beta_version)] {
        let who = run.whoami(step);
        assert_eq!(who["server"], server, "{who}");
        assert_eq!(who["protocol_version"], version, "{mode:?}: {who}");
        let stateless = version == mcp::MODERN_VERSION;
        assert_eq!(who["session_id"] == "none", stateless, "{mode:?}: {who}");
    }
    assert_eq!(
        run.names(5, "prompts"),
        exposed("alpha", &["greet"])
            .into_iter()
            .chain(exposed("beta", &["greet"]))
            .collect::<Vec<_>>()
    );
    assert_eq!(run.content(6), "Hello ann, from alpha!");
    assert_eq!(run.content(7), "Hello bob, from beta!");
    assert_eq!(run.content(8), "beta info");
    assert_eq!(run.content(9), "alpha item 7");
    for step in [10, 11] {
        assert_eq!(run.text(step), "done");
        let progress: Vec<f64> = run.ok(step)["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["progress"].as_f64().unwrap())
            .collect();
        assert_eq!(progress, [1.0, 2.0, 3.0], "step {step}: {}", run.out);
    }
    assert_eq!(run.notifications("notifications/progress"), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_behind_one_route_for_a_2025_client() {
    two_servers(Mode::Legacy, "legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_behind_one_route_for_a_2026_client() {
    two_servers(Mode::Auto, "legacy").await;
}

/// The 2026 client over two servers that both speak 2026: nothing is bridged.
#[tokio::test(flavor = "multi_thread")]
async fn two_dual_era_servers_behind_one_route_for_a_2026_client() {
    two_servers(Mode::Auto, "both").await;
}

/// Resources keep their URIs: two servers may both have a resource named `info` (at different
/// URIs), and both are listed, as are both servers' templates.
#[tokio::test(flavor = "multi_thread")]
async fn every_servers_resources_and_templates_are_listed() {
    let (_servers, gw) = federated(&[("alpha", "both"), ("beta", "both")]).await;
    let steps = json!([
        op("list_resources"),
        op("list_resource_templates"),
        {"op": "read_resource", "uri": "res://beta/items/9"},
    ]);
    for mode in Mode::BOTH {
        let run = run_script(&gw, mode, &steps, &[]).await;
        assert_eq!(
            run.names(0, "resources"),
            ["res://alpha/info", "res://beta/info"]
        );
        assert_eq!(
            run.names(1, "templates"),
            ["res://alpha/items/{id}", "res://beta/items/{id}"]
        );
        assert_eq!(run.content(2), "beta item 9");
    }
}

/// A client of one era over a server of the other only: the gateway bridges, and the server's
/// `whoami` shows it was served in its own era.
async fn bridged(mode: Mode, name: &str, era: &str) {
    let (_server, gw) = federated(&[(name, era)]).await;
    let steps = json!([
        op("list_tools"),
        call(&format!("{name}__echo"), json!({"text": "hi"})),
        call(&format!("{name}__whoami"), json!({})),
        op("list_prompts"),
        {"op": "get_prompt", "name": format!("{name}__greet"), "args": {"who": "bob"}},
        op("list_resources"),
        {"op": "read_resource", "uri": format!("res://{name}/info")},
    ]);
    let run = run_script(&gw, mode, &steps, &[]).await;
    assert_eq!(run.names(0, "tools"), tools_of(&[name]));
    assert_eq!(run.text(1), format!("{name}:hi"));
    let who = run.whoami(2);
    let (version, stateless) = match era {
        "modern" => (mcp::MODERN_VERSION, true),
        _ => (LEGACY_VERSION, false),
    };
    assert_ne!(version, mode.version(), "a bridged test");
    assert_eq!(who["protocol_version"], version, "{who}");
    assert_eq!(who["session_id"] == "none", stateless, "{who}");
    assert_eq!(run.names(3, "prompts"), exposed(name, &["greet"]));
    assert_eq!(run.content(4), format!("Hello bob, from {name}!"));
    assert_eq!(run.names(5, "resources"), [format!("res://{name}/info")]);
    assert_eq!(run.content(6), format!("{name} info"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2025_client_uses_a_2026_only_server() {
    bridged(Mode::Legacy, "gamma", "modern").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_uses_a_2025_only_server() {
    bridged(Mode::Auto, "beta", "legacy").await;
}

/// Sampling and elicitation: a 2025 client gets a 2025-era server's requests mid-call (relayed
/// with ids that name the server) and the tool returns its reply; a 2026 client gets a 2026
/// server's `input_required` and retries with the answers. Across eras, bridged:
/// - a 2025 client calling a tool of a 2026-only server that needs input gets the server's
///   `inputRequests` as requests on the call's stream, and the gateway retries with its answers;
/// - a 2026 client calling such a tool of a 2025-only server gets `input_required` rounds, the
///   gateway replaying the call with its answers.
#[tokio::test(flavor = "multi_thread")]
async fn server_requests_reach_the_client_in_its_era() {
    let eras = [("alpha", "both"), ("beta", "legacy"), ("gamma", "modern")];
    let (_servers, gw) = federated(&eras).await;
    let replies = [
        "--sampling-reply",
        "four",
        "--elicit-reply",
        r#"{"answer": "blue"}"#,
    ];
    let ask = |server: &str| call(&format!("{server}__ask"), json!({"question": "2+2?"}));
    let elicit = |server: &str| call(&format!("{server}__elicit"), json!({"question": "colour?"}));
    for mode in Mode::BOTH {
        // The servers of the client's own era first, then the one of the other era only.
        let (same, other) = match mode {
            Mode::Legacy => ("beta", "gamma"),
            Mode::Auto => ("gamma", "beta"),
        };
        let steps = json!([
            ask("alpha"),
            elicit("alpha"),
            ask(same),
            elicit(same),
            ask(other),
            elicit(other)
        ]);
        let run = run_script(&gw, mode, &steps, &replies).await;
        for step in [0, 2, 4] {
            assert_eq!(run.text(step), "four", "{mode:?} step {step}: {}", run.out);
        }
        for step in [1, 3, 5] {
            let answer: Value = serde_json::from_str(run.text(step)).unwrap();
            assert_eq!(answer, json!({"answer": "blue"}), "{mode:?} step {step}");
        }
        assert_eq!(run.count("sampling_requests"), 3, "{mode:?}: {}", run.out);
        assert_eq!(
            run.count("elicitation_requests"),
            3,
            "{mode:?}: {}",
            run.out
        );
    }
}

/// `initialize` on one replica, the rest of the session on another with the same
/// `session_key`: the server sessions sealed in the id are the ones used (beta's `whoami` shows
/// the same session on both). Another key, a tampered id, an id ended by DELETE: 404.
#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_session_continues_on_another_replica() {
    let alpha = fed_server("alpha", "both", &[]).await;
    let beta = fed_server("beta", "legacy", &[]).await;
    let config = federation(&[("alpha", &alpha), ("beta", &beta)]);
    let first = keyed_gateway(&config, SESSION_KEY).start().await;
    let second = keyed_gateway(&config, SESSION_KEY).start().await;
    let stranger = keyed_gateway(&config, "another-session-key-of-32-characters")
        .start()
        .await;

    let session = initialize(&first).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = send(legacy_post(&second, &session, &initialized)).await;
    assert_eq!(answer.status, 202, "{answer:?}\n{}", second.log());

    let whoami = mcp::tool_call(2, "beta__whoami", json!({}));
    let on_second = only_message(&send(legacy_post(&second, &session, &whoami)).await);
    let on_first = only_message(&send(legacy_post(&first, &session, &whoami)).await);
    let session_of = |message: &Value| -> Value {
        let text = message["result"]["content"][0]["text"].as_str();
        serde_json::from_str(text.unwrap_or_else(|| panic!("no text: {message}"))).unwrap()
    };
    let (on_second, on_first) = (session_of(&on_second), session_of(&on_first));
    assert_eq!(on_second["server"], "beta");
    assert_ne!(on_second["session_id"], "none");
    assert_eq!(
        on_second["session_id"], on_first["session_id"],
        "both replicas use the beta session opened at initialize"
    );
    let echo = mcp::tool_call(3, "alpha__echo", json!({"text": "r2"}));
    let answer = only_message(&send(legacy_post(&second, &session, &echo)).await);
    assert_eq!(answer["id"], 3);
    assert_eq!(
        answer["result"]["content"][0]["text"], "alpha:r2",
        "{answer}"
    );

    let refused = |answer: &mcp::Answer, what: &str| {
        assert_eq!(answer.status, 404, "{what}: {answer:?}");
        assert_eq!(answer.reason(), Some("mcp.session_unknown"), "{what}");
        assert_eq!(only_message(answer)["error"]["code"], -32600, "{what}");
    };
    let answer = send(legacy_post(&stranger, &session, &echo)).await;
    refused(&answer, "another session_key");
    let answer = send(legacy_post(&second, &tampered(&session), &echo)).await;
    refused(&answer, "a tampered id");

    let ended = send(delete_session(&second, &session)).await;
    assert_eq!(ended.status, 200, "{ended:?}");
    let answer = send(legacy_post(&second, &session, &echo)).await;
    refused(&answer, "an id ended on this replica");
}

/// After DELETE, the replica refuses the id whatever the request: a GET must not open (and
/// re-open server sessions for) a stream, a second DELETE finds no session.
#[tokio::test(flavor = "multi_thread")]
async fn an_ended_session_is_refused_by_every_method() {
    let (_server, gw) = federated(&[("beta", "legacy")]).await;
    let session = initialize(&gw).await;
    assert_eq!(send(delete_session(&gw, &session)).await.status, 200);
    let get = client()
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", LEGACY_VERSION)
        .send()
        .await
        .unwrap();
    // The status alone: a stream opened by mistake would never end.
    assert_eq!(get.status(), 404, "GET with an ended id");
    let again = send(delete_session(&gw, &session)).await;
    assert_eq!(again.status, 404, "DELETE of an ended id: {again:?}");
}

/// `initialize` (raw HTTP, 2025-11-25) on `gw`: the session id it answers.
async fn initialize(gw: &RunningGateway) -> String {
    let init = mcp::request(
        1,
        "initialize",
        Some(json!({
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"},
        })),
    );
    let answer = send(mcp::post(&client(), &gw.url("/mcp"), &init)).await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", gw.log());
    assert_eq!(
        only_message(&answer)["result"]["protocolVersion"],
        LEGACY_VERSION
    );
    answer.headers["mcp-session-id"]
        .to_str()
        .expect("a session id")
        .to_string()
}

/// A POST of `message` on `session`, as a 2025-11-25 client sends it.
fn legacy_post(gw: &RunningGateway, session: &str, message: &Value) -> reqwest::RequestBuilder {
    mcp::post(&client(), &gw.url("/mcp"), message)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY_VERSION)
}

/// DELETE of `session`.
fn delete_session(gw: &RunningGateway, session: &str) -> reqwest::RequestBuilder {
    client()
        .delete(gw.url("/mcp"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY_VERSION)
}

/// `id` with one character in its middle changed (to another base64url character).
fn tampered(id: &str) -> String {
    let mut bytes = id.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Servers that forget every session after one request (as a restart would): a 2025 client's
/// calls go on working, the gateway opening new server sessions unseen (`whoami` shows another
/// session id each time).
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_forgets_its_sessions_is_reopened_unseen() {
    let forget = ["--forget-sessions-after", "1"];
    let zeta = fed_server("zeta", "both", &forget).await;
    let eta = fed_server("eta", "legacy", &forget).await;
    let gw = keyed_gateway(&federation(&[("zeta", &zeta), ("eta", &eta)]), SESSION_KEY)
        .start()
        .await;
    let steps = json!([
        call("zeta__whoami", json!({})),
        call("eta__whoami", json!({})),
        call("zeta__echo", json!({"text": "1"})),
        call("eta__echo", json!({"text": "2"})),
        op("list_tools"),
        call("zeta__whoami", json!({})),
        call("eta__whoami", json!({})),
    ]);
    let run = run_script(&gw, Mode::Legacy, &steps, &[]).await;
    assert_eq!(run.text(2), "zeta:1");
    assert_eq!(run.text(3), "eta:2");
    assert_eq!(run.names(4, "tools"), tools_of(&["zeta", "eta"]));
    for (before, after, server) in [(0, 5, &zeta), (1, 6, &eta)] {
        let (before, after) = (run.whoami(before), run.whoami(after));
        assert_ne!(before["session_id"], "none");
        assert_ne!(
            before["session_id"], after["session_id"],
            "the server forgot the first session: {before} {after}"
        );
        assert!(server.log().contains("FORGOT all sessions"));
    }
}

/// A server nobody listens for (`dead`), one that accepts connections and never answers
/// (`hole`, 1 s timeout), and one whose tool outlasts its timeout (`slowpoke`, alpha's process
/// behind a 1 s timeout): the others' tools are listed within the timeout, a call to the failing
/// ones gets an error naming the server, the others' calls work.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_slow_servers_leave_the_others_serving() {
    let alpha = fed_server("alpha", "both", &[]).await;
    let dead = free_addr();
    // Connections complete in the kernel's backlog; nothing ever reads or answers them.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_url = format!("http://{}/mcp", hole.local_addr().unwrap());
    let timeout = "timeout = \"1s\"";
    let config = [
        server_table("dead", &format!("http://{dead}/mcp"), timeout),
        server_table("hole", &hole_url, timeout),
        server_table("alpha", &alpha.url("/mcp"), ""),
        server_table("slowpoke", &alpha.url("/mcp"), timeout),
        federated_route("/mcp", &["dead", "hole", "alpha", "slowpoke"], &[]),
    ]
    .concat();
    let gw = keyed_gateway(&config, SESSION_KEY).start().await;
    let answering = tools_of(&["alpha", "slowpoke"]);

    let started = Instant::now();
    assert_eq!(modern_tools(&gw.url("/mcp")).await, answering);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the list waited {took:?}, more than hole's 1 s timeout allows"
    );

    let steps = json!([
        op("list_tools"),
        call("dead__echo", json!({"text": "x"})),
        call("hole__echo", json!({"text": "x"})),
        call("alpha__echo", json!({"text": "x"})),
        call("slowpoke__slow", json!({"ms": 3000})),
        call("slowpoke__echo", json!({"text": "y"})),
        // alpha's own timeout is the default one.
        call("alpha__slow", json!({"ms": 1500})),
    ]);
    for mode in Mode::BOTH {
        let run = run_script(&gw, mode, &steps, &[]).await;
        assert_eq!(run.names(0, "tools"), answering, "{mode:?}");
        assert_server_failed(run.error(1), "dead", "upstream.unavailable");
        assert_server_failed(run.error(2), "hole", "upstream.timeout");
        assert_eq!(run.text(3), "alpha:x");
        assert_server_failed(run.error(4), "slowpoke", "upstream.timeout");
        assert_eq!(run.text(5), "alpha:y");
        assert_eq!(run.text(6), "alpha:slept 1500ms");
    }
    drop(hole);
}

/// A 2026-07-28 request whose `Mcp-Name` or `Mcp-Method` says something else than its body is
/// refused (400, -32020) by the gateway itself, before any server sees it, on a federated route
/// and on a plain MCP route alike; the same request with truthful headers is served.
///
/// On the federated route the body calls alpha's `add_tool`: had it reached alpha, the tool it
/// adds would be listed. The plain route's upstream is the recording test upstream (an SDK
/// server would refuse the lie itself, which would prove nothing about the gateway).
#[tokio::test(flavor = "multi_thread")]
async fn a_routing_header_that_contradicts_the_body_never_reaches_a_server() {
    let alpha = fed_server("alpha", "both", &[]).await;
    let recording = TestUpstream::start().await;
    let config = format!(
        "{}{}[[route]]\nname = \"plain\"\nmatch = {{ path_prefix = \"/plain\" }}\n\
         upstream = {{ kind = \"mcp\", url = \"{}/mcp\" }}\n",
        server_table("alpha", &alpha.url("/mcp"), ""),
        federated_route("/mcp", &["alpha"], &[]),
        recording.url()
    );
    let gw = keyed_gateway(&config, SESSION_KEY).start().await;

    let add = |id: u64, name: &str| {
        let arguments = json!({"name": format!("{name}_{id}")});
        let params = json!({"name": "alpha__add_tool", "arguments": arguments});
        mcp::modern_request(id, "tools/call", Some(params))
    };
    refuse_lies(&gw.url("/mcp"), &add(1, "sneaky"), "alpha__echo").await;
    let answer = send(mcp::modern_post(
        &client(),
        &gw.url("/mcp"),
        &add(2, "visible"),
    ))
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        only_message(&answer)["result"]["content"][0]["text"],
        "alpha:added visible_2"
    );
    // Asked of alpha itself, not through the gateway.
    let mut expected: Vec<String> = TOOLS.iter().map(|t| t.to_string()).collect();
    expected.push("visible_2".into());
    assert_eq!(
        modern_tools(&alpha.url("/mcp")).await,
        expected,
        "only the truthful request added a tool"
    );

    let plain = gw.url("/plain");
    let call = mcp::modern_request(3, "tools/call", Some(json!({"name": "add_tool"})));
    refuse_lies(&plain, &call, "echo").await;
    assert!(
        recording.recorder.requests().is_empty(),
        "a refused request reached the upstream"
    );
    let answer = send(mcp::modern_post(&client(), &plain, &call)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let reached = recording.recorder.requests();
    assert_eq!(
        reached.len(),
        1,
        "the truthful request reached the upstream"
    );
    assert_eq!(reached[0].headers["mcp-name"], "add_tool");
}

/// Sends `message` (a 2026-07-28 `tools/call`) to `url` twice, once with `Mcp-Name: <other>`
/// and once with `Mcp-Method: tools/list`: both refused by the gateway with 400 and -32020.
async fn refuse_lies(url: &str, message: &Value, other: &str) {
    for (header, lie) in [("mcp-name", other), ("mcp-method", "tools/list")] {
        let mut headers = mcp::modern_headers(message);
        headers.insert(header, lie.parse().unwrap());
        let answer = send(mcp::post(&client(), url, message).headers(headers)).await;
        assert_eq!(answer.status, 400, "{url} {header}: {answer:?}");
        assert_eq!(
            answer.reason(),
            Some("request.header_mismatch"),
            "the gateway's own refusal: {url} {header}"
        );
        let refusal = only_message(&answer);
        assert_eq!(
            refusal["error"]["code"], -32020,
            "{url} {header}: {refusal}"
        );
        assert_eq!(
            refusal["id"], message["id"],
            "answers the request's id: {refusal}"
        );
    }
}

/// `mcp-rbac` on a federated route judges the names clients see: a rule for `alpha__*` lets
/// alpha's tools be listed and called and refuses beta's (-32001) before beta sees the call.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_rbac_judges_the_exposed_names() {
    let secret = "federation-rbac-secret-0123456789abcdef";
    // Lists the servers call public: only the filtering makes them private.
    let public = ["--ttl-ms", "0", "--cache-scope", "public"];
    let alpha = fed_server("alpha", "both", &public).await;
    let beta = fed_server("beta", "both", &public).await;
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_FED_RBAC_SECRET" }}

[plugin.tool-access]
type = "mcp-rbac"
default = "deny"
rules = [{{ tools = ["alpha__*"], claim = "groups", any_of = ["alpha-users"] }}]

{}{}{}{}"#,
        server_table("alpha", &alpha.url("/mcp"), ""),
        server_table("beta", &beta.url("/mcp"), ""),
        federated_route("/mcp", &["alpha", "beta"], &["auth", "tool-access"]),
        federated_route("/open", &["alpha", "beta"], &[]),
    );
    let gw = keyed_gateway(&config, SESSION_KEY)
        .env("E2E_FED_RBAC_SECRET", secret)
        .start()
        .await;
    let bearer = format!(
        "Authorization: Bearer {}",
        hs256_token(secret, "alice@example.com", "alpha-users")
    );
    for mode in Mode::BOTH {
        let steps = json!([
            op("list_tools"),
            call("alpha__echo", json!({"text": "x"})),
            call("beta__echo", json!({"text": "x"})),
            call(
                "beta__add_tool",
                json!({"name": format!("forbidden_{}", mode.arg())})
            ),
        ]);
        let run = run_script(&gw, mode, &steps, &["--header", &bearer]).await;
        assert_eq!(run.names(0, "tools"), tools_of(&["alpha"]), "{mode:?}");
        assert_eq!(run.text(1), "alpha:x");
        for (step, tool) in [(2, "beta__echo"), (3, "beta__add_tool")] {
            let error = run.error(step);
            assert_eq!(error["code"], -32001, "{mode:?}: {error}");
            assert_eq!(error["data"]["reason"], "rbac.denied", "{error}");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(&format!("`{tool}`")), "{error}");
        }
    }
    // A list filtered for its caller is private: no shared cache may hand it to another.
    let list = mcp::modern_request(1, "tools/list", None);
    let token = bearer.trim_start_matches("Authorization: ");
    let answer =
        send(mcp::modern_post(&client(), &gw.url("/mcp"), &list).header("authorization", token))
            .await;
    assert_eq!(only_message(&answer)["result"]["cacheScope"], "private");
    let answer = send(mcp::modern_post(&client(), &gw.url("/open"), &list)).await;
    assert_eq!(
        only_message(&answer)["result"]["cacheScope"],
        "public",
        "unfiltered"
    );
    // Through the route without rbac: beta has no tool the refused calls would have added.
    assert_eq!(
        modern_tools(&gw.url("/open")).await,
        tools_of(&["alpha", "beta"])
    );
}

/// A tool added at runtime: a 2025 client hears `notifications/tools/list_changed` on its GET
/// stream from either server, a 2026 client on `subscriptions/listen` from a 2026 server, and
/// the new tool is then listed under its server's prefix and called.
#[tokio::test(flavor = "multi_thread")]
async fn list_changed_reaches_a_listening_client() {
    let (_servers, gw) = federated(&[("alpha", "both"), ("beta", "legacy")]).await;
    let changed = "notifications/tools/list_changed";
    let wait = json!({"op": "wait_notification", "method": changed, "timeout_ms": 5000});
    // The streams are opened when `listen` returns; the servers' side a moment later.
    let settle = json!({"op": "sleep", "ms": 500});

    let steps = json!([
        op("listen"),
        settle,
        call("alpha__add_tool", json!({"name": "fresh_a"})),
        wait,
        call("beta__add_tool", json!({"name": "fresh_b"})),
        {"op": "sleep", "ms": 1000},
        op("list_tools"),
        call("beta__fresh_b", json!({"text": "q"})),
    ]);
    let run = run_script(&gw, Mode::Legacy, &steps, &[]).await;
    assert_eq!(run.ok(3)["received"], true, "{}", run.out);
    assert_eq!(run.notifications(changed), 2, "one from each server");
    let mut expected = tools_of(&["alpha"]);
    expected.push("alpha__fresh_a".into());
    expected.extend(tools_of(&["beta"]));
    expected.push("beta__fresh_b".into());
    assert_eq!(run.names(6, "tools"), expected);
    assert_eq!(run.text(7), "beta:fresh_b:q");

    // A 2026 client: alpha's change comes on alpha's own listen; beta (2025 only) has none, so
    // its change comes from the GET stream of the gateway's session on beta.
    let steps = json!([
        op("listen"),
        settle,
        call("alpha__add_tool", json!({"name": "fresh_c"})),
        wait,
        call("beta__add_tool", json!({"name": "fresh_d"})),
        {"op": "sleep", "ms": 1000},
        op("list_tools"),
        call("alpha__fresh_c", json!({"text": "q"})),
        call("beta__fresh_d", json!({"text": "q"})),
    ]);
    let run = run_script(&gw, Mode::Auto, &steps, &[]).await;
    assert_eq!(run.ok(3)["received"], true, "{}", run.out);
    assert_eq!(
        run.notifications(changed),
        2,
        "one from each server: {}",
        run.out
    );
    let tools = run.names(6, "tools");
    let at = |name: &str| tools.iter().position(|t| t == name);
    assert!(
        at("alpha__fresh_c").is_some() && at("alpha__fresh_c") < at("beta__echo"),
        "listed among alpha's tools: {tools:?}"
    );
    assert!(at("beta__fresh_d").is_some(), "{tools:?}");
    assert_eq!(run.text(7), "alpha:fresh_c:q");
    assert_eq!(run.text(8), "beta:fresh_d:q");
}

/// `tollgate check` locates a route's unknown server name at its string in `servers`.
#[test]
fn check_locates_an_unknown_server_name() {
    let config = "[mcp_server.alpha]\nurl = \"http://127.0.0.1:9/mcp\"\n\n[[route]]\nname = \"tools\"\nmatch = { path_prefix = \"/mcp\" }\nupstream = { kind = \"mcp\", servers = [\"alpha\", \"nope\"] }\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1, "{text}");
    let line = config.lines().nth(6).unwrap();
    let column = line.find("\"nope\"").unwrap() + 1;
    let located = format!("{}:7:{column}: unknown MCP server `nope`", path.display());
    assert!(text.contains(&located), "expected `{located}` in:\n{text}");
    assert!(text.contains("hint: defined: alpha"), "{text}");
}

/// A list a server declares `public` with a `ttlMs` is kept by the gateway: a tool the server
/// adds while nobody listens stays out of the list until then; a change that passes through a
/// listening client's stream drops it at once. A server whose lists are private is asked every
/// time.
#[tokio::test(flavor = "multi_thread")]
async fn public_lists_are_kept_for_their_ttl_until_a_change_passes() {
    let cached = fed_server(
        "alpha",
        "both",
        &["--ttl-ms", "600000", "--cache-scope", "public"],
    )
    .await;
    let private = fed_server("beta", "both", &[]).await;
    let config = federation(&[("alpha", &cached), ("beta", &private)]);
    let gw = keyed_gateway(&config, SESSION_KEY).start().await;

    let steps = json!([
        op("list_tools"),
        call("alpha__add_tool", json!({"name": "quiet_a"})),
        call("beta__add_tool", json!({"name": "quiet_b"})),
        op("list_tools"),
    ]);
    let run = run_script(&gw, Mode::Auto, &steps, &[]).await;
    let listed = run.names(3, "tools");
    assert!(
        !listed.contains(&"alpha__quiet_a".to_string()),
        "alpha's list is the kept one: {listed:?}"
    );
    assert!(
        listed.contains(&"beta__quiet_b".to_string()),
        "beta's list is asked again: {listed:?}"
    );

    let steps = json!([
        op("listen"),
        {"op": "sleep", "ms": 500},
        call("alpha__add_tool", json!({"name": "loud_a"})),
        {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout_ms": 5000},
        op("list_tools"),
    ]);
    let run = run_script(&gw, Mode::Auto, &steps, &[]).await;
    assert_eq!(run.ok(3)["received"], true, "{}", run.out);
    let listed = run.names(4, "tools");
    for tool in ["alpha__quiet_a", "alpha__loud_a"] {
        assert!(
            listed.contains(&tool.to_string()),
            "{tool} after the change: {listed:?}"
        );
    }
}

/// DNS rebinding: on a loopback listener, a browser request from another site (its `Origin` and
/// `Host` name that site) is refused before any server is asked; a local page's is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_request_from_another_site_is_refused_on_loopback() {
    let (_servers, gw) = federated(&[("alpha", "both")]).await;
    let list = mcp::modern_request(1, "tools/list", None);
    let from = |origin: &str, host: &str| {
        mcp::modern_post(&client(), &gw.url("/mcp"), &list)
            .header("origin", origin)
            .header("host", host)
    };
    let answer = send(from("http://evil.example.com", "evil.example.com")).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.reason(), Some("request.cross_origin"));
    let answer = send(from("http://evil.example.com", "127.0.0.1")).await;
    assert_eq!(answer.status, 403, "an Origin of another site: {answer:?}");
    let answer = send(from("http://localhost:6274", "localhost")).await;
    assert_eq!(
        answer.status, 200,
        "a local page (the MCP Inspector): {answer:?}"
    );
    assert_eq!(listed_tools(&answer), tools_of(&["alpha"]));
}

/// The server that answered a federated call is named in the metrics (`server` label), the
/// audit record (`mcp_server`) and its outcome; a call the gateway fails in-band is an `error`.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_audit_name_the_server_that_answered() {
    let alpha = fed_server("alpha", "both", &[]).await;
    let mut config = federation(&[("alpha", &alpha)]);
    // A server nobody listens on: its calls fail in-band (HTTP 200, JSON-RPC -32603).
    config = config.replacen(
        "[[route]]",
        &format!(
            "{}[[route]]",
            server_table(
                "dead",
                &format!("http://{}/mcp", free_addr()),
                "timeout = \"1s\""
            )
        ),
        1,
    );
    config = config.replace(r#"servers = ["alpha"]"#, r#"servers = ["alpha", "dead"]"#);
    let gw = keyed_gateway(&config, SESSION_KEY)
        .audit_log()
        .start()
        .await;
    let url = gw.url("/mcp");
    for (tool, ok) in [("alpha__echo", true), ("dead__echo", false)] {
        let call = mcp::modern_request(
            1,
            "tools/call",
            Some(json!({"name": tool, "arguments": {"text": "x"}})),
        );
        let answer = send(mcp::modern_post(&client(), &url, &call)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            only_message(&answer).get("error").is_none(),
            ok,
            "{answer:?}"
        );
    }
    let scrape = gw.metrics().await;
    let series = |tool: &str, outcome: &str, server: &str| {
        format!(
            r#"tollgate_mcp_requests_total{{method="tools/call",outcome="{outcome}",route="mcp",server="{server}",tool="{tool}"}}"#
        )
    };
    for (tool, outcome, server) in [
        ("alpha__echo", "ok", "alpha"),
        ("dead__echo", "error", "dead"),
    ] {
        let line = series(tool, outcome, server);
        assert_eq!(
            tollgate_testkit::prometheus::sample(&scrape, &line),
            Some(1.0),
            "{line} in:\n{scrape}"
        );
    }
    let records = gw.audit_lines(2).await;
    let servers: Vec<&str> = records
        .iter()
        .filter_map(|r| r["mcp_server"].as_str())
        .collect();
    assert_eq!(servers, ["alpha", "dead"], "{records:?}");
    assert_eq!(records[1]["error"], "upstream.unavailable", "{records:?}");
}

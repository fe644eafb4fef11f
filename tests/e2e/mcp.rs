//! MCP Streamable HTTP through the gateway: the official Python SDK against the demo server, and
//! the protocol's headers, methods and status codes against a recording upstream.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tollgate::demo::{DemoUpstreams, EchoOptions};
use tollgate_testkit::{client, mcp, python};

use crate::common::gateway;
use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;

fn mcp_route(url: &str) -> String {
    format!("[[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\nupstream = {{ url = \"{url}\", kind = \"mcp\" }}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_lists_tools_and_multiplies_through_the_gateway() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let demo = DemoUpstreams::start(any, any, EchoOptions::default()).unwrap();
    let gw = gateway(&mcp_route(&format!("http://{}/mcp", demo.mcp_addr())))
        .start()
        .await;
    let (code, out, log) = python::run("mcp_client.py", vec!["--url".into(), gw.url("/mcp")]).await;
    assert_eq!(code, 0, "{log}\ngateway log:\n{}", gw.log());
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"add") && tools.contains(&"multiply"),
        "{out}"
    );
    assert_eq!(out["result"], "714", "{out}");
    assert_eq!(out["is_error"], false);
    demo.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_client_and_server_talk_through_the_gateway() {
    let server = python::PythonServer::start("mcp_math_server.py").await;
    let gw = gateway(&mcp_route(&format!("http://{}/mcp", server.addr)))
        .start()
        .await;
    let (code, out, log) = python::run("mcp_client.py", vec!["--url".into(), gw.url("/mcp")]).await;
    assert_eq!(code, 0, "{log}\ngateway log:\n{}", gw.log());
    assert_eq!(out["server_name"], "python-math");
    assert_eq!(out["tools"], serde_json::json!(["add", "multiply"]));
    assert_eq!(out["result"], "714");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_users_see_and_call_only_their_tools() {
    let secret = "python-rbac-secret-0123456789abcdef";
    let server = python::PythonServer::start("mcp_math_server.py").await;
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_PY_SECRET" }}

[plugin.tool-access]
type = "mcp-rbac"
rules = [{{ tools = ["add", "multiply"], claim = "groups", any_of = ["math-users"] }}]

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "http://{}/mcp", kind = "mcp" }}
plugins = ["auth", "tool-access"]
"#,
        server.addr
    );
    let gw = gateway(&config).env("E2E_PY_SECRET", secret).start().await;
    let token = |sub: &str, groups: &str| hs256_token(secret, sub, groups);
    let run_as = |token: String| {
        python::run(
            "mcp_client.py",
            vec![
                "--url".into(),
                gw.url("/mcp"),
                "--header".into(),
                format!("Authorization: Bearer {token}"),
            ],
        )
    };
    let (code, alice, log) = run_as(token("alice", "math-users")).await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(alice["tools"], serde_json::json!(["add", "multiply"]));
    assert_eq!(alice["result"], "714");

    let (code, bob, log) = run_as(token("bob", "sales")).await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        bob["tools"],
        serde_json::json!([]),
        "bob's tools/list is filtered"
    );
    assert_eq!(bob["error"]["code"], -32001, "{bob}");
    let message = bob["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`multiply` is not allowed"), "{bob}");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_headers_pass_both_ways() {
    let up = TestUpstream::start().await;
    let gw = gateway(&mcp_route(&format!("{}/mcp", up.url())))
        .start()
        .await;
    let client = client();
    let resp = mcp::post(&client, &gw.url("/mcp"), &mcp::request(1, "ping", None))
        .header("mcp-session-id", "sess-123")
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["mcp-session-id"], "sess-123");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["method"], "ping");
    assert_eq!(body["result"]["protocol_version"], "2025-06-18");
    let seen = up.recorder.requests();
    assert_eq!(seen[0].uri, "/mcp");
    assert_eq!(seen[0].headers["mcp-session-id"], "sess-123");
    assert_eq!(
        seen[0].headers["content-length"],
        seen[0].body.len().to_string()
    );

    // A notification is accepted with 202 and no body.
    let resp = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // A batch is checked element by element and forwarded whole.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "ping"}
    ]);
    let resp = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");

    // GET opens the server-to-client stream; Last-Event-ID is passed on for resumption.
    let resp = client
        .get(gw.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "ev-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("id: ev-1") && text.contains("\"last_event_id\":\"ev-7\""),
        "{text}"
    );

    // DELETE ends the session.
    let resp = client
        .delete(gw.url("/mcp"))
        .header("mcp-session-id", "sess-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let methods: Vec<String> = up
        .recorder
        .requests()
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(methods, ["POST", "POST", "POST", "GET", "DELETE"]);
}

//! `mcp-rbac` behind `jwt`: forbidden calls are answered in band and never reach the upstream;
//! list answers (JSON and SSE) show only what the caller may use.

use serde_json::{json, Value};
use tollgate_testkit::sse::SseReader;
use tollgate_testkit::{client, mcp, RunningGateway};

use crate::common::tokens::hs256_token;
use crate::common::upstream::TestUpstream;
use crate::common::warnings::assert_warnings;

const SECRET: &str = "rbac-test-secret-0123456789abcdef";

fn token(subject: &str, groups: &str) -> String {
    hs256_token(SECRET, subject, groups)
}

async fn gateway(up: &TestUpstream) -> RunningGateway {
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_RBAC_SECRET" }}

[plugin.tool-access]
type = "mcp-rbac"
default = "deny"
rules = [
  {{ tools = ["add", "multiply"], claim = "groups", any_of = ["math-users"] }},
  {{ tools = ["*"], claim = "sub", any_of = ["admin@example.com"] }},
]

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["auth", "tool-access"]
"#,
        u = up.url()
    );
    crate::common::gateway(&config)
        .env("E2E_RBAC_SECRET", SECRET)
        .audit_log()
        .start()
        .await
}

async fn rpc(
    gw: &RunningGateway,
    token: &str,
    body: Value,
    sse: bool,
) -> (u16, Option<String>, String) {
    let mut request = mcp::post(&client(), &gw.url("/mcp"), &body).bearer_auth(token);
    if sse {
        request = request.header("x-test-answer", "sse");
    }
    let answer = mcp::Answer::read(request.send().await.unwrap())
        .await
        .unwrap();
    let reason = answer.reason().map(str::to_string);
    (answer.status, reason, answer.text)
}

/// The tool names of the first message of an answer (JSON or SSE).
fn tool_names(text: &str) -> Vec<String> {
    let json = mcp::messages(text).remove(0);
    json["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_and_calling_agree_per_caller() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let bob = token("bob@example.com", "sales");
    let admin = token("admin@example.com", "ops");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});

    for sse in [false, true] {
        let (status, _, text) = rpc(&gw, &alice, list.clone(), sse).await;
        assert_eq!(status, 200);
        assert_eq!(tool_names(&text), ["add", "multiply"], "sse={sse}: {text}");
        let (_, _, text) = rpc(&gw, &bob, list.clone(), sse).await;
        assert!(tool_names(&text).is_empty(), "sse={sse}: {text}");
        let (_, _, text) = rpc(&gw, &admin, list.clone(), sse).await;
        assert_eq!(
            tool_names(&text),
            ["add", "multiply", "delete_all"],
            "sse={sse}"
        );
    }

    let call = |id: u64, tool: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"a": 42, "b": 17}}});
    let (status, _, text) = rpc(&gw, &alice, call(2, "multiply"), false).await;
    assert_eq!(status, 200);
    assert!(text.contains("called"), "{text}");

    let calls_before = up.recorder.requests().len();
    let (status, reason, text) = rpc(&gw, &bob, call(3, "multiply"), false).await;
    assert_eq!(status, 200, "a per-call denial is in band");
    assert_eq!(reason.as_deref(), Some("rbac.denied"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["id"], 3);
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["data"]["reason"], "rbac.denied");
    let (_, reason, _) = rpc(&gw, &alice, call(4, "delete_all"), false).await;
    assert_eq!(reason.as_deref(), Some("rbac.denied"));

    // A batch with one forbidden call is refused whole.
    let batch = json!([call(5, "add"), call(6, "delete_all")]);
    let (status, reason, _) = rpc(&gw, &alice, batch, false).await;
    assert_eq!((status, reason.as_deref()), (200, Some("rbac.denied")));

    assert_eq!(
        up.recorder.requests().len(),
        calls_before,
        "no refused call reached the upstream"
    );
    let (status, reason, _) = rpc(&gw, "not-a-token", call(7, "add"), false).await;
    assert_eq!((status, reason.as_deref()), (401, Some("jwt.malformed")));
}

/// The Python MCP SDK writes SSE with CRLF line ends; a list answer after a notification is
/// still filtered, and each event still leaves as it arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_crlf_sse_list_answer_is_filtered_event_by_event() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let resp = client()
        .post(gw.url("/mcp"))
        .bearer_auth(&alice)
        .header("x-test-answer", "sse-progress")
        .header("x-test-line-end", "crlf")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stream = SseReader::new(resp).read_to_end().await.unwrap();
    let progress_at = stream.first_arrival(|event| event.contains("notifications/progress"));
    let text = stream.text;
    let sent = up.recorder.event_times.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(
        progress_at.unwrap() < sent[1],
        "the notification reached the client only after the upstream sent the answer: held"
    );
    let answer = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("\"result\""))
        .unwrap_or_else(|| panic!("no answer event: {text:?}"));
    assert_eq!(tool_names(answer), ["add", "multiply"], "{text:?}");
}

/// A list answer longer than the filter holds (8 MiB) is replaced by a JSON-RPC error for its
/// request, never sent unfiltered; in a stream, what came before it still arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_answer_too_long_to_filter_becomes_a_jsonrpc_error() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let list = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/list"});
    let too_long = (9 << 20).to_string();
    for answer in ["json", "sse-progress"] {
        let resp = client()
            .post(gw.url("/mcp"))
            .bearer_auth(&alice)
            // Any other value than the SSE ones gets the plain JSON answer.
            .header("x-test-answer", answer)
            .header("x-test-list-bytes", &too_long)
            .json(&list)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{answer}");
        let text = resp.text().await.unwrap();
        assert!(
            text.len() < 4096,
            "{answer}: {} bytes came through",
            text.len()
        );
        assert!(!text.contains("delete_all"), "{answer}: {text}");
        let error = match answer {
            "json" => text.as_str(),
            _ => {
                assert!(text.contains("notifications/progress"), "{text}");
                text.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .find(|d| d.contains("\"error\""))
                    .unwrap_or_else(|| panic!("no error event: {text:?}"))
            }
        };
        let error: Value = serde_json::from_str(error).unwrap();
        assert_eq!(error["id"], 41, "{error}");
        assert_eq!(error["error"]["code"], -32603, "{error}");
        assert_eq!(error["error"]["data"]["reason"], "rbac.list_too_long");
    }
    assert!(gw
        .log()
        .contains("mcp-rbac stopped an answer too long to filter"));

    // The gateway goes on filtering.
    let (status, _, text) = rpc(&gw, &alice, list, true).await;
    assert_eq!(status, 200);
    assert_eq!(tool_names(&text), ["add", "multiply"]);
    let stopped: &[&str] = &["rbac.list_too_long"];
    assert_warnings(&gw, "mcp", &[stopped, stopped, &[]]).await;
}

/// A streamed message that reuses a pending list's id but carries a `method` is a request to
/// the client, not the list's answer: the real answer after it is filtered all the same (found
/// by the `list_filter` fuzz target; before, it passed whole).
#[tokio::test(flavor = "multi_thread")]
async fn a_message_reusing_the_lists_id_does_not_let_the_answer_pass_unfiltered() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    let request = mcp::post(&client(), &gw.url("/mcp"), &list)
        .bearer_auth(&alice)
        .header("x-test-answer", "sse-impostor");
    let answer = mcp::Answer::read(request.send().await.unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let messages = mcp::messages(&answer.text);
    assert_eq!(messages.len(), 2, "{}", answer.text);
    let real = messages
        .iter()
        .find(|m| m.get("method").is_none())
        .expect("the list's answer");
    let names: Vec<&str> = real["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["add", "multiply"], "{}", answer.text);
    assert!(!answer.text.contains("delete_all"), "{}", answer.text);
}

/// A list answer the filter cannot read (a lone UTF-16 surrogate, which serde refuses and a
/// JavaScript client reads) becomes a JSON-RPC error; no tool of it reaches the caller.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_answer_that_is_not_json_becomes_a_jsonrpc_error() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    let raw = r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"delete_all\ud800"}]}}"#;
    let resp = client()
        .post(gw.url("/mcp"))
        .bearer_auth(&alice)
        .header("x-test-raw-answer", raw)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("delete_all"), "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["id"], 5, "{error}");
    assert_eq!(error["error"]["data"]["reason"], "rbac.list_unreadable");
    assert_warnings(&gw, "mcp", &[&["rbac.list_unreadable"]]).await;
}

/// A list request whose answer could not be told apart (no id, or an id another message of the
/// batch shares as clients compare ids) is refused before it reaches the server: its answer
/// could otherwise reach the client unfiltered.
#[tokio::test(flavor = "multi_thread")]
async fn list_requests_with_ambiguous_ids_are_refused() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    for body in [
        json!({"jsonrpc": "2.0", "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}),
        json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 1.0, "method": "ping"}
        ]),
        json!([
            {"jsonrpc": "2.0", "id": 0, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": -0.0, "method": "tools/list"}
        ]),
        json!([
            {"jsonrpc": "2.0", "id": "3", "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "prompts/list"}
        ]),
    ] {
        let resp = client()
            .post(gw.url("/mcp"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("list.ambiguous_id"), "{body}: {text}");
    }
    assert!(
        up.recorder.requests().is_empty(),
        "nothing reached the server"
    );
}

/// The 8 MiB bound is for list answers: once a stream's list requests are answered, a batch's
/// other answer of any size passes whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_answer_after_the_filtered_list_passes_whole() {
    let up = TestUpstream::start().await;
    let gw = gateway(&up).await;
    let alice = token("alice@example.com", "math-users");
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    ]);
    let padding = 9 << 20;
    let resp = client()
        .post(gw.url("/mcp"))
        .bearer_auth(&alice)
        .header("x-test-answer", "sse-batch")
        .header("x-test-other-bytes", padding.to_string())
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let answers = mcp::messages(&text);
    assert_eq!(answers.len(), 2, "{}", &text[..text.len().min(300)]);
    assert_eq!(answers[0]["id"], 1);
    let names: Vec<&str> = answers[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "multiply"], "the list is filtered");
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(
        answers[1]["result"]["padding"].as_str().map(str::len),
        Some(padding),
        "the other answer arrives whole"
    );
}

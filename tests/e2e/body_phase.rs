//! The body phase, with an operator's own plugin (gateway/examples/custom_plugin.rs): a
//! rejection means the upstream sees no request at all; an allowed request goes through and the
//! plugin's response phase runs.

use serde_json::{json, Value};
use tollgate_testkit::{client, GatewayBuilder};

use crate::common::example_bin;
use crate::common::upstream::TestUpstream;

fn config(up: &TestUpstream) -> String {
    format!(
        r#"
[plugin.no-falcon]
type = "forbidden-words"
pattern = "(?i)project falcon"
message = "that project is confidential"

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["no-falcon"]

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true }}
plugins = ["no-falcon"]
"#,
        u = up.url()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn body_rejection_never_reaches_the_upstream() {
    let up = TestUpstream::start().await;
    let gw = GatewayBuilder::new(example_bin(), &config(&up))
        .start()
        .await;
    let client = client();

    let call = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {"name": "search", "arguments": {"q": "Project Falcon plans"}}});
    let resp = client
        .post(gw.url("/mcp"))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "per-call denial is in band");
    assert_eq!(
        resp.headers()["x-tollgate-reason"],
        "example.forbidden_word"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 42);
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["message"], "that project is confidential");

    let big_prompt = format!("{} project falcon", "x".repeat(200_000));
    let message = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": big_prompt}]});
    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error");

    assert!(
        up.recorder.requests().is_empty(),
        "the upstream must see no request at all"
    );

    // A clean request of the same size goes through whole, and the response phase ran.
    let clean = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x".repeat(200_000)}]});
    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .json(&clean)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-example"], "no-falcon");
    let seen = up.recorder.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body.len(),
        serde_json::to_vec(&clean).unwrap().len()
    );
}

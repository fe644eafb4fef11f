//! `tollgate demo` as a newcomer runs it: the printed tokens work, RBAC and the injected provider
//! key are in action, the MCP Python SDK gets 714 from the demo math server, and the federated
//! route serves both demo servers' tools (filtered per caller) in both protocol eras.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tollgate_testkit::{client, eventually, free_addr, python};

use crate::common::tollgate_bin;

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_offline_with_auth_rbac_and_key_injection() {
    let (listen, admin) = (free_addr(), free_addr());
    let mut child = Command::new(tollgate_bin())
        .args([
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start demo");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = Demo(child);
    let banner = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("banner line");
            text.push_str(&line);
            text.push('\n');
            if line.contains("claude") && text.contains("BOB_TOKEN") {
                break;
            }
        }
        text
    })
    .await
    .unwrap();
    let token = |name: &str| -> String {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {name}=")))
            .expect("token in banner")
            .to_string()
    };
    let (alice, bob) = (token("ALICE_TOKEN"), token("BOB_TOKEN"));
    let client = client();
    eventually("the demo is ready", Duration::from_secs(20), async || {
        client
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let mcp_url = format!("http://{listen}/mcp");

    let (code, out, log) = python::run(
        "mcp_client.py",
        vec![
            "--url".into(),
            mcp_url.clone(),
            "--header".into(),
            format!("Authorization: Bearer {alice}"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(out["result"], "714");
    let (code, out, log) = python::run(
        "mcp_client.py",
        vec![
            "--url".into(),
            mcp_url.clone(),
            "--header".into(),
            format!("Authorization: Bearer {bob}"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(out["tools"], json!([]));
    assert_eq!(out["error"]["code"], -32001);

    // The federated route: both servers' tools behind one endpoint, in both protocol eras.
    let tools_url = format!("http://{listen}/tools");
    for mode in ["auto", "legacy"] {
        let federated = |token: &str, call: &str| {
            vec![
                "--url".into(),
                tools_url.clone(),
                "--mode".into(),
                mode.into(),
                "--header".into(),
                format!("Authorization: Bearer {token}"),
                "--call".into(),
                call.into(),
            ]
        };
        let (code, out, log) =
            python::run("mcp_client.py", federated(&alice, "math__multiply")).await;
        assert_eq!(code, 0, "{log}");
        assert_eq!(
            out["tools"],
            json!([
                "math__add",
                "math__multiply",
                "text__count_words",
                "text__upper"
            ]),
            "{mode}"
        );
        assert_eq!(out["result"], "714", "{mode}");
        assert_eq!(out["era"], if mode == "auto" { "modern" } else { "legacy" });
        let (code, out, log) =
            python::run("mcp_client.py", federated(&bob, "math__multiply")).await;
        assert_eq!(code, 0, "{log}");
        assert_eq!(
            out["tools"],
            json!(["text__count_words", "text__upper"]),
            "{mode}"
        );
        assert_eq!(out["error"]["code"], -32001, "{mode}");
    }

    let resp = client
        .post(&mcp_url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("resource_metadata="));

    let body = json!({"model": "tollgate-echo-1", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hello gateway"}]});
    let resp = client
        .post(format!("http://{listen}/anthropic/v1/messages"))
        .header("x-api-key", &alice)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("message_stop") && text.contains("gateway"),
        "{text}"
    );
}

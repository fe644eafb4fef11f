//! `api-key`: keys the gateway issues, created through the admin API, authenticate on every
//! replica (the Anthropic Python SDK uses one as its API key), carry their identity to the
//! plugins after them, never reach the upstream, and are refused everywhere at once when
//! revoked, in the caller's protocol and without saying why.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tollgate::demo::{DemoUpstreams, EchoOptions};
use tollgate_testkit::{client, python, RedisServer, RunningGateway};

use crate::admin_api::{admin_call, TOKEN};
use crate::common::gateway;
use crate::common::upstream::TestUpstream;

const PROVIDER_KEY: &str = "sk-ant-gateway-held-api-key-tests-0123";

fn config(redis: &str, llm: SocketAddr, mcp: &str) -> String {
    format!(
        r#"
[plugin.keys]
type = "api-key"
store = {{ redis = "{redis}" }}

[plugin.provider-key]
type = "secret-injection"
header = "x-api-key"
value = {{ env = "E2E_PROVIDER_KEY" }}

[plugin.tool-access]
type = "mcp-rbac"
rules = [{{ tools = ["add"], claim = "team", any_of = ["eng"] }}]

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://{llm}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = ["keys", "provider-key"]

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{mcp}/mcp", kind = "mcp" }}
plugins = ["keys", "tool-access"]
"#
    )
}

async fn create(gw: &RunningGateway, body: Value) -> Value {
    let (status, created) = admin_call(
        gw,
        Method::POST,
        "/admin/v1/plugins/keys/keys",
        Some(TOKEN),
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn llm(gw: &RunningGateway, key: &str) -> (StatusCode, Value) {
    let resp = client()
        .post(gw.url("/anthropic/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "tollgate-echo-1", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn call_add(gw: &RunningGateway, key: &str) -> Value {
    let resp = client()
        .post(gw.url("/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}))
        .send()
        .await
        .unwrap();
    // 200 with the call's answer or an in-band refusal; 401 for a key refused with the head.
    assert!(
        matches!(resp.status().as_u16(), 200 | 401),
        "{}",
        resp.status()
    );
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_made_on_one_replica_work_on_all_and_are_revoked_at_once() {
    let redis = RedisServer::start().await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let echo = EchoOptions {
        expected_api_key: Some(PROVIDER_KEY.into()),
        ..Default::default()
    };
    let demo = DemoUpstreams::start(any, any, echo).unwrap();
    let up = TestUpstream::start().await;
    let config = config(&redis.url(), demo.llm_addr(), &up.url());
    let replica = || {
        gateway(&config)
            .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
            .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
            .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
            .audit_log()
            .start()
    };
    let (a, b) = (replica().await, replica().await);

    let alice = create(
        &a,
        json!({"subject": "alice", "claims": {"team": "eng"}, "name": "laptop", "expires_in": "1d"}),
    )
    .await;
    let bob = create(&a, json!({"subject": "bob", "claims": {"team": "ops"}})).await;
    let alice_key = alice["key"].as_str().unwrap().to_string();
    let bob_key = bob["key"].as_str().unwrap().to_string();
    assert!(
        alice_key.starts_with("tg_") && alice_key.len() == 46,
        "{alice}"
    );
    assert!(alice["expires_at"].as_u64().unwrap() > alice["created_at"].as_u64().unwrap());

    // The other replica knows the key at once; the upstream gets the gateway's key only (the
    // echo model refuses any other).
    let (status, answer) = llm(&b, &alice_key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (code, out, log) = python::run(
        "anthropic_client.py",
        vec![
            "--base-url".into(),
            b.url("/anthropic"),
            "--api-key".into(),
            alice_key.clone(),
            "--only".into(),
            "stream".into(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}\n{out}");

    // The key's claims reach the plugins after it: only team eng may call `add`.
    let allowed = call_add(&b, &alice_key).await;
    assert!(allowed["error"].is_null(), "{allowed}");
    let denied = call_add(&b, &bob_key).await;
    assert_eq!(denied["error"]["data"]["reason"], "rbac.denied", "{denied}");
    let upstream_saw = up.recorder.requests();
    assert!(
        upstream_saw.iter().all(|r| {
            let headers = format!("{:?}", r.headers);
            !headers.contains(&alice_key) && !headers.contains(&bob_key)
        }),
        "a client's key never reaches the upstream"
    );

    // Listed on either replica without the key or its hash.
    let (status, listed) = admin_call(
        &b,
        Method::GET,
        "/admin/v1/plugins/keys/keys",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
    assert!(
        !text.contains(&alice_key) && !text.contains("sha256:"),
        "{listed}"
    );

    // Revoked on A: refused on B at its very next request, like a key that never existed.
    let path = format!(
        "/admin/v1/plugins/keys/keys/{}",
        alice["id"].as_str().unwrap()
    );
    let (status, revoked) = admin_call(&a, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let unknown = "tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut refusals = Vec::new();
    for key in [alice_key.as_str(), unknown] {
        let (status, answer) = llm(&b, key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert_eq!(answer["error"]["type"], "authentication_error", "{answer}");
        refusals.push(answer["error"]["message"].clone());
    }
    assert_eq!(
        refusals[0], refusals[1],
        "revoked and unknown look the same"
    );
    let resp = client()
        .post(b.url("/mcp"))
        .bearer_auth(&alice_key)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let answer: Value = resp.json().await.unwrap();
    // Refused with the head, before the body (and its id) is read: as `jwt` does.
    assert_eq!(answer["error"]["code"], -32002, "{answer}");
    assert_eq!(answer["error"]["data"]["reason"], "key.invalid", "{answer}");
    let (status, _) = llm(&a, &bob_key).await;
    assert_eq!(status, StatusCode::OK, "the other key still works");

    // The admin calls are audited with the key's id and subject, never the key.
    let audit = std::fs::read_to_string(a.dir().join("audit.jsonl")).unwrap_or_default();
    let created = audit
        .lines()
        .find(|l| l.contains("created key"))
        .expect("the creation is audited");
    assert!(created.contains(alice["id"].as_str().unwrap()), "{created}");
    assert!(audit.lines().any(|l| l.contains("revoked key")), "{audit}");
    for gw in [&a, &b] {
        let audit = std::fs::read_to_string(gw.dir().join("audit.jsonl")).unwrap_or_default();
        assert!(
            !audit.contains(&alice_key) && !audit.contains(&bob_key),
            "no key in the audit log"
        );
        let log = gw.log();
        assert!(
            !log.contains(&alice_key) && !log.contains(&bob_key) && !log.contains(TOKEN),
            "no key in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_store_keys_are_refused_and_nothing_passes() {
    let up = TestUpstream::start().await;
    // A port nothing listens on: the store is down.
    let config = config(
        "redis://127.0.0.1:9",
        "127.0.0.1:9".parse().unwrap(),
        &up.url(),
    );
    let gw = gateway(&config)
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    let (status, answer) = llm(&gw, "tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["type"], "api_error", "{answer}");
    let (status, answer) = llm(&gw, "sk-ant-my-own-laptop-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(up.recorder.requests().is_empty());
}

/// Runs `tollgate keys ARGS` with `env`; its exit status, standard output and standard error.
fn keys_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    tollgate_cli(&[&["keys"], args].concat(), env)
}

/// Runs `tollgate ARGS` with `env`; its exit status, standard output and standard error.
pub fn tollgate_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = std::process::Command::new(crate::common::tollgate_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("tollgate keys runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `tollgate keys create|list|revoke` drive the admin API of the gateway a configuration
/// describes; `tollgate keys generate` makes a key for a read-only key file, which the gateway
/// reloads when it is edited.
#[tokio::test(flavor = "multi_thread")]
async fn the_keys_command_creates_lists_revokes_and_generates() {
    let redis = RedisServer::start().await;
    let up = TestUpstream::start().await;
    let config = config(&redis.url(), "127.0.0.1:9".parse().unwrap(), &up.url());
    let gw = gateway(&config)
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
        .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
        .start()
        .await;
    let path = gw.config_path();
    let path = path.to_str().unwrap();
    let env = [
        ("TOLLGATE_ADMIN_TOKEN", TOKEN),
        ("E2E_PROVIDER_KEY", PROVIDER_KEY),
    ];
    let (ok, out, err) = keys_cli(
        &[
            "create",
            "-c",
            path,
            "--subject",
            "carol",
            "--claim",
            "team=eng",
            "--expires-in",
            "30d",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["claims"]["team"], "eng");
    assert!(call_add(&gw, &key).await["error"].is_null());
    let (ok, out, _) = keys_cli(&["list", "-c", path, "--subject", "carol"], &env);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["keys"][0]["id"], created["id"]);
    assert!(!out.contains(&key), "list never shows a key");
    let (ok, _, err) = keys_cli(
        &["revoke", "-c", path, created["id"].as_str().unwrap()],
        &env,
    );
    assert!(ok, "{err}");
    let answer = call_add(&gw, &key).await;
    assert_eq!(answer["error"]["data"]["reason"], "key.invalid", "{answer}");
    let (ok, _, err) = keys_cli(&["revoke", "-c", path, "key_0000000000000000"], &env);
    assert!(!ok && err.contains("no key"), "{err}");
    let (ok, _, err) = keys_cli(&["list", "-c", path], &[("E2E_PROVIDER_KEY", PROVIDER_KEY)]);
    assert!(
        !ok && err.contains("TOLLGATE_ADMIN_TOKEN"),
        "without the token's variable: {err}"
    );

    // A read-only key file: the entry `generate` prints, the key it shows once.
    let (ok, entry, err) = keys_cli(
        &["generate", "--subject", "dave", "--claim", "team=eng"],
        &[],
    );
    assert!(ok, "{err}");
    let key = err
        .split_whitespace()
        .find(|w| w.starts_with("tg_"))
        .expect("the key on standard error")
        .to_string();
    assert!(
        !entry.contains(&key) && entry.contains("sha256:"),
        "{entry}"
    );
    let file = gw.dir().join("keys.toml");
    std::fs::write(&file, &entry).unwrap();
    let file_config = format!(
        "[plugin.keys]\ntype = \"api-key\"\nstore = {{ file = \"{}\" }}\n\n\
         [plugin.tool-access]\ntype = \"mcp-rbac\"\n\
         rules = [{{ tools = [\"add\"], claim = \"team\", any_of = [\"eng\"] }}]\n\n\
         [[route]]\nname = \"mcp\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{}/mcp\", kind = \"mcp\" }}\nplugins = [\"keys\", \"tool-access\"]\n",
        file.display(),
        up.url()
    );
    let files = gateway(&file_config).start().await;
    assert!(call_add(&files, &key).await["error"].is_null());
    // Revoked by editing the file: the gateway reloads it.
    std::fs::write(&file, format!("{}\nrevoked_at = 1\n", entry.trim_end())).unwrap();
    tollgate_testkit::eventually(
        "the edited key file is reloaded",
        std::time::Duration::from_secs(10),
        async || call_add(&files, &key).await["error"]["data"]["reason"] == "key.invalid",
    )
    .await;
}

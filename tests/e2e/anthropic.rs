//! The Anthropic Messages API through the gateway with the official Python SDK, and the
//! `secret-injection` plugin proven by an upstream that only accepts the gateway's key.

use std::net::SocketAddr;

use serde_json::Value;
use tollgate::demo::{DemoUpstreams, EchoOptions};
use tollgate_testkit::{client, python};

use crate::common::gateway;
use crate::common::upstream::TestUpstream;

const PROVIDER_KEY: &str = "sk-ant-gateway-held-0123456789";

fn config(llm: SocketAddr, inject: bool) -> String {
    let plugins = if inject { "[\"provider-key\"]" } else { "[]" };
    format!(
        r#"
[plugin.provider-key]
type = "secret-injection"
header = "x-api-key"
value = {{ env = "E2E_PROVIDER_KEY" }}

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://{llm}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = {plugins}
"#
    )
}

async fn sdk(gw_url: String) -> (i32, Value, String) {
    python::run(
        "anthropic_client.py",
        vec![
            "--base-url".into(),
            gw_url,
            "--api-key".into(),
            "client-laptop-key".into(),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_create_and_stream_with_the_injected_key() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let echo = EchoOptions {
        expected_api_key: Some(PROVIDER_KEY.into()),
        ..Default::default()
    };
    let demo = DemoUpstreams::start(any, any, echo).unwrap();

    let gw = gateway(&config(demo.llm_addr(), true))
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    let (code, out, log) = sdk(gw.url("/anthropic")).await;
    assert_eq!(code, 0, "{log}\ngateway log:\n{}", gw.log());
    assert!(
        out["create"]["text"]
            .as_str()
            .unwrap()
            .contains("hello gateway"),
        "{out}"
    );
    assert!(
        out["create"]["output_tokens"].as_u64().unwrap() > 0,
        "{out}"
    );
    assert!(
        out["stream"]["text"]
            .as_str()
            .unwrap()
            .contains("hello gateway"),
        "{out}"
    );
    assert!(
        out["stream"]["chunks"].as_u64().unwrap() > 1,
        "streamed in several deltas: {out}"
    );
    assert!(out["count_tokens"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(out["models"][0], "tollgate-echo-1");
    assert!(
        !gw.log().contains(PROVIDER_KEY),
        "the key must never be logged"
    );

    // Without injection the client's own key reaches the upstream, which refuses it: the check
    // above is real.
    let plain = gateway(&config(demo.llm_addr(), false))
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    let (code, out, log) = sdk(plain.url("/anthropic")).await;
    assert_eq!(code, 3, "{log}");
    assert_eq!(out["error"]["status"], 401, "{out}");
    demo.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_never_go_upstream_and_versions_pass() {
    let up = TestUpstream::start().await;
    let gw = gateway(&config(up.addr, true))
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .start()
        .await;
    let resp = client()
        .get(gw.url("/anthropic/v1/models"))
        .header("authorization", "Bearer client-token")
        .header("x-api-key", "client-key")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-04-04")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["uri"], "/v1/models");
    assert_eq!(seen["headers"]["x-api-key"], PROVIDER_KEY);
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(seen["headers"]["anthropic-beta"], "tools-2024-04-04");
}

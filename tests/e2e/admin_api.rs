//! The admin API on the admin listener: off without `[server] admin_token`, the bearer token
//! required and never logged, plugin instances listed, bad calls answered with JSON errors, every
//! call audited.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tollgate_testkit::{client, eventually, RunningGateway};

use crate::common::gateway;

/// The admin token of these tests (a test value; 32 characters and more).
pub const TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

const PLUGINS: &str = "[plugin.pins]\ntype = \"mcp-tool-pin\"\n\n\
     [plugin.guard]\ntype = \"prompt-guard\"\nrules = [{ builtin = \"email\", action = \"mask\" }]\n\n\
     [[route]]\nname = \"web\"\nmatch = { path_prefix = \"/\" }\n\
     upstream = { url = \"http://127.0.0.1:9\" }\n";

/// The admin API's URL for `path` on `gw`.
pub fn admin_url(gw: &RunningGateway, path: &str) -> String {
    format!("http://{}{path}", gw.admin)
}

/// A call of the admin API with `token` (none when `None`): its status and JSON body.
pub async fn admin_call(
    gw: &RunningGateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = client().request(method, admin_url(gw, path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the admin listener answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let gw = gateway(PLUGINS).start().await;
    let (status, body) = admin_call(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/plugins",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "admin_api_off", "{body}");
}

#[tokio::test]
async fn calls_need_the_token_and_are_audited_without_it() {
    let gw = gateway(PLUGINS)
        .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
        .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
        .audit_log()
        .start()
        .await;
    let get = reqwest::Method::GET;
    let wrong = format!("{TOKEN}x");
    for token in [None, Some("short"), Some(wrong.as_str())] {
        let (status, body) = admin_call(&gw, get.clone(), "/admin/v1/plugins", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) = admin_call(&gw, get.clone(), "/admin/v1/plugins", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<(&str, &str)> = body["plugins"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("guard", "prompt-guard"), ("pins", "mcp-tool-pin")],
        "{body}"
    );

    let (status, body) = admin_call(
        &gw,
        get.clone(),
        "/admin/v1/plugins/nope/x",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &"no_plugin".into())
    );
    let (status, body) = admin_call(
        &gw,
        get.clone(),
        "/admin/v1/plugins/guard/anything",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &"not_found".into()),
        "a plugin without operations"
    );
    let (status, body) = admin_call(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/plugins/pins/pins/approve",
        Some(TOKEN),
        Some(&serde_json::json!({"route": "web"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing field `tool`"),
        "{body}"
    );
    let huge = client()
        .post(admin_url(&gw, "/admin/v1/plugins/pins/pins/approve"))
        .bearer_auth(TOKEN)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect("answered");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let audit_file = gw.dir().join("audit.jsonl");
    let records = eventually("admin calls audited", Duration::from_secs(5), async || {
        let text = std::fs::read_to_string(&audit_file).unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "admin")
            .collect();
        (records.len() >= 7).then_some(records)
    })
    .await;
    let refused = records
        .iter()
        .filter(|r| r["status"] == 401 && r["decision"] == "rejected")
        .count();
    assert_eq!(refused, 3, "{records:?}");
    assert!(records.iter().any(|r| r["path"] == "/admin/v1/plugins"
        && r["status"] == 200
        && r["client"] == "127.0.0.1"));
    let everything = std::fs::read_to_string(&audit_file).unwrap_or_default() + &gw.log();
    assert!(
        !everything.contains(TOKEN) && !everything.contains(&wrong),
        "no token in the audit log or the gateway's log"
    );
}

#[test]
fn a_short_or_missing_admin_token_is_a_located_error() {
    let source = "[server]\nadmin_token = { env = \"TOLLGATE_TEST_SHORT_ADMIN_TOKEN\" }\n\n\
         [[route]]\nname = \"web\"\nmatch = { path_prefix = \"/\" }\n\
         upstream = { url = \"http://127.0.0.1:9\" }\n";
    let (code, output, _) = tollgate_testkit::check(
        &crate::common::tollgate_bin(),
        source,
        &[("TOLLGATE_TEST_SHORT_ADMIN_TOKEN", "too-short")],
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("check.toml:2:15") && output.contains("at least 32 characters"),
        "{output}"
    );
    assert!(!output.contains("too-short"), "the value is never shown");
    let (code, output, _) = tollgate_testkit::check(&crate::common::tollgate_bin(), source, &[]);
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("TOLLGATE_TEST_SHORT_ADMIN_TOKEN"),
        "the missing variable is named: {output}"
    );
}

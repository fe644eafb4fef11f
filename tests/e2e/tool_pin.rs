//! `mcp-tool-pin` end to end: a federated route over `tests/python/mcp_fed_server.py
//! --integrity`, whose `rug_pull` tool redefines `echo` after it was listed, and whose `lookup`
//! has a poisoned description; the Python SDK client in both eras.

use serde_json::{json, Value};
use std::time::Duration;
use tollgate_testkit::python::PythonServer;

use tollgate_testkit::{client, eventually, mcp, RunningGateway};

use crate::admin_api::{admin_call, TOKEN};
use crate::common::gateway;
use crate::common::mcp_script::{
    call, only_message, op, run_any_script, run_script, send, Mode, Run,
};

/// The pin plugin with `settings`, and `/mcp` over the server `alpha` at `url`.
fn pinned_route(url: &str, settings: &str) -> String {
    format!(
        "[plugin.pins]\ntype = \"mcp-tool-pin\"\n{settings}\n\n\
         [mcp_server.alpha]\nurl = \"{url}\"\n\n\
         [[route]]\nname = \"tools\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ kind = \"mcp\", servers = [\"alpha\"] }}\nplugins = [\"pins\"]\n"
    )
}

/// The records of an audit log file so far.
fn audit_records(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn integrity_server() -> PythonServer {
    PythonServer::start_with_args("mcp_fed_server.py", &["--name", "alpha", "--integrity"]).await
}

/// Whether a `list_tools` step listed `tool`.
fn lists(run: &Run, step: usize, tool: &str) -> bool {
    run.names(step, "tools").iter().any(|name| name == tool)
}

/// Asserts that step `step` was refused by the pin plugin for `reason`.
fn refused(run: &Run, step: usize, reason: &str) {
    let error = run.error(step);
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(error["data"]["reason"], reason, "{error}");
}

async fn warnings(gw: &RunningGateway, reason: &str) -> f64 {
    let series = format!(r#"tollgate_plugin_warnings_total{{reason="{reason}",route="tools"}}"#);
    tollgate_testkit::prometheus::sample(&gw.metrics().await, &series).unwrap_or(0.0)
}

#[tokio::test]
async fn a_rug_pull_is_hidden_and_its_calls_refused_even_after_a_restart() {
    let server = integrity_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("pins.json");
    let config = pinned_route(
        &server.url("/mcp"),
        &format!(
            "mode = \"tofu\"\nstore = {{ file = {:?} }}",
            store.display().to_string()
        ),
    );
    let gw = gateway(&config).audit_log().start().await;
    let first = run_script(
        &gw,
        Mode::Legacy,
        &json!([
            op("list_tools"),
            call("alpha__echo", json!({"text": "hi"})),
            call("alpha__rug_pull", json!({}))
        ]),
        &[],
    )
    .await;
    assert!(lists(&first, 0, "alpha__echo"));
    assert_eq!(first.text(1), "alpha:hi");
    assert!(
        !lists(&first, 0, "alpha__lookup"),
        "a poisoned description is hidden from the start"
    );
    for mode in Mode::BOTH {
        let run = run_script(
            &gw,
            mode,
            &json!([
                op("list_tools"),
                call("alpha__echo", json!({"text": "x"})),
                call("alpha__add", json!({"a": 1, "b": 2})),
                call("alpha__lookup", json!({"word": "w"})),
            ]),
            &[],
        )
        .await;
        assert!(
            !lists(&run, 0, "alpha__echo"),
            "{mode:?}: the redefined tool is hidden"
        );
        assert!(lists(&run, 0, "alpha__add"), "{mode:?}: the others stay");
        refused(&run, 1, "pin.changed");
        assert_eq!(run.text(2), "3", "{mode:?}");
        refused(&run, 3, "pin.suspicious");
    }
    assert!(warnings(&gw, "pin.changed").await >= 1.0);
    assert!(warnings(&gw, "pin.suspicious").await >= 1.0);
    let audit_file = gw.dir().join("audit.jsonl");
    let refusal = eventually("the refusal audited", Duration::from_secs(5), async || {
        audit_records(&audit_file)
            .into_iter()
            .find(|record| record["reason"] == "pin.changed")
    })
    .await;
    let detail = refusal["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("pinned sha256:") && detail.contains(", listed sha256:"),
        "the audit names both hashes: {refusal}"
    );
    let hidden = audit_records(&audit_file)
        .into_iter()
        .find(|r| {
            r["mcp"][0]["method"] == "tools/list"
                && r["warnings"].to_string().contains("pin.changed")
        })
        .expect("the hiding listing audited");
    let notes = hidden["notes"].to_string();
    assert!(
        notes.contains("pin.changed alpha__echo: pinned sha256:")
            && notes.contains("listed sha256:"),
        "a hidden tool's record names it with both hashes: {hidden}"
    );
    assert!(notes.contains("pin.suspicious alpha__lookup: "), "{hidden}");
    drop(gw);

    // A new gateway process with the same store: the pin is still the first definition.
    let gw = gateway(&config).start().await;
    let call_echo = mcp::modern_request(
        3,
        "tools/call",
        Some(json!({"name": "alpha__echo", "arguments": {"text": "x"}})),
    );
    let answer = send(mcp::modern_post(&client(), &gw.url("/mcp"), &call_echo)).await;
    let message = only_message(&answer);
    assert_eq!(
        message["error"]["data"]["reason"], "pin.changed",
        "{message}"
    );
    let run = run_script(&gw, Mode::Auto, &json!([op("list_tools")]), &[]).await;
    assert!(
        !lists(&run, 0, "alpha__echo"),
        "still hidden after a restart"
    );
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&store).expect("the store file")).unwrap();
    assert!(
        stored["pins"]["tools"]["alpha__echo"]["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{stored}"
    );
}

/// The hash `tool` was last listed with on route `tools`, from the admin API's pin listing.
async fn listed_hash(gw: &RunningGateway, tool: &str) -> String {
    let (status, pins) = admin_call(
        gw,
        reqwest::Method::GET,
        "/admin/v1/plugins/pins/pins?route=tools",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{pins}");
    let pin = &pins["pins"]["tools"][tool];
    assert_ne!(pin["seen"], pin["hash"], "{pins}");
    assert_eq!(
        pin["seen_definition"]["name"], tool,
        "the new definition, for review: {pins}"
    );
    pin["seen"].as_str().unwrap_or_default().to_string()
}

/// Approves `hash` for `tool` on route `tools` through `gw`'s admin API.
async fn approve(gw: &RunningGateway, tool: &str, hash: &str) -> (reqwest::StatusCode, Value) {
    admin_call(
        gw,
        reqwest::Method::POST,
        "/admin/v1/plugins/pins/pins/approve",
        Some(TOKEN),
        Some(&json!({"route": "tools", "tool": tool, "hash": hash})),
    )
    .await
}

#[tokio::test]
async fn an_operator_approves_a_changed_tool_through_the_admin_api() {
    let server = integrity_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("pins.json");
    let config = pinned_route(
        &server.url("/mcp"),
        &format!("store = {{ file = {:?} }}", store.display().to_string()),
    );
    let gw = gateway(&config)
        .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
        .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
        .audit_log()
        .start()
        .await;
    let steps = json!([
        op("list_tools"),
        call("alpha__rug_pull", json!({})),
        op("list_tools"),
        call("alpha__echo", json!({"text": "x"})),
    ]);
    let run = run_script(&gw, Mode::Legacy, &steps, &[]).await;
    refused(&run, 3, "pin.changed");
    let seen = listed_hash(&gw, "alpha__echo").await;
    let (status, body) = approve(&gw, "alpha__echo", "sha256:0000").await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_seen", "{body}");
    let (status, body) = approve(&gw, "alpha__nope", &seen).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    let (status, body) = approve(&gw, "alpha__echo", &seen).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["approved"], seen.as_str());
    let old = body["replaced"].as_str().unwrap_or_default().to_string();
    assert!(old.starts_with("sha256:") && old != seen, "{body}");

    for mode in Mode::BOTH {
        let run = run_script(
            &gw,
            mode,
            &json!([
                op("list_tools"),
                call("alpha__echo", json!({"text": "back"}))
            ]),
            &[],
        )
        .await;
        assert!(lists(&run, 0, "alpha__echo"), "{mode:?}: approved");
        assert!(!lists(&run, 0, "alpha__lookup"), "{mode:?}: still poisoned");
        assert!(run.text(1).contains("back"), "{mode:?}: {}", run.out);
    }
    let audit_file = gw.dir().join("audit.jsonl");
    let record = eventually("the approval audited", Duration::from_secs(5), async || {
        audit_records(&audit_file)
            .into_iter()
            .find(|r| r["kind"] == "admin" && r["status"] == 200 && r["change"].is_string())
    })
    .await;
    assert_eq!(record["plugin"], "pins");
    assert_eq!(
        record["change"],
        format!("approved tool `alpha__echo` on route `tools`: pinned {seen} (was {old})").as_str()
    );
    drop(gw);
    // The approval is in the store: a new process trusts the new definition at once.
    let gw = gateway(&config).start().await;
    let call_echo = mcp::modern_request(
        3,
        "tools/call",
        Some(json!({"name": "alpha__echo", "arguments": {"text": "kept"}})),
    );
    let answer = send(mcp::modern_post(&client(), &gw.url("/mcp"), &call_echo)).await;
    let message = only_message(&answer);
    assert!(message["error"].is_null(), "{message}");
}

#[tokio::test]
async fn warn_mode_lets_a_changed_tool_through_and_counts_it() {
    let server = integrity_server().await;
    let config = pinned_route(&server.url("/mcp"), "on_change = \"warn\"");
    let gw = gateway(&config).start().await;
    let steps = json!([
        op("list_tools"),
        call("alpha__rug_pull", json!({})),
        op("list_tools"),
        call("alpha__echo", json!({"text": "still"})),
    ]);
    let run = run_script(&gw, Mode::Auto, &steps, &[]).await;
    assert!(lists(&run, 2, "alpha__echo"), "warned, not hidden");
    assert_eq!(run.text(3), "alpha:still");
    assert!(
        !lists(&run, 2, "alpha__lookup"),
        "suspicious tools are hidden in warn mode too"
    );
    assert!(
        warnings(&gw, "pin.changed").await >= 2.0,
        "the listing and the call"
    );
}

#[tokio::test]
async fn lock_mode_allows_only_the_locked_definitions_and_a_bad_lock_is_a_located_error() {
    let server = integrity_server().await;
    // `tollgate mcp lock` lists the route through its servers, as clients see it.
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("lock-source.toml");
    std::fs::write(&config_file, pinned_route(&server.url("/mcp"), "")).expect("config");
    let lock_file = dir.path().join("tools.lock");
    let output = std::process::Command::new(crate::common::tollgate_bin())
        .args(["mcp", "lock", "-c"])
        .arg(&config_file)
        .args(["--route", "tools", "-o"])
        .arg(&lock_file)
        .output()
        .expect("tollgate mcp lock");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("tools of route `tools` locked"), "{stderr}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(&lock_file).expect("the lock")).expect("JSON");
    let add = written["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == "alpha__add"))
        .unwrap_or_else(|| panic!("alpha__add locked: {written}"));
    assert_eq!(add["route"], "tools");
    assert!(add["hash"]
        .as_str()
        .unwrap_or_default()
        .starts_with("sha256:"));
    assert_eq!(
        add["definition"]["name"], "alpha__add",
        "the definition, for review"
    );
    let settings = format!(
        "mode = \"lock\"\nlock_file = {:?}",
        lock_file.display().to_string()
    );
    let gw = gateway(&pinned_route(&server.url("/mcp"), &settings))
        .start()
        .await;
    let steps = json!([
        op("list_tools"),
        call("alpha__add", json!({"a": 2, "b": 2})),
        call("alpha__add_tool", json!({"name": "extra"})),
        op("list_tools"),
        call("alpha__extra", json!({"text": "x"})),
    ]);
    for mode in Mode::BOTH {
        let run = run_script(&gw, mode, &steps, &[]).await;
        assert!(lists(&run, 0, "alpha__add"), "{mode:?}: locked");
        assert!(
            !lists(&run, 0, "alpha__lookup"),
            "{mode:?}: locked, but suspicious"
        );
        assert_eq!(run.text(1), "4");
        assert!(!lists(&run, 3, "alpha__extra"), "{mode:?}: not in the lock");
        refused(&run, 4, "pin.unknown");
    }

    // A broken lock is refused by the running gateway, which keeps the last good one.
    std::fs::write(&lock_file, "{\"tools\": 7}").expect("break the lock");
    gw.signal("HUP");
    eventually("the reload refused", Duration::from_secs(10), async || {
        let scrape = gw.metrics().await;
        tollgate_testkit::prometheus::sample(
            &scrape,
            r#"tollgate_config_reloads_total{result="error"}"#,
        )
        .filter(|n| *n >= 1.0)
    })
    .await;
    let run = run_script(&gw, Mode::Auto, &steps, &[]).await;
    assert_eq!(run.text(1), "4", "the last good lock still serves");
    refused(&run, 4, "pin.unknown");
    let (code, output, _) = tollgate_testkit::check(
        &crate::common::tollgate_bin(),
        &pinned_route(&server.url("/mcp"), &settings),
        &[],
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("check.toml:4:") && output.contains("not a tool lock file"),
        "located at `lock_file`: {output}"
    );
}

#[tokio::test]
async fn a_plain_mcp_route_is_pinned_too() {
    let server = integrity_server().await;
    let config = format!(
        "[plugin.pins]\ntype = \"mcp-tool-pin\"\n\n\
         [[route]]\nname = \"tools\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
         upstream = {{ url = \"{}\", kind = \"mcp\" }}\nplugins = [\"pins\"]\n",
        server.url("/mcp")
    );
    let gw = gateway(&config).start().await;
    let steps = json!([
        op("list_tools"),
        call("rug_pull", json!({})),
        op("list_tools"),
        call("echo", json!({"text": "x"})),
        call("add", json!({"a": 1, "b": 1})),
    ]);
    for mode in Mode::BOTH {
        let run = run_any_script(&gw, "/mcp", mode, &steps, &[]).await;
        if mode == Mode::Legacy {
            assert!(lists(&run, 0, "echo"), "pinned at its first listing");
        }
        assert!(!lists(&run, 2, "echo"), "{mode:?}: hidden once redefined");
        assert!(!lists(&run, 0, "lookup"), "{mode:?}: poisoned");
        refused(&run, 3, "pin.changed");
        assert_eq!(run.text(4), "2");
    }
}

#[tokio::test]
async fn prompt_guard_masks_or_refuses_what_a_tool_answers() {
    let server = integrity_server().await;
    let guarded = |rules: &str| {
        format!(
            "[plugin.guard]\ntype = \"prompt-guard\"\nrules = {rules}\n\n\
             [mcp_server.alpha]\nurl = \"{}\"\n\n\
             [[route]]\nname = \"tools\"\nmatch = {{ path_prefix = \"/mcp\" }}\n\
             upstream = {{ kind = \"mcp\", servers = [\"alpha\"] }}\nplugins = [\"guard\"]\n",
            server.url("/mcp")
        )
    };
    let steps = json!([
        call("alpha__leak", json!({})),
        call("alpha__echo", json!({"text": "fine"}))
    ]);
    let masking = gateway(&guarded(
        r#"[{ builtin = "aws_access_key", action = "mask" }, { builtin = "email", action = "mask" }]"#,
    ))
    .audit_log()
    .start()
    .await;
    for mode in Mode::BOTH {
        let run = run_script(&masking, mode, &steps, &[]).await;
        let text = run.text(0);
        assert_eq!(
            text, "key <REDACTED:aws_access_key> for <REDACTED:email>",
            "{mode:?}: {}",
            run.out
        );
        let structured = run.ok(0)["structured"].to_string();
        assert!(
            !structured.contains("AKIA") && !structured.contains("ops@example.com"),
            "{mode:?}: structured content is masked too: {structured}"
        );
        assert_eq!(run.text(1), "alpha:fine");
    }
    assert!(warnings(&masking, "guard.result_masked").await >= 2.0);
    let audit_file = masking.dir().join("audit.jsonl");
    let masked = eventually(
        "the masked result audited",
        Duration::from_secs(5),
        async || {
            audit_records(&audit_file)
                .into_iter()
                .find(|r| r["warnings"].to_string().contains("guard.result_masked"))
        },
    )
    .await;
    assert_eq!(
        masked["notes"][0], "guard.result_masked rules aws_access_key, email",
        "the audit names the rules: {masked}"
    );
    assert!(!masked.to_string().contains("AKIA"), "{masked}");

    let refusing = gateway(&guarded(
        r#"[{ builtin = "aws_access_key", action = "reject" }]"#,
    ))
    .start()
    .await;
    for mode in Mode::BOTH {
        let run = run_script(&refusing, mode, &steps, &[]).await;
        let error = run.error(0);
        assert_eq!(error["code"], -32001, "{error}");
        assert_eq!(error["data"]["reason"], "guard.rejected", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("`aws_access_key`"),
            "the rule is named: {error}"
        );
        assert!(!error.to_string().contains("AKIA"), "{error}");
        assert_eq!(run.text(1), "alpha:fine");
    }
}

#[tokio::test]
async fn replicas_share_their_pins_through_redis() {
    let redis = tollgate_testkit::RedisServer::start().await;
    let server = integrity_server().await;
    let config = pinned_route(
        &server.url("/mcp"),
        &format!("store = {{ redis = \"{}\" }}", redis.url()),
    );
    let replica = || {
        gateway(&config)
            .env("TOLLGATE_ADMIN_TOKEN", TOKEN)
            .server_line("admin_token = { env = \"TOLLGATE_ADMIN_TOKEN\" }")
            .start()
    };
    let (a, b) = (replica().await, replica().await);
    // Replica A pins echo as first listed; the server then redefines it.
    let run = run_script(
        &a,
        Mode::Auto,
        &json!([op("list_tools"), call("alpha__rug_pull", json!({}))]),
        &[],
    )
    .await;
    assert!(lists(&run, 0, "alpha__echo"));
    // Replica B never listed the first definition: A's pin, from Redis, decides.
    let steps = json!([op("list_tools"), call("alpha__echo", json!({"text": "x"}))]);
    let run = run_script(&b, Mode::Legacy, &steps, &[]).await;
    assert!(!lists(&run, 0, "alpha__echo"), "{}", run.out);
    assert!(lists(&run, 0, "alpha__add"));
    refused(&run, 1, "pin.changed");
    // And a call on A before it lists again: refused too (B's listing is in Redis).
    let call_echo = mcp::modern_request(
        4,
        "tools/call",
        Some(json!({"name": "alpha__echo", "arguments": {"text": "x"}})),
    );
    let answer = send(mcp::modern_post(&client(), &a.url("/mcp"), &call_echo)).await;
    assert_eq!(
        only_message(&answer)["error"]["data"]["reason"],
        "pin.changed"
    );
    // Approved on A: B, which found the change itself, trusts it from its next call on.
    let seen = listed_hash(&a, "alpha__echo").await;
    let (status, body) = approve(&a, "alpha__echo", &seen).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let answer = send(mcp::modern_post(&client(), &b.url("/mcp"), &call_echo)).await;
    let message = only_message(&answer);
    assert!(
        message["error"].is_null(),
        "approved on the other replica: {message}"
    );
}

#[tokio::test]
async fn an_unreachable_pin_store_hides_unpinned_tools_unless_told_to_fail_open() {
    let server = integrity_server().await;
    let dead = format!("redis://{}", tollgate_testkit::free_addr());
    for (mode, listed) in [("closed", false), ("open", true)] {
        let settings = format!(
            "store = {{ redis = \"{dead}\" }}\nstore_timeout = \"100ms\"\nfailure_mode = \"{mode}\""
        );
        let gw = gateway(&pinned_route(&server.url("/mcp"), &settings))
            .start()
            .await;
        let run = run_script(&gw, Mode::Auto, &json!([op("list_tools")]), &[]).await;
        assert_eq!(lists(&run, 0, "alpha__add"), listed, "{mode}: {}", run.out);
        assert!(
            warnings(&gw, "pin.store_unavailable").await >= 1.0,
            "{mode}"
        );
    }
}

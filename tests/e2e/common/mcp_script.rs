//! The Python SDK client (`tests/python/mcp_client.py`) as MCP tests drive it: a script of
//! steps in one of its two modes, and what its run printed; raw JSON-RPC answers read whole.

use serde_json::{json, Value};
use tollgate_testkit::{mcp, python, RunningGateway};

/// The handshake-era version the client and the gateway speak.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// The error the gateway gives a call whose server failed.
pub const SERVER_FAILED: i64 = -32603;

/// How the Python client connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--mode legacy`: the 2025-11-25 handshake.
    Legacy,
    /// `--mode auto`: `server/discover` first, so 2026-07-28 against the gateway.
    Auto,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Legacy, Mode::Auto];

    pub fn arg(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Auto => "auto",
        }
    }

    /// The era the client reports once connected.
    pub fn era(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Auto => "modern",
        }
    }

    /// The protocol version it speaks, and the gateway speaks to a server that takes it.
    pub fn version(self) -> &'static str {
        match self {
            Mode::Legacy => LEGACY_VERSION,
            Mode::Auto => mcp::MODERN_VERSION,
        }
    }
}

/// A script's `call` step.
pub fn call(name: &str, args: Value) -> Value {
    json!({"op": "call", "name": name, "args": args})
}

/// A script step without arguments (`list_tools`, `listen`, ...).
pub fn op(name: &str) -> Value {
    json!({"op": name})
}

/// What one `mcp_client.py --script` run printed.
pub struct Run {
    /// The mode it ran in.
    pub mode: Mode,
    /// What it printed.
    pub out: Value,
}

/// Runs `steps` with `mcp_client.py --mode <mode>` against the gateway's federated `/mcp`, with
/// `extra` arguments; the test fails unless the client connected, in its mode's era, to the
/// gateway's own MCP server.
pub async fn run_script(gw: &RunningGateway, mode: Mode, steps: &Value, extra: &[&str]) -> Run {
    run_script_at(gw, "/mcp", mode, steps, extra).await
}

/// [`run_script`] against the gateway's federated `path`.
pub async fn run_script_at(
    gw: &RunningGateway,
    path: &str,
    mode: Mode,
    steps: &Value,
    extra: &[&str],
) -> Run {
    let run = run_any_script(gw, path, mode, steps, extra).await;
    assert_eq!(run.out["server_name"], "tollgate", "{mode:?}: {}", run.out);
    run
}

/// [`run_script_at`] on any MCP route (a plain one answers with its upstream's server name).
pub async fn run_any_script(
    gw: &RunningGateway,
    path: &str,
    mode: Mode,
    steps: &Value,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "--url".to_string(),
        gw.url(path),
        "--mode".into(),
        mode.arg().into(),
        "--script".into(),
        steps.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let (code, out, log) = python::run("mcp_client.py", args).await;
    assert_eq!(code, 0, "{mode:?}: {log}\ngateway log:\n{}", gw.log());
    assert_eq!(out["era"], mode.era(), "{mode:?}: {out}");
    Run { mode, out }
}

impl Run {
    /// Step `i`'s result; the test fails if the step failed.
    pub fn ok(&self, i: usize) -> &Value {
        let step = &self.out["steps"][i];
        assert!(
            step.is_object() && step.get("error").is_none(),
            "{:?}: step {i} failed: {step}\nwhole run: {}",
            self.mode,
            self.out
        );
        step
    }

    /// Step `i`'s JSON-RPC error; the test fails if the step succeeded.
    pub fn error(&self, i: usize) -> &Value {
        let error = &self.out["steps"][i]["error"];
        assert!(
            error.is_object(),
            "{:?}: step {i} should have failed: {}",
            self.mode,
            self.out["steps"][i]
        );
        error
    }

    /// The first text a `call` step answered (not an error result).
    pub fn text(&self, i: usize) -> &str {
        let step = self.ok(i);
        assert_eq!(step["is_error"], false, "{:?}: step {i}: {step}", self.mode);
        step["result"].as_str().unwrap_or_default()
    }

    /// What a `whoami` call answered: `{server, session_id, protocol_version}`.
    pub fn whoami(&self, i: usize) -> Value {
        serde_json::from_str(self.text(i)).expect("whoami answers JSON")
    }

    /// The strings a list step gave under `key` (`tools`, `prompts`, `resources`, ...).
    pub fn names(&self, i: usize, key: &str) -> Vec<String> {
        self.ok(i)[key]
            .as_array()
            .unwrap_or_else(|| panic!("{:?}: step {i} has no {key}", self.mode))
            .iter()
            .map(|name| name.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The text of the first content of a `get_prompt` or `read_resource` step.
    pub fn content(&self, i: usize) -> &str {
        let step = self.ok(i);
        let first = step
            .get("messages")
            .or_else(|| step.get("contents"))
            .and_then(|list| list.get(0))
            .unwrap_or_else(|| panic!("{:?}: step {i} has no content: {step}", self.mode));
        first["text"].as_str().unwrap_or_default()
    }

    /// A whole-run count (`sampling_requests`, `elicitation_requests`).
    pub fn count(&self, key: &str) -> u64 {
        self.out[key].as_u64().unwrap_or_default()
    }

    /// How many notifications with `method` the client received.
    pub fn notifications(&self, method: &str) -> u64 {
        self.out["notifications"][method]
            .as_u64()
            .unwrap_or_default()
    }
}

/// Asserts that a failed step is the gateway's error for `server` failing with `reason`.
pub fn assert_server_failed(error: &Value, server: &str, reason: &str) {
    assert_eq!(error["code"], SERVER_FAILED, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("`{server}`")),
        "the message names {server}: {error}"
    );
    assert_eq!(error["data"]["server"], server, "{error}");
    assert_eq!(error["data"]["reason"], reason, "{error}");
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> mcp::Answer {
    mcp::Answer::read(request.send().await.expect("send"))
        .await
        .expect("read the answer")
}

/// The one JSON-RPC message of an answer.
pub fn only_message(answer: &mcp::Answer) -> Value {
    let mut messages = answer.messages();
    assert_eq!(messages.len(), 1, "{answer:?}");
    messages.remove(0)
}

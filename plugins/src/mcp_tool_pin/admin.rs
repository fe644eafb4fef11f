//! `mcp-tool-pin` on the admin API: read the pins, and approve a tool's changed definition
//! (mode `tofu`; in mode `lock` the lock file is what operators edit).
//!
//! - `GET pins[?route=R]`: the pins, with the last listing that differed from each (`seen`).
//! - `POST pins/approve` `{"route", "tool", "hash"}`: the definition last listed of `tool`, whose
//!   hash is `hash`, becomes its pin; its calls pass again at once, on every replica.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tollgate_plugin_api::{AdminRequest, AdminResponse};

use super::judge::Status;
use super::store::ApproveError;
use super::{Mode, ToolPin};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    route: String,
    tool: String,
    hash: String,
}

/// Answers an admin call of `pin`.
pub async fn answer(pin: &ToolPin, request: &AdminRequest) -> AdminResponse {
    match (&request.method, request.path.as_str()) {
        (&Method::GET, "pins") => list(pin, request).await,
        (&Method::POST, "pins/approve") => match request.json::<Approval>() {
            Ok(approval) => approve(pin, &approval).await,
            Err(refusal) => refusal,
        },
        _ => AdminResponse::not_found(),
    }
}

async fn list(pin: &ToolPin, request: &AdminRequest) -> AdminResponse {
    let route = request.query_param("route");
    match pin.store.list(route.as_deref()).await {
        Ok(pins) => AdminResponse::ok(json!({"mode": mode_name(pin.mode), "pins": pins})),
        Err(e) => unavailable(&e),
    }
}

async fn approve(pin: &ToolPin, approval: &Approval) -> AdminResponse {
    if pin.mode == Mode::Lock {
        return AdminResponse::error(
            StatusCode::CONFLICT,
            "lock_mode",
            "mode \"lock\" trusts the lock file only: edit it (or write it again with \
             `tollgate mcp lock`) and the gateway reloads it",
        );
    }
    let Approval { route, tool, hash } = approval;
    match pin.store.approve_seen(route, tool, hash).await {
        Ok(old) => {
            if let Ok(mut seen) = pin.seen.lock() {
                seen.insert((route.clone(), tool.clone()), Status::Trusted);
            }
            tracing::warn!(plugin = %pin.name, %route, %tool, old = %old.hash, new = %hash, "mcp-tool-pin: an operator approved a tool's new definition");
            AdminResponse::ok(json!({
                "route": route,
                "tool": tool,
                "approved": hash,
                "replaced": old.hash,
            }))
            .with_audit(format!(
                "approved tool `{tool}` on route `{route}`: pinned {hash} (was {})",
                old.hash
            ))
        }
        Err(ApproveError::NoPin) => AdminResponse::error(
            StatusCode::NOT_FOUND,
            "no_pin",
            format!("no pin of tool `{tool}` on route `{route}`"),
        ),
        Err(ApproveError::NotSeen { seen }) => AdminResponse::error(
            StatusCode::CONFLICT,
            "not_seen",
            match seen {
                Some(seen) => format!(
                    "tool `{tool}` was last listed as {seen}, not {hash}: approve what it lists"
                ),
                None => format!("tool `{tool}` lists its pinned definition: nothing to approve"),
            },
        ),
        Err(ApproveError::Unavailable(e)) => unavailable(&e),
    }
}

fn unavailable(error: &str) -> AdminResponse {
    AdminResponse::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the pin store cannot be read or written: {error}"),
    )
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Tofu => "tofu",
        Mode::Lock => "lock",
    }
}

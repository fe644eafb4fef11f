//! What the gateway answers as a server itself: `initialize` (a sealed session over the
//! servers' sessions), `server/discover`, and DELETE of a session.

use std::sync::Arc;

use futures::future::join_all;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::answer::Answer;
use super::client::Client;
use super::jsonrpc::{self, INTERNAL_ERROR};
use super::link::{gateway_info, Era, Probed, HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION};
use super::seal::{ServerSession, SessionState};
use super::{dispatch, Federation, SessionSealer};
use crate::protocol::mcp_headers::MODERN_VERSION;

/// `_meta` key of the server's name and version in a 2026-07-28 result.
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// `initialize` from a 2025-era client: a session on every 2025-era server (opened at once, in
/// parallel), sealed into the id the client gets.
pub(super) async fn initialize(federation: &Federation, message: &Value) -> Answer {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let params = message.get("params");
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .unwrap_or(LATEST_HANDSHAKE_VERSION);
    let version = if HANDSHAKE_VERSIONS.contains(&requested) {
        requested
    } else {
        LATEST_HANDSHAKE_VERSION
    };
    let capabilities = params
        .and_then(|p| p.get("capabilities"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let client_info = params.and_then(|p| p.get("clientInfo")).cloned();
    let opened = join_all(federation.servers.iter().map(|link| async {
        let probed = link.probed().await?;
        let session = match probed.era_for(false) {
            Era::Modern => None,
            Era::Legacy => Some(
                link.open_session_at(version, &capabilities, client_info.as_ref())
                    .await?,
            ),
        };
        Ok::<_, super::link::LinkError>((probed, session))
    }))
    .await;
    let mut probes = Vec::new();
    let mut servers = Vec::new();
    for (link, opened) in federation.servers.iter().zip(opened) {
        match opened {
            Ok((probed, session)) => {
                if let Some(session) = session {
                    servers.push(ServerSession {
                        server: link.name().to_string(),
                        session: session.session,
                        protocol_version: session.version,
                    });
                }
                probes.push(Some(probed));
            }
            Err(e) => {
                // Its calls will open a session when they come; the others serve meanwhile.
                tracing::warn!(server = %link.name(), error = %e, "MCP server left out of a new session");
                probes.push(None);
            }
        }
    }
    let state = SessionState {
        protocol_version: version.to_string(),
        capabilities,
        client_info,
        servers,
    };
    let Some(session_id) = federation.sealer.seal(&state) else {
        return Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &id,
            INTERNAL_ERROR,
            "cannot make a session id",
            "internal",
        );
    };
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": merged_capabilities(&probes),
        "serverInfo": gateway_info(),
    });
    if let Some(instructions) = merged_instructions(federation, &probes) {
        result["instructions"] = instructions.into();
    }
    let mut answer = Answer::json(&jsonrpc::result(&id, result));
    answer.session = Some(session_id);
    answer
}

/// `server/discover`: the versions the gateway serves and what its servers offer together.
pub(super) async fn discover(federation: &Federation, id: &Value) -> Answer {
    let probes = reachable_probes(federation).await;
    let mut versions: Vec<&str> = HANDSHAKE_VERSIONS.to_vec();
    versions.push(MODERN_VERSION);
    let mut result = json!({
        "supportedVersions": versions,
        "capabilities": merged_capabilities(&probes),
        "ttlMs": 0,
        "cacheScope": "public",
        "resultType": "complete",
        "_meta": { META_SERVER_INFO: gateway_info() },
    });
    if let Some(instructions) = merged_instructions(federation, &probes) {
        result["instructions"] = instructions.into();
    }
    Answer::json(&jsonrpc::result(id, result))
}

/// DELETE: the client ends its session; so does the gateway on every server.
pub(super) async fn end(federation: &Federation, headers: &http::HeaderMap) -> Answer {
    let (id, state) = match dispatch::session_client(federation, headers, &Value::Null) {
        Ok(Client::Legacy { id, state }) => (id, state),
        Ok(Client::Modern { .. }) => return Answer::accepted(),
        Err(answer) => return answer,
    };
    let ends = federation.servers.iter().enumerate().map(|(index, link)| {
        let reopened = federation.reopened.get(&(id.clone(), index));
        let sealed = state.server(link.name()).and_then(|s| {
            s.session
                .clone()
                .map(|session| (session, s.protocol_version.clone()))
        });
        async move {
            if let Some(session) =
                reopened.and_then(|r| r.id.clone().map(|id| (id, r.version.clone())))
            {
                link.end_session(&session.0, &session.1).await;
            }
            if let Some((session, version)) = sealed {
                link.end_session(&session, &version).await;
            }
        }
    });
    join_all(ends).await;
    federation.ended.insert(SessionSealer::fingerprint(&id), ());
    Answer::empty(StatusCode::OK)
}

/// What probing each server found (`None` for one that could not be reached).
async fn reachable_probes(federation: &Federation) -> Vec<Option<Arc<Probed>>> {
    join_all(federation.servers.iter().map(|link| link.probed()))
        .await
        .into_iter()
        .map(Result::ok)
        .collect()
}

/// What the servers offer together: a capability any of them has. A single server's are its
/// own, unchanged.
fn merged_capabilities(probes: &[Option<Arc<Probed>>]) -> Value {
    if let [Some(only)] = probes {
        return only.capabilities.clone();
    }
    let probes: Vec<&Arc<Probed>> = probes.iter().flatten().collect();
    let mut merged = Map::new();
    let any = |key: &str| probes.iter().any(|p| p.capabilities.get(key).is_some());
    let any_flag = |key: &str, flag: &str| {
        probes.iter().any(|p| {
            p.capabilities
                .get(key)
                .and_then(|c| c.get(flag))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
    };
    for key in ["tools", "prompts"] {
        if any(key) {
            merged.insert(
                key.into(),
                json!({"listChanged": any_flag(key, "listChanged")}),
            );
        }
    }
    if any("resources") {
        merged.insert(
            "resources".into(),
            json!({
                "subscribe": any_flag("resources", "subscribe"),
                "listChanged": any_flag("resources", "listChanged"),
            }),
        );
    }
    for key in ["logging", "completions"] {
        if any(key) {
            merged.insert(key.into(), json!({}));
        }
    }
    Value::Object(merged)
}

/// The servers' instructions, each under its server's name; `None` when none gave any.
fn merged_instructions(federation: &Federation, probes: &[Option<Arc<Probed>>]) -> Option<String> {
    if let [only] = probes {
        return only.as_ref().and_then(|p| p.instructions.clone());
    }
    let parts: Vec<String> = federation
        .servers
        .iter()
        .zip(probes)
        .filter_map(|(link, probed)| {
            let text = probed.as_ref()?.instructions.as_deref()?;
            Some(format!(
                "{} (tools prefixed `{}__`): {text}",
                link.name(),
                link.spec.prefix
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

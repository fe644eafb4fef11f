//! `tollgate mcp lock`: lists a route's tools as its clients see them and writes the lock file
//! of `mcp-tool-pin`'s mode `lock` (one entry per tool: route, name, hash, definition).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};
use tollgate_plugins::mcp_tool_pin::definition::{definition, hash};
use tollgate_plugins::mcp_tool_pin::lock::{LockFile, LockedTool};

use crate::federation::link::gateway_envelope;
use crate::federation::spec::{Endpoint, HttpEndpoint};
use crate::federation::{
    AnswerBody, Federation, Inbound, Sealer, ServerLink, ServerSpec, SessionSealer,
};
use crate::gateway::Gateway;
use crate::protocol::mcp_headers::{self, MODERN_VERSION};
use crate::routing::{Backend, Route};

/// Why a lock file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LockError(String);

/// A [`LockError`] with `message`.
fn failed(message: impl std::fmt::Display) -> LockError {
    LockError(message.to_string())
}

/// Longest wait for the route's servers.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Pages of `tools/list` read at most.
const MAX_PAGES: usize = 100;

/// Writes the lock file of route `route_name` of the configuration at `config` to `output`
/// (`-`: standard output); the number of tools locked.
pub fn write_lock(
    gateway: &Gateway,
    config: &Path,
    route_name: &str,
    output: &Path,
) -> Result<usize, LockError> {
    let loaded = gateway.load(config).map_err(failed)?;
    let route = loaded
        .routes
        .routes()
        .iter()
        .find(|r| &*r.info.name == route_name)
        .cloned()
        .ok_or_else(|| {
            failed(format!(
                "no route named `{route_name}` in {}",
                config.display()
            ))
        })?;
    let federation = federation_of(&route)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start a runtime: {e}")))?;
    let tools = runtime.block_on(list_tools(&federation))?;
    let lock = LockFile {
        tools: tools
            .iter()
            .filter_map(|tool| {
                Some(LockedTool {
                    route: route_name.to_string(),
                    name: tool.get("name")?.as_str()?.to_string(),
                    hash: hash(tool),
                    definition: definition(tool),
                })
            })
            .collect(),
    };
    let count = lock.tools.len();
    let text = lock.render();
    if output == Path::new("-") {
        print!("{text}");
    } else {
        std::fs::write(output, text)
            .map_err(|e| failed(format!("cannot write {}: {e}", output.display())))?;
    }
    Ok(count)
}

/// The federation that answers the route's clients: its own, or one over its plain upstream.
fn federation_of(route: &Route) -> Result<Arc<Federation>, LockError> {
    if route.info.kind != tollgate_plugin_api::RouteKind::Mcp {
        return Err(failed(format!(
            "route `{}` is not an MCP route",
            route.info.name
        )));
    }
    match &route.backend {
        Backend::Federated(federation) => Ok(federation.clone()),
        Backend::Proxy(upstream) => {
            let url = upstream.url_for(&route.path_prefix);
            let spec = ServerSpec {
                name: Arc::from(&*route.info.name),
                endpoint: Endpoint::Http(HttpEndpoint {
                    url: reqwest::Url::parse(&url)
                        .map_err(|e| failed(format!("bad URL {url}: {e}")))?,
                    headers: HeaderMap::new(),
                    ca_pem: None,
                }),
                prefix: Arc::from(""),
                timeout: TIMEOUT,
            };
            let link = ServerLink::new(spec, Duration::from_secs(5)).map_err(failed)?;
            let sealer = SessionSealer::process_default().map_err(failed)?;
            Ok(Arc::new(Federation::new(
                vec![Arc::new(link)],
                Sealer::Process(sealer),
            )))
        }
    }
}

/// Every tool the federation lists to a 2026-07-28 client, all pages.
async fn list_tools(federation: &Arc<Federation>) -> Result<Vec<Value>, LockError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        mcp_headers::PROTOCOL_VERSION,
        HeaderValue::from_static(MODERN_VERSION),
    );
    headers.insert(mcp_headers::METHOD, HeaderValue::from_static("tools/list"));
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_PAGES {
        let mut params = json!({"_meta": gateway_envelope(&json!({}))});
        if let Some(cursor) = cursor.take() {
            params["cursor"] = cursor;
        }
        let request =
            json!({"jsonrpc": "2.0", "id": page, "method": "tools/list", "params": params});
        let answer = federation
            .serve(Inbound {
                method: &Method::POST,
                headers: &headers,
                body: Some(request),
                traceparent: None,
            })
            .await;
        let response = response_of(answer.body, &json!(page)).await?;
        if let Some(error) = response.get("error") {
            return Err(failed(format!("tools/list failed: {error}")));
        }
        let result = response.get("result").cloned().unwrap_or(Value::Null);
        tools.extend(
            result
                .get("tools")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        match result.get("nextCursor") {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => return Ok(tools),
        }
    }
    Err(failed(format!(
        "the route listed more than {MAX_PAGES} pages of tools"
    )))
}

/// The JSON-RPC response to `id` in an answer (JSON, or an SSE stream).
async fn response_of(body: AnswerBody, id: &Value) -> Result<Value, LockError> {
    use futures::StreamExt;
    let text = match body {
        AnswerBody::Json(bytes) => return serde_json::from_slice(&bytes).map_err(failed),
        AnswerBody::Empty => return Err(failed("the route answered nothing")),
        AnswerBody::Stream(mut stream) => {
            let mut text = Vec::new();
            while let Some(chunk) = stream.next().await {
                text.extend_from_slice(&chunk);
            }
            String::from_utf8_lossy(&text).into_owned()
        }
    };
    for event in tollgate_plugin_api::sse::split_events(&text) {
        let (_, data) = tollgate_plugin_api::sse::event_parts(event);
        if let Ok(message) = serde_json::from_str::<Value>(&data) {
            if message.get("id") == Some(id) {
                return Ok(message);
            }
        }
    }
    Err(failed("the route's stream ended without an answer"))
}

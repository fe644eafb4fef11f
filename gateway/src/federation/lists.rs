//! Merged lists: every server asked at once (each within its timeout), every page of each
//! fetched, names exposed with the server's prefix, the lists joined in the route's server
//! order. A server that fails is left out, and the others' entries are still listed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use http::StatusCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::answer::Answer;
use super::client::Client;
use super::jsonrpc::{self, INTERNAL_ERROR, INVALID_PARAMS};
use super::link::LinkError;
use super::Federation;

/// Most pages fetched of one server's list (a server that pages forever is cut off).
const MAX_PAGES: usize = 100;

/// One entry of a list, read one level deep: the values of its fields (schemas, annotations)
/// stay the server's JSON text, copied as they are into the merged answer.
type Entry = BTreeMap<String, Box<RawValue>>;

/// One server's part of a list.
#[derive(Debug, Clone)]
pub(super) struct Part {
    items: Vec<Entry>,
    /// Its `ttlMs`; `None` when it gave none (a 2025-era server).
    ttl_ms: Option<u64>,
    public: bool,
}

/// List parts servers declared `public` with a `ttlMs`, by server index and list method, kept
/// until they expire or the server says its list changed.
#[derive(Debug, Clone)]
pub(super) struct ListCache(moka::sync::Cache<(usize, &'static str), Arc<(Instant, Part)>>);

impl Default for ListCache {
    fn default() -> Self {
        // A handful of lists per server: the bound only guards against a misconfiguration.
        Self(moka::sync::Cache::new(1024))
    }
}

impl ListCache {
    fn get(&self, index: usize, key: &'static str) -> Option<Part> {
        let cached = self.0.get(&(index, key))?;
        (cached.0 > Instant::now()).then(|| cached.1.clone())
    }

    fn keep(&self, index: usize, key: &'static str, part: &Part) {
        let Some(ttl) = part.ttl_ms.filter(|&ttl| ttl > 0 && part.public) else {
            return;
        };
        let expires = Instant::now() + Duration::from_millis(ttl);
        self.0
            .insert((index, key), Arc::new((expires, part.clone())));
    }

    /// Forgets server `index`'s list that a `notifications/<kind>/list_changed` is about.
    pub(super) fn changed(&self, index: usize, notification: &str) {
        let key = match notification {
            "notifications/tools/list_changed" => "tools",
            "notifications/prompts/list_changed" => "prompts",
            "notifications/resources/list_changed" => {
                self.0.invalidate(&(index, "resourceTemplates"));
                "resources"
            }
            _ => return,
        };
        self.0.invalidate(&(index, key));
    }
}

/// The key of a list method's entries in its result.
fn items_key(method: &str) -> &'static str {
    match method {
        "tools/list" => "tools",
        "prompts/list" => "prompts",
        "resources/list" => "resources",
        _ => "resourceTemplates",
    }
}

/// The field that names an entry: two entries with the same one cannot both be listed.
fn identity_key(method: &str) -> &'static str {
    match method {
        "resources/list" => "uri",
        "resources/templates/list" => "uriTemplate",
        _ => "name",
    }
}

/// Answers a list request with every server's entries.
pub(super) async fn merged(
    federation: &Federation,
    client: &Client,
    id: &Value,
    method: &str,
    message: &Value,
) -> Answer {
    if message
        .pointer("/params/cursor")
        .is_some_and(|c| !c.is_null())
    {
        // Merged lists come whole: the gateway never gives a cursor.
        return Answer::error(
            StatusCode::OK,
            id,
            INVALID_PARAMS,
            "Invalid cursor: this gateway's lists are never paginated",
            "mcp.invalid_cursor",
        );
    }
    let parts = fetch_all(federation, client, method, message).await;
    let key = items_key(method);
    let mut items = Vec::new();
    let mut ttl_ms: Option<u64> = None;
    let mut public = true;
    let mut failed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, part) in parts.into_iter().enumerate() {
        let link = &federation.servers[index];
        match part {
            Ok(part) => {
                for mut item in part.items {
                    expose(federation, index, method, &mut item);
                    let identity = text_field(&item, identity_key(method));
                    if let Some(identity) = identity {
                        if !seen.insert(identity.clone()) {
                            tracing::warn!(server = %link.name(), name = %identity, "an entry with this name is listed already: left out");
                            continue;
                        }
                    }
                    items.push(item);
                }
                ttl_ms = Some(ttl_ms.map_or(part.ttl_ms.unwrap_or(0), |t| {
                    t.min(part.ttl_ms.unwrap_or(0))
                }));
                public &= part.public;
            }
            Err(e) => {
                tracing::warn!(server = %link.name(), error = %e, method, "MCP server left out of a list");
                failed.push((link.name().to_string(), e));
            }
        }
    }
    if failed.len() == federation.servers.len() {
        let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        let reason = failed
            .first()
            .map_or("upstream.unavailable", |(_, e)| e.reason());
        return Answer::error(
            StatusCode::OK,
            id,
            INTERNAL_ERROR,
            &format!("no MCP server could answer: {}", names.join(", ")),
            reason,
        );
    }
    if method == "resources/templates/list" {
        let templates = items
            .iter()
            .filter_map(|t| text_field(t, "uriTemplate"))
            .filter_map(|t| {
                let owner = federation.resource_owners.get(&template_key(&t))?;
                Some((owner, t))
            })
            .collect();
        federation.templates.store(Arc::new(templates));
    }
    let modern = client.is_modern();
    let answer = MergedAnswer {
        jsonrpc: "2.0",
        id,
        result: MergedResult {
            items: std::iter::once((key, items.as_slice())).collect(),
            ttl_ms: modern.then_some(ttl_ms.unwrap_or(0)),
            cache_scope: modern.then_some(if public { "public" } else { "private" }),
            result_type: modern.then_some("complete"),
        },
    };
    match serde_json::to_vec(&answer) {
        Ok(bytes) => Answer::json_bytes(StatusCode::OK, bytes.into()),
        Err(_) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            id,
            INTERNAL_ERROR,
            "cannot write the merged list",
            "internal",
        ),
    }
}

/// A merged list answer, written out with the entries' field values as the servers gave them.
#[derive(Serialize)]
struct MergedAnswer<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: MergedResult<'a>,
}

#[derive(Serialize)]
struct MergedResult<'a> {
    #[serde(flatten)]
    items: BTreeMap<&'static str, &'a [Entry]>,
    #[serde(rename = "ttlMs", skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
    #[serde(rename = "cacheScope", skip_serializing_if = "Option::is_none")]
    cache_scope: Option<&'static str>,
    #[serde(rename = "resultType", skip_serializing_if = "Option::is_none")]
    result_type: Option<&'static str>,
}

/// One page of a server's list answer, read one level deep.
#[derive(Deserialize)]
struct PageAnswer {
    #[serde(default)]
    result: Option<BTreeMap<String, Box<RawValue>>>,
    #[serde(default)]
    error: Option<Value>,
}

/// The string value of `field` of an entry.
fn text_field(entry: &Entry, field: &str) -> Option<String> {
    serde_json::from_str(entry.get(field)?.get()).ok()
}

/// Asks every server for its whole list, in parallel.
async fn fetch_all(
    federation: &Federation,
    client: &Client,
    method: &str,
    message: &Value,
) -> Vec<Result<Part, LinkError>> {
    let key = items_key(method);
    join_all((0..federation.servers.len()).map(|index| async move {
        if let Some(part) = federation.lists.get(index, key) {
            return Ok(part);
        }
        let timeout = federation.servers[index].spec.timeout;
        let part = tokio::time::timeout(timeout, fetch(federation, client, index, method, message))
            .await
            .unwrap_or(Err(LinkError::Timeout(timeout)))?;
        federation.lists.keep(index, key, &part);
        Ok(part)
    }))
    .await
}

/// One server's whole list, page after page.
async fn fetch(
    federation: &Federation,
    client: &Client,
    index: usize,
    method: &str,
    message: &Value,
) -> Result<Part, LinkError> {
    let key = items_key(method);
    let mut part = Part {
        items: Vec::new(),
        ttl_ms: None,
        public: true,
    };
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let mut request = message.clone();
        request["id"] = jsonrpc::fresh_id();
        if let Some(cursor) = &cursor {
            request["params"]["cursor"] = cursor.clone();
        }
        let (reply, sent_id) = federation
            .exchange(client, index, request, None, None)
            .await?;
        let text = reply.into_response_text(&sent_id).await?;
        let page: PageAnswer = serde_json::from_str(&text)
            .map_err(|e| LinkError::Protocol(format!("the list answer is not JSON-RPC: {e}")))?;
        let Some(result) = page.result else {
            let error = page.error.unwrap_or(Value::Null);
            if error.get("code").and_then(Value::as_i64) == Some(jsonrpc::METHOD_NOT_FOUND) {
                // A server without this kind of entry has none to list.
                return Ok(part);
            }
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no result");
            return Err(LinkError::Protocol(message.to_string()));
        };
        if let Some(items) = result.get(key) {
            let items: Vec<Entry> = serde_json::from_str(items.get()).map_err(|e| {
                LinkError::Protocol(format!("`{key}` is not a list of objects: {e}"))
            })?;
            part.items.extend(items);
        }
        let number = |field: &str| {
            result
                .get(field)
                .and_then(|v| serde_json::from_str::<u64>(v.get()).ok())
        };
        let text = |field: &str| {
            result
                .get(field)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        };
        if let Some(ttl) = number("ttlMs") {
            part.ttl_ms = Some(part.ttl_ms.map_or(ttl, |t| t.min(ttl)));
        }
        if text("cacheScope").as_deref() != Some("public") {
            part.public = false;
        }
        let next_cursor: Option<Value> = result
            .get("nextCursor")
            .and_then(|v| serde_json::from_str(v.get()).ok());
        match next_cursor {
            Some(next) if !next.is_null() => cursor = Some(next),
            _ => return Ok(part),
        }
    }
    tracing::warn!(server = %federation.servers[index].name(), method, "list cut off after {MAX_PAGES} pages");
    Ok(part)
}

/// Names an entry as clients see it, and notes which server listed a resource.
fn expose(federation: &Federation, index: usize, method: &str, item: &mut Entry) {
    let spec = &federation.servers[index].spec;
    match method {
        "tools/list" | "prompts/list" => {
            let exposed = text_field(item, "name")
                .map(|name| spec.expose(&name))
                .and_then(|name| serde_json::value::to_raw_value(&name).ok());
            if let Some(exposed) = exposed {
                item.insert("name".into(), exposed);
            }
        }
        "resources/list" => {
            if let Some(uri) = text_field(item, "uri") {
                federation.resource_owners.insert(uri, index);
            }
        }
        _ => {
            if let Some(template) = text_field(item, "uriTemplate") {
                federation
                    .resource_owners
                    .insert(template_key(&template), index);
            }
        }
    }
}

/// The owner-map key of a URI template (kept apart from plain URIs).
pub(super) fn template_key(template: &str) -> String {
    format!("template:{template}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(ttl_ms: Option<u64>, public: bool) -> Part {
        Part {
            items: vec![serde_json::from_str(r#"{"name": "add"}"#).unwrap()],
            ttl_ms,
            public,
        }
    }

    #[test]
    fn only_public_lists_with_a_ttl_are_kept_until_a_change() {
        let cache = ListCache::default();
        cache.keep(0, "tools", &part(Some(60_000), true));
        cache.keep(1, "tools", &part(Some(60_000), false));
        cache.keep(2, "tools", &part(None, true));
        cache.keep(3, "tools", &part(Some(0), true));
        assert!(cache.get(0, "tools").is_some());
        assert!(cache.get(1, "tools").is_none(), "private");
        assert!(cache.get(2, "tools").is_none(), "no ttl (2025-era server)");
        assert!(cache.get(3, "tools").is_none(), "ttl 0");
        cache.changed(0, "notifications/prompts/list_changed");
        assert!(cache.get(0, "tools").is_some(), "another list changed");
        cache.changed(0, "notifications/tools/list_changed");
        assert!(cache.get(0, "tools").is_none());
    }

    #[test]
    fn an_expired_list_is_not_served() {
        let cache = ListCache::default();
        cache.keep(0, "tools", &part(Some(1), true));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(0, "tools").is_none());
    }
}

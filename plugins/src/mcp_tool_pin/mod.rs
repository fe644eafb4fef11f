//! `mcp-tool-pin`: tools keep the definition users approved. Each tool a route lists is
//! compared with its pin (mode `tofu`: the first definition seen, kept in `store`; mode `lock`:
//! the definitions of `lock_file`). A changed, unknown or suspicious tool is dropped from list
//! answers (`on_change = "hide"`) and its calls are refused in-band without reaching the server;
//! `"warn"` lets it through and warns. See docs/tool-integrity.md.

mod admin;
pub mod definition;
pub mod judge;
pub mod lock;
pub mod redis_pins;
pub mod scan;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;

use crate::list_filter::{ListFilter, Owner, PendingList, Target};
use judge::{PinJudge, Status};
use lock::Lock;
use scan::Scanner;
use store::PinStore;
use tollgate_plugin_api::config::{parse, FailureMode, PluginConfigError};
use tollgate_plugin_api::units::DurationStr;
use tollgate_plugin_api::McpMethod;
use tollgate_plugin_api::{
    AdminRequest, AdminResponse, Plugin, PluginError, PluginFactory, RejectKind, Rejection,
    RequestBody, RequestCtx, ResponseChunk, ResponseHead, Verdict,
};

/// How list filters name `mcp-tool-pin`.
const OWNER: Owner = Owner {
    plugin: "mcp-tool-pin",
    too_long: "pin.list_too_long",
    unreadable: "pin.list_unreadable",
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinConfig {
    #[serde(default)]
    mode: Mode,
    lock_file: Option<PathBuf>,
    store: Option<StoreConfig>,
    #[serde(default)]
    on_change: OnChange,
    #[serde(default = "yes")]
    scan_descriptions: bool,
    /// When new pins cannot be kept: `closed` (hide the tools not yet pinned, default) or `open`.
    #[serde(default)]
    failure_mode: FailureMode,
    /// Longest wait for the Redis store (default 250ms).
    store_timeout: Option<DurationStr>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum StoreConfig {
    File(PathBuf),
    Redis(String),
}

/// Which definitions are trusted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The first definition seen of each tool.
    #[default]
    Tofu,
    /// Only those of the lock file.
    Lock,
}

/// What happens to a tool whose definition is not the trusted one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Dropped from lists, its calls refused.
    #[default]
    Hide,
    /// Passed, with a warning.
    Warn,
}

/// This plugin's list filter in the request's extensions (apart from `mcp-rbac`'s).
#[derive(Debug)]
struct PinFilter(ListFilter);

/// The `mcp-tool-pin` plugin instance.
#[derive(Debug)]
pub struct ToolPin {
    name: String,
    mode: Mode,
    on_change: OnChange,
    failure_mode: FailureMode,
    scanner: Option<Scanner>,
    store: PinStore,
    lock: Lock,
    lock_file: Option<PathBuf>,
    /// What the last listing through this instance found of each tool, by route and name.
    seen: Mutex<HashMap<(String, String), Status>>,
}

/// Factory for `type = "mcp-tool-pin"`.
pub struct ToolPinFactory;

impl PluginFactory for ToolPinFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: PinConfig = parse(table)?;
        let lock = match (cfg.mode, &cfg.lock_file) {
            (Mode::Lock, Some(file)) => {
                Lock::read(file).map_err(|e| PluginConfigError::at("lock_file", e))?
            }
            (Mode::Lock, None) => {
                return Err(PluginConfigError::at(
                    "mode",
                    "mode \"lock\" needs a `lock_file` (write one with `tollgate mcp lock`)",
                ))
            }
            (Mode::Tofu, Some(_)) => {
                return Err(PluginConfigError::at(
                    "lock_file",
                    "`lock_file` is for mode \"lock\"",
                ))
            }
            (Mode::Tofu, None) => Lock::default(),
        };
        let store = match &cfg.store {
            None => PinStore::in_memory(),
            Some(StoreConfig::File(file)) => {
                PinStore::open(file).map_err(|e| PluginConfigError::at("store", e))?
            }
            Some(StoreConfig::Redis(url)) => {
                let timeout = cfg
                    .store_timeout
                    .map_or(std::time::Duration::from_millis(250), |d| d.0);
                let redis = redis_pins::RedisPins::new(url, name, timeout)
                    .map_err(|e| PluginConfigError::at("store", e))?;
                PinStore::redis(redis)
            }
        };
        let scanner = if cfg.scan_descriptions {
            Some(Scanner::new().map_err(|e| PluginConfigError::at("scan_descriptions", e))?)
        } else {
            None
        };
        Ok(Arc::new(ToolPin {
            name: name.to_string(),
            mode: cfg.mode,
            on_change: cfg.on_change,
            failure_mode: cfg.failure_mode,
            scanner,
            store,
            lock,
            lock_file: cfg.lock_file,
            seen: Mutex::default(),
        }))
    }
}

impl ToolPin {
    /// The status of a tool a call names that this instance has not seen listed: from the store
    /// (tofu: changed if the last listing it remembers differed from the pin) or the lock;
    /// unknown when never pinned.
    fn unseen_status(&self, route: &str, tool: &str) -> Status {
        let unknown = Status::Unknown {
            seen: String::new(),
        };
        match self.mode {
            Mode::Tofu => match self.store.get(route, tool) {
                // The store remembers a listing that differed from the pin (another replica's,
                // or this gateway's before a restart).
                Some(store::Pin {
                    hash,
                    seen: Some(seen),
                    ..
                }) => Status::Changed { pinned: hash, seen },
                Some(_) => Status::Trusted,
                None => unknown,
            },
            Mode::Lock if self.lock.hash(route, tool).is_some() => Status::Trusted,
            Mode::Lock => unknown,
        }
    }
}

#[async_trait]
impl Plugin for ToolPin {
    fn name(&self) -> &str {
        &self.name
    }

    fn survives_reload(&self) -> bool {
        // The lock file is read when the instance is built: a change to it builds a new one.
        self.mode == Mode::Tofu
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        self.lock_file.iter().cloned().collect()
    }

    fn inspects_body(&self) -> bool {
        true
    }

    async fn on_request_body(
        &self,
        cx: &mut RequestCtx,
        _body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        let Some(request) = cx.mcp() else {
            return Ok(Verdict::Continue);
        };
        let route = cx.route().name.clone();
        let mut pending = Vec::new();
        let mut warnings = Vec::new();
        let concerns_tools = request.messages.iter().any(|m| {
            matches!(
                m.method.as_ref(),
                Some(McpMethod::ToolsCall | McpMethod::ToolsList)
            )
        });
        if concerns_tools && self.store.is_shared() {
            // Another replica may have pinned (or seen changed) what this one decides about.
            if let Err(error) = self.store.refresh(&route).await {
                tracing::warn!(plugin = %self.name, %error, "mcp-tool-pin cannot read its pins from Redis");
                warnings.push("pin.store_unavailable");
            }
        }
        let Some(request) = cx.mcp() else {
            return Ok(Verdict::Continue);
        };
        if let Some(refusal) = crate::list_filter::ambiguous_lists(request) {
            return Ok(Verdict::Reject(refusal));
        }
        for message in &request.messages {
            match message.method.as_ref() {
                Some(McpMethod::ToolsCall) => {
                    let tool = message.target.as_deref().unwrap_or("");
                    let listed =
                        self.seen.lock().ok().and_then(|seen| {
                            seen.get(&(route.to_string(), tool.to_string())).cloned()
                        });
                    let status = match listed {
                        // Approved since, through another replica's admin API.
                        Some(Status::Changed { seen, .. })
                            if self.store.is_shared()
                                && self.store.get(&route, tool).is_some_and(|p| p.hash == seen) =>
                        {
                            Status::Trusted
                        }
                        // What this instance found wrong stands; what it trusted, a shared
                        // store may know to be changed since (another replica's listing).
                        Some(status) if status != Status::Trusted || !self.store.is_shared() => {
                            status
                        }
                        // Listed and trusted without a pin (the store failed open): it stays.
                        Some(trusted) if self.store.get(&route, tool).is_none() => trusted,
                        _ => self.unseen_status(&route, tool),
                    };
                    let Some(reason) = status.reason() else {
                        continue;
                    };
                    if self.on_change == OnChange::Warn && status.is_change() {
                        warnings.push(reason);
                        continue;
                    }
                    let text = format!("tool `{tool}` {}", status.refusal());
                    let mut rejection = Rejection::new(RejectKind::Permission, reason, text)
                        .in_band()
                        .with_jsonrpc_code(-32001);
                    if let Some(detail) = status.detail() {
                        rejection = rejection.with_detail(detail);
                    }
                    if request.batch {
                        rejection.message = format!("batch refused: {}", rejection.message);
                    }
                    return Ok(Verdict::Reject(rejection));
                }
                Some(McpMethod::ToolsList) => {
                    if let Some(id) = message.id.clone() {
                        pending.push(PendingList {
                            id,
                            target: Target::Tool,
                        });
                    }
                }
                _ => {}
            }
        }
        if !pending.is_empty() {
            let filter = ListFilter::new(pending, request.batch, OWNER);
            cx.extensions.insert(PinFilter(filter));
        }
        cx.warnings.extend(warnings);
        Ok(Verdict::Continue)
    }

    async fn on_response(
        &self,
        cx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<(), PluginError> {
        let content_type = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Some(PinFilter(filter)) = cx.extensions.get_mut::<PinFilter>() {
            if filter.start(&content_type) {
                resp.headers.remove(CONTENT_LENGTH);
            }
        }
        Ok(())
    }

    fn on_response_chunk(&self, cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
        let route = cx.route().name.clone();
        let mut judge = PinJudge::new(self, &route);
        if let Some(PinFilter(filter)) = cx.extensions.get_mut::<PinFilter>() {
            let sent = filter.chunk(chunk.data(), chunk.end_of_stream(), &mut judge);
            chunk.set_data(sent);
            let stopped = filter.stopped();
            let replaced = filter.take_warnings();
            cx.warnings.extend(replaced);
            if stopped {
                cx.end_answer();
            }
        }
        cx.warnings.extend(judge.take_warnings());
        cx.notes.extend(judge.take_notes());
    }

    async fn admin(&self, request: &AdminRequest) -> AdminResponse {
        admin::answer(self, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::build_plugin;

    #[test]
    fn bad_settings_are_errors_at_their_key() {
        for (table, key) in [
            ("type = \"mcp-tool-pin\"\nmode = \"lock\"", "mode"),
            (
                "type = \"mcp-tool-pin\"\nlock_file = \"x.lock\"",
                "lock_file",
            ),
            (
                "type = \"mcp-tool-pin\"\nmode = \"lock\"\nlock_file = \"/no/such.lock\"",
                "lock_file",
            ),
            (
                "type = \"mcp-tool-pin\"\nstore = { redis = \"nope://\" }",
                "store",
            ),
        ] {
            let error = build_plugin(&ToolPinFactory, "pins", table).unwrap_err();
            assert_eq!(error.key.as_deref(), Some(key), "{table}: {error:?}");
        }
        assert!(build_plugin(&ToolPinFactory, "pins", "type = \"mcp-tool-pin\"").is_ok());
    }
}

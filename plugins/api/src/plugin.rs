//! The plugin trait, the factory that builds plugins from configuration, and the registry of
//! factories by type name.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;

use crate::admin::{AdminRequest, AdminResponse};
use crate::config::PluginConfigError;
use crate::context::RequestCtx;
use crate::verdict::{Outcome, PluginError, Verdict};
use crate::views::{RequestBody, ResponseChunk, ResponseHead};

/// A gateway plugin. Every phase has a default that does nothing, so a plugin implements only the
/// phases it needs. Phases run in the order the route lists its plugins.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The instance name from the configuration (`[plugin.<name>]`).
    fn name(&self) -> &str;

    /// Whether an instance whose configuration table did not change is kept across configuration
    /// reloads instead of being rebuilt, so that its state (rate-limit buckets) survives. Only
    /// for plugins that read nothing outside their table (no secret files, no key sets).
    fn survives_reload(&self) -> bool {
        false
    }

    /// Files this instance read when it was built and whose change must rebuild it (secret
    /// files, key sets). The gateway watches them and reloads the configuration when one changes,
    /// so a rotated secret takes effect without a restart.
    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// Whether this plugin reads or rewrites the parsed JSON of the request body
    /// (`RequestBody::json`, `json_mut`). `on_request_body` runs for every plugin on MCP and LLM
    /// routes with the raw body either way; when no plugin of an `llm` route says `true`, the
    /// gateway does not build the JSON tree and `body.json()` is `None`.
    fn inspects_body(&self) -> bool {
        false
    }

    /// Request head phase: authentication, early rejections, upstream header edits.
    async fn on_request(&self, _cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
        Ok(Verdict::Continue)
    }

    /// Request body phase (MCP and LLM routes): the whole body, parsed once. A rejection here
    /// means the upstream never sees the request.
    async fn on_request_body(
        &self,
        _cx: &mut RequestCtx,
        _body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        Ok(Verdict::Continue)
    }

    /// Response head phase: may change status and headers sent to the client.
    async fn on_response(
        &self,
        _cx: &mut RequestCtx,
        _resp: &mut ResponseHead,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Called for every response body chunk as it arrives. Synchronous: it must not block.
    fn on_response_chunk(&self, _cx: &mut RequestCtx, _chunk: &mut ResponseChunk) {}

    /// Called once the exchange is over, also when it failed or a side went away mid-stream.
    async fn on_complete(&self, _cx: &RequestCtx, _outcome: &Outcome) {}

    /// The RFC 9728 protected resource metadata document of the route at `path_prefix`, if this
    /// plugin protects routes with OAuth bearer tokens; `headers` are the metadata request's (for
    /// the public host name). The gateway serves it at
    /// `/.well-known/oauth-protected-resource<route prefix>`.
    fn protected_resource_metadata(
        &self,
        _path_prefix: &str,
        _headers: &HeaderMap,
    ) -> Option<serde_json::Value> {
        None
    }

    /// An operator's call of this instance on the admin API
    /// (`/admin/v1/plugins/<name>/<path>`), already authenticated; the default has no
    /// operations (`404`). What a call changes belongs in the answer's `audit`.
    async fn admin(&self, _request: &AdminRequest) -> AdminResponse {
        AdminResponse::not_found()
    }

    /// The gauges this instance reports at each scrape of `/metrics` (none by default).
    /// Synchronous and called on the scrape: return what the instance already knows.
    fn gauges(&self) -> Vec<crate::gauges::Gauge> {
        Vec::new()
    }
}

// Plugins may hold secrets: show only the instance name.
impl fmt::Debug for dyn Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Builds plugin instances of one type from their configuration table.
pub trait PluginFactory: Send + Sync + 'static {
    /// Builds the instance `name` from its table (the `[plugin.<name>]` keys except `type`).
    fn build(&self, name: &str, config: &toml::Table)
        -> Result<Arc<dyn Plugin>, PluginConfigError>;
}

/// Plugin factories by type name (`type = "..."` in the configuration).
#[derive(Default, Clone)]
pub struct PluginRegistry {
    factories: HashMap<String, Arc<dyn PluginFactory>>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` under `type_name`, replacing any earlier one of that name.
    pub fn register(&mut self, type_name: impl Into<String>, factory: impl PluginFactory) {
        self.factories.insert(type_name.into(), Arc::new(factory));
    }

    /// The factory registered under `type_name`.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.factories.get(type_name)
    }

    /// The registered type names, sorted.
    pub fn type_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("types", &self.type_names())
            .finish()
    }
}

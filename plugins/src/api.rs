//! The plugin trait, the per-request context and the factory registry.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use crate::config::PluginConfigError;
use crate::json_answer::JsonAnswer;
use crate::request::{LlmRequest, McpRequest, Usage};
use crate::stream_events::StreamEvents;

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

/// What a request phase decided.
#[derive(Debug)]
pub enum Verdict {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client now; the upstream sees nothing.
    Reject(Rejection),
}

/// The broad class of a rejection; the gateway maps it to each protocol's error vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Missing or bad credentials (401, Anthropic `authentication_error`).
    Authentication,
    /// Authenticated but not allowed (403, `permission_error`).
    Permission,
    /// A limit was hit (429, `rate_limit_error`).
    RateLimit,
    /// The request itself is unacceptable (400/413, `invalid_request_error`).
    InvalidRequest,
    /// The gateway or upstream failed (5xx, `api_error`).
    Api,
}

/// A refusal, rendered by the gateway in the caller's protocol.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Error class.
    pub kind: RejectKind,
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable reason, sent as `x-tollgate-reason` (`jwt.expired`, `rbac.denied`).
    pub reason: Cow<'static, str>,
    /// Human-readable message. Must not contain secrets.
    pub message: String,
    /// JSON-RPC error code on MCP routes; defaults by kind when `None`.
    pub jsonrpc_code: Option<i64>,
    /// On MCP routes, answer with HTTP 200 and a JSON-RPC error (per-call denials).
    pub in_band: bool,
    /// Extra response headers (`retry-after`, `www-authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What the audit log records besides the reason (a rule name); never sent to the client,
    /// never a secret or matched text.
    pub detail: Option<String>,
}

impl Rejection {
    /// A rejection with the default status of `kind`.
    pub fn new(
        kind: RejectKind,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        let status = match kind {
            RejectKind::Authentication => StatusCode::UNAUTHORIZED,
            RejectKind::Permission => StatusCode::FORBIDDEN,
            RejectKind::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            RejectKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectKind::Api => StatusCode::BAD_GATEWAY,
        };
        Self {
            kind,
            status,
            reason: reason.into(),
            message: message.into(),
            jsonrpc_code: None,
            in_band: false,
            headers: Vec::new(),
            detail: None,
        }
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the JSON-RPC error code used on MCP routes.
    pub fn with_jsonrpc_code(mut self, code: i64) -> Self {
        self.jsonrpc_code = Some(code);
        self
    }

    /// Sets the audit detail (e.g. the rule that matched).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Marks a per-call denial: on MCP routes HTTP 200 with a JSON-RPC error.
    pub fn in_band(mut self) -> Self {
        self.in_band = true;
        self
    }
}

/// A plugin failure (not a refusal): the gateway answers 500 and logs it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin could not do its job (a store down, a key unreadable).
    #[error("{0}")]
    Internal(String),
}

/// Kind of upstream a route proxies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Plain reverse proxy: bodies stream, no protocol parsing.
    Http,
    /// MCP Streamable HTTP.
    Mcp,
    /// An LLM provider API.
    Llm,
}

/// Facts about the matched route, shared by all its requests.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// Route name from the configuration.
    pub name: Arc<str>,
    /// Upstream kind.
    pub kind: RouteKind,
    /// LLM provider (`anthropic`) for LLM routes.
    pub provider: Option<Arc<str>>,
    /// The route's `match.path_prefix`.
    pub path_prefix: Arc<str>,
}

/// The authenticated caller, set by an authentication plugin.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The subject (`sub` claim, API key name, ...).
    pub subject: String,
    /// All claims of the credential (shared: a cached token's claims are not copied per
    /// request).
    pub claims: Arc<serde_json::Map<String, serde_json::Value>>,
}

/// Header changes to apply to the upstream request, in order. Applied after the chain ran, so a
/// later plugin (e.g. `secret-injection`) wins over an earlier one.
#[derive(Default, Clone)]
pub struct HeaderEdits {
    edits: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl HeaderEdits {
    /// Sets `name` to `value`, replacing what the client sent.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.edits.push((name, Some(value)));
    }

    /// Removes `name` from the upstream request.
    pub fn remove(&mut self, name: HeaderName) {
        self.edits.push((name, None));
    }

    /// The edits in order: `Some` sets, `None` removes.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, Option<&HeaderValue>)> {
        self.edits.iter().map(|(n, v)| (n, v.as_ref()))
    }

    /// Whether there are no edits.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }
}

// Values may be credentials: show only the header names.
impl fmt::Debug for HeaderEdits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.edits
                    .iter()
                    .map(|(n, v)| (n.as_str(), if v.is_some() { "set" } else { "removed" })),
            )
            .finish()
    }
}

/// A typed map for a plugin's own per-request state.
///
/// A request holds a handful of entries, looked up once per streamed chunk: a list compared by
/// `TypeId` finds them faster than hashing the key would.
#[derive(Default)]
pub struct Extensions {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Stores `value`, replacing an earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        let boxed: Box<dyn Any + Send + Sync> = Box::new(value);
        match self.entries.iter_mut().find(|(key, _)| *key == id) {
            Some((_, slot)) => std::mem::replace(slot, boxed)
                .downcast()
                .ok()
                .map(|old| *old),
            None => {
                self.entries.push((id, boxed));
                None
            }
        }
    }

    /// The stored value of type `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_ref())
    }

    /// The stored value of type `T`, mutable.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_mut())
    }

    /// Takes the stored value of type `T` out.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let at = self.entries.iter().position(|(key, _)| *key == id)?;
        self.entries
            .swap_remove(at)
            .1
            .downcast()
            .ok()
            .map(|value| *value)
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} entries)", self.entries.len())
    }
}

/// Everything the gateway and the plugins know about one request.
#[derive(Debug)]
pub struct RequestCtx {
    /// The matched route.
    pub route: RouteInfo,
    /// When the gateway received the request head.
    pub started: Instant,
    /// The client's address.
    pub client_addr: Option<SocketAddr>,
    /// Request method.
    pub method: Method,
    /// Request URI as the client sent it.
    pub uri: Uri,
    /// Request headers as the client sent them. Change the upstream request through
    /// `upstream_headers`, not here.
    pub headers: HeaderMap,
    /// Header changes for the upstream request.
    pub upstream_headers: HeaderEdits,
    /// The caller, once an authentication plugin identified it.
    pub identity: Option<Identity>,
    /// The parsed MCP request (MCP routes with a JSON-RPC body).
    pub mcp: Option<McpRequest>,
    /// The parsed LLM request (LLM routes with a JSON body).
    pub llm: Option<LlmRequest>,
    /// The model the upstream says answered (from the response).
    pub response_model: Option<String>,
    /// Token usage seen in the response so far.
    pub usage: Usage,
    /// When the first generated token (first text delta of a stream) passed through.
    pub first_token_at: Option<Instant>,
    /// Degradations plugins report for this request (a store or classifier was unreachable and
    /// the request went on in fail-open mode; an answer was stopped after its head went out):
    /// reason codes, counted in `tollgate_plugin_warnings_total` and listed in the audit record.
    pub warnings: Vec<&'static str>,
    /// Plugins' own per-request state.
    pub extensions: Extensions,
    /// The request's trace context: plugins start spans for their I/O with `trace.io_span`.
    pub trace: crate::trace::TraceCtx,
}

impl RequestCtx {
    /// A context for a request on `route`.
    pub fn new(route: RouteInfo, method: Method, uri: Uri, headers: HeaderMap) -> Self {
        Self {
            route,
            started: Instant::now(),
            client_addr: None,
            method,
            uri,
            headers,
            upstream_headers: HeaderEdits::default(),
            identity: None,
            mcp: None,
            llm: None,
            response_model: None,
            usage: Usage::default(),
            first_token_at: None,
            warnings: Vec::new(),
            extensions: Extensions::default(),
            trace: crate::trace::TraceCtx::default(),
        }
    }
}

/// A request body, read whole and parsed once. Rewrites go through `json_mut` or `replace`.
#[derive(Debug, Clone)]
pub struct RequestBody {
    raw: Bytes,
    json: Option<serde_json::Value>,
    json_changed: bool,
}

impl RequestBody {
    /// A body with its parsed JSON, if it was JSON.
    pub fn new(raw: Bytes, json: Option<serde_json::Value>) -> Self {
        Self {
            raw,
            json,
            json_changed: false,
        }
    }

    /// The bytes the client sent (or the last `replace`).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The parsed JSON document.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json.as_ref()
    }

    /// The parsed JSON document for rewriting; the body is re-serialized before the upstream.
    pub fn json_mut(&mut self) -> Option<&mut serde_json::Value> {
        self.json_changed = self.json.is_some();
        self.json.as_mut()
    }

    /// Takes the parsed JSON out to work on it without copying (e.g. decide on the whole
    /// document, then keep or drop the changes); hand it back with `put_json`.
    pub fn take_json(&mut self) -> Option<serde_json::Value> {
        self.json.take()
    }

    /// Puts back the JSON taken with `take_json`; `changed`: re-serialize it for the upstream.
    pub fn put_json(&mut self, json: serde_json::Value, changed: bool) {
        self.json = Some(json);
        self.json_changed |= changed;
    }

    /// Replaces the whole body; the JSON view is dropped.
    pub fn replace(&mut self, raw: Bytes) {
        self.raw = raw;
        self.json = None;
        self.json_changed = false;
    }

    /// Whether a plugin rewrote the body.
    pub fn is_rewritten(&self) -> bool {
        self.json_changed
    }

    /// The bytes to send upstream.
    pub fn into_bytes(self) -> Bytes {
        match (self.json_changed, self.json) {
            (true, Some(json)) => serde_json::to_vec(&json)
                .map(Bytes::from)
                .unwrap_or(self.raw),
            _ => self.raw,
        }
    }
}

/// The response head, as plugins may change it before the client sees it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
}

/// One chunk of the response body on its way to the client.
#[derive(Debug)]
pub struct ResponseChunk {
    /// The bytes; a plugin may replace them (e.g. masking).
    pub data: Bytes,
    /// Whether this is the last chunk.
    pub end_of_stream: bool,
    events: Option<StreamEvents>,
    /// The bytes `events` describe, held so that their memory cannot be reused: `data` still
    /// starting at the same address with the same length means no plugin replaced them.
    events_of: Bytes,
    /// Boxed: every chunk of every stream is moved along the chain, only a JSON answer's last
    /// one carries this.
    answer: Option<Box<JsonAnswer>>,
}

impl ResponseChunk {
    /// A chunk the gateway knows nothing more about.
    pub fn new(data: Bytes, end_of_stream: bool) -> Self {
        Self {
            data,
            end_of_stream,
            events: None,
            events_of: Bytes::new(),
            answer: None,
        }
    }

    /// The last chunk of a JSON answer the gateway read whole (`answer`, as the upstream sent
    /// it).
    pub fn with_answer(data: Bytes, answer: JsonAnswer) -> Self {
        Self {
            answer: Some(Box::new(answer)),
            ..Self::new(data, true)
        }
    }

    /// A chunk that is exactly the complete SSE `events` the gateway read in it.
    pub fn with_events(data: Bytes, end_of_stream: bool, events: StreamEvents) -> Self {
        let events_of = data.clone();
        Self {
            data,
            end_of_stream,
            events: Some(events),
            events_of,
            answer: None,
        }
    }

    /// The SSE events of this chunk as the gateway read them (LLM routes), when the chunk is
    /// exactly a run of complete events and no plugin replaced `data`: use them instead of
    /// parsing the events again. `None` otherwise (a chunk that splits an event, not a stream).
    pub fn stream_events(&self) -> Option<&StreamEvents> {
        let unchanged = self.events_of.as_ptr() == self.data.as_ptr()
            && self.events_of.len() == self.data.len();
        self.events.as_ref().filter(|_| unchanged)
    }

    /// With a JSON answer's last chunk (LLM routes): the whole answer as the upstream sent it
    /// and where its texts are, so that a plugin that held the answer need not parse it again.
    /// The plugins after one that changed the answer (in any chunk) do not get it. Use it only
    /// when it is byte for byte what the plugin holds.
    pub fn json_answer(&self) -> Option<&JsonAnswer> {
        self.answer.as_deref()
    }

    /// Drops the JSON answer's reading (the gateway does so for the plugins after one that changed
    /// the answer: the reading holds the upstream's bytes).
    #[inline]
    pub fn forget_json_answer(&mut self) {
        self.answer = None;
    }

    /// The bytes to send and the events read in them (for their allocation, reused).
    pub fn into_parts(self) -> (Bytes, Option<StreamEvents>) {
        (self.data, self.events)
    }
}

/// How an exchange ended, given to `on_complete`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Status sent to the client (0 if none was sent).
    pub status: u16,
    /// Allowed, or which plugin refused and why.
    pub decision: Decision,
    /// What went wrong, if anything (`upstream.timeout`, `client.disconnected`).
    pub error: Option<Cow<'static, str>>,
}

/// The chain's decision about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every plugin let it through.
    Allowed,
    /// `plugin` refused it with `reason`.
    Rejected {
        /// The refusing plugin instance.
        plugin: String,
        /// Its reason code.
        reason: String,
        /// The rejection's audit detail (a rule name), if any.
        detail: Option<String>,
    },
    /// The gateway refused it before the chain (bad JSON, too large).
    Invalid {
        /// The reason code.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_hold_one_value_per_type() {
        let mut ext = Extensions::default();
        assert_eq!(ext.insert(1u32), None);
        assert_eq!(ext.insert("text"), None);
        assert_eq!(
            ext.insert(2u32),
            Some(1),
            "a second value replaces the first"
        );
        *ext.get_mut::<u32>().unwrap() += 5;
        assert_eq!(ext.get::<u32>(), Some(&7));
        assert_eq!(ext.get::<&str>(), Some(&"text"));
        assert_eq!(ext.get::<u64>(), None);
        assert_eq!(ext.remove::<u32>(), Some(7));
        assert_eq!(ext.remove::<u32>(), None);
        assert_eq!(ext.get::<&str>(), Some(&"text"));
        assert_eq!(format!("{ext:?}"), "Extensions(1 entries)");
    }
}

//! The per-request context: what the gateway knows about a request (read-only to plugins) and
//! what plugins add to it (the caller's identity, upstream header edits, warnings, their own
//! state).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, Uri};

use crate::extensions::Extensions;
use crate::header_edits::HeaderEdits;
use crate::host::GatewayFacts;
use crate::request::{LlmRequest, McpRequest, Usage};
use crate::trace::TraceCtx;

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

/// Everything the gateway and the plugins know about one request.
///
/// The gateway's facts (route, request head, parsed body, usage, timings, trace) are read
/// through methods: they describe what happened, and a plugin changing them would mislead the
/// plugins after it, the metrics and the audit log. Plugins write the public fields.
#[derive(Debug)]
pub struct RequestCtx {
    facts: GatewayFacts,
    /// Header changes for the upstream request.
    pub upstream_headers: HeaderEdits,
    /// The caller, once an authentication plugin identified it.
    pub identity: Option<Identity>,
    /// Degradations plugins report for this request (a store or classifier was unreachable and
    /// the request went on in fail-open mode; an answer was stopped after its head went out):
    /// reason codes, counted in `tollgate_plugin_warnings_total` and listed in the audit record.
    pub warnings: Vec<&'static str>,
    /// What plugins add to the audit record beyond reason codes (the rule that masked a tool
    /// result, the hashes of a changed tool): short texts for people, never a secret or the
    /// matched text.
    pub notes: Vec<String>,
    /// Plugins' own per-request state.
    pub extensions: Extensions,
    /// A plugin ended the answer (see [`RequestCtx::end_answer`]).
    answer_ended: bool,
}

impl RequestCtx {
    /// A context for a request on `route`, received now.
    pub fn new(route: RouteInfo, method: Method, uri: Uri, headers: HeaderMap) -> Self {
        Self {
            facts: GatewayFacts {
                route,
                started: Instant::now(),
                client_addr: None,
                method,
                uri,
                headers,
                mcp: None,
                mcp_server: None,
                llm: None,
                response_model: None,
                usage: Usage::default(),
                first_token_at: None,
                trace: TraceCtx::default(),
            },
            upstream_headers: HeaderEdits::default(),
            identity: None,
            warnings: Vec::new(),
            notes: Vec::new(),
            extensions: Extensions::default(),
            answer_ended: false,
        }
    }

    /// Ends the answer with the chunk in hand: a plugin that stopped an answer (too long to
    /// check) and sent its last bytes calls it, and the gateway then reads nothing more of the
    /// upstream's body and ends the response, instead of reading an upstream that may never end.
    /// Applies to the answers the gateway relays itself (`mcp` and `llm` routes).
    pub fn end_answer(&mut self) {
        self.answer_ended = true;
    }

    /// Whether a plugin ended the answer.
    pub fn answer_ended(&self) -> bool {
        self.answer_ended
    }

    /// The matched route.
    #[inline]
    pub fn route(&self) -> &RouteInfo {
        &self.facts.route
    }

    /// When the gateway received the request head.
    #[inline]
    pub fn started(&self) -> Instant {
        self.facts.started
    }

    /// The client's address.
    #[inline]
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.facts.client_addr
    }

    /// Request method.
    #[inline]
    pub fn method(&self) -> &Method {
        &self.facts.method
    }

    /// Request URI as the client sent it.
    #[inline]
    pub fn uri(&self) -> &Uri {
        &self.facts.uri
    }

    /// Request headers as the client sent them. Change the upstream request through
    /// `upstream_headers`.
    #[inline]
    pub fn headers(&self) -> &HeaderMap {
        &self.facts.headers
    }

    /// The parsed MCP request (MCP routes with a JSON-RPC body), from the body phase on.
    #[inline]
    pub fn mcp(&self) -> Option<&McpRequest> {
        self.facts.mcp.as_ref()
    }

    /// On a federated MCP route, the MCP server that served the request (known once it
    /// answered; `None` for answers the gateway gives itself, such as merged lists).
    #[inline]
    pub fn mcp_server(&self) -> Option<&str> {
        self.facts.mcp_server.as_deref()
    }

    /// The parsed LLM request (LLM routes with a JSON body), from the body phase on.
    #[inline]
    pub fn llm(&self) -> Option<&LlmRequest> {
        self.facts.llm.as_ref()
    }

    /// The model the upstream says answered (from the response).
    #[inline]
    pub fn response_model(&self) -> Option<&str> {
        self.facts.response_model.as_deref()
    }

    /// Token usage seen in the response so far.
    #[inline]
    pub fn usage(&self) -> Usage {
        self.facts.usage
    }

    /// When the first generated token (first text delta of a stream) passed through.
    #[inline]
    pub fn first_token_at(&self) -> Option<Instant> {
        self.facts.first_token_at
    }

    /// The request's trace context: plugins start spans for their I/O with
    /// [`TraceCtx::io_span`].
    #[inline]
    pub fn trace(&self) -> &TraceCtx {
        &self.facts.trace
    }

    /// The gateway's facts, for the gateway (through [`crate::host`]) and the test harness.
    #[inline]
    pub(crate) fn facts_mut(&mut self) -> &mut GatewayFacts {
        &mut self.facts
    }
}

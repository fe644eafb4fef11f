//! For the gateway that hosts plugins, not part of the plugin API: how it records the facts
//! plugins only read (the request it parsed, the usage and model it saw in the answer, the
//! client's address, the trace). A plugin that writes them breaks the plugins after it, the
//! metrics and the audit log; this module may change in any release.

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderMap, Method, Uri};

use crate::context::{RequestCtx, RouteInfo};
use crate::request::{LlmRequest, McpRequest, Usage};
use crate::trace::TraceCtx;

/// The facts of a request the gateway owns; plugins read them through [`RequestCtx`]'s methods.
#[derive(Debug)]
pub struct GatewayFacts {
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
    /// Request headers as the client sent them.
    pub headers: HeaderMap,
    /// The parsed MCP request.
    pub mcp: Option<McpRequest>,
    /// On a federated MCP route: the `[mcp_server.<name>]` that served the request.
    pub mcp_server: Option<std::sync::Arc<str>>,
    /// The parsed LLM request.
    pub llm: Option<LlmRequest>,
    /// The model the upstream says answered.
    pub response_model: Option<String>,
    /// Token usage seen in the response so far.
    pub usage: Usage,
    /// When the first generated token passed through.
    pub first_token_at: Option<Instant>,
    /// The request's trace context.
    pub trace: TraceCtx,
}

/// The gateway's facts of `cx`, to record what it learned.
#[inline]
pub fn facts_mut(cx: &mut RequestCtx) -> &mut GatewayFacts {
    cx.facts_mut()
}

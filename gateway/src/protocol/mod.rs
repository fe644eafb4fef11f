//! Protocol knowledge: MCP JSON-RPC, the Anthropic Messages API and SSE framing. Error bodies in
//! each caller's protocol are the SDK's (`tollgate_plugin_api::protocol_error`), which plugins
//! use too.

pub mod anthropic;
pub mod mcp;
pub mod mcp_headers;
pub mod mcp_param_headers;
pub mod observer;
pub mod sse;
pub mod strict_json;

//! Protocol knowledge: MCP JSON-RPC, the Anthropic Messages API, SSE framing, and error bodies in
//! each caller's protocol.

pub mod anthropic;
pub mod errors;
pub mod mcp;
pub mod observer;
pub mod sse;

//! Protocol facts about the current request, parsed once by the gateway and read by plugins.

/// One JSON-RPC message of an MCP request (a batch holds several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpMessage {
    /// The JSON-RPC `id` as raw JSON (`1`, `"abc"`); `None` for notifications and responses.
    pub id: Option<serde_json::Value>,
    /// The JSON-RPC method (`tools/call`, `initialize`, ...); `None` for responses.
    pub method: Option<crate::McpMethod>,
    /// For `tools/call`: `params.name`. For `prompts/get`: the prompt name. For
    /// `resources/read`: the resource URI.
    pub target: Option<String>,
}

/// An MCP (JSON-RPC over Streamable HTTP) request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpRequest {
    /// Whether the body was a JSON-RPC batch (an array).
    pub batch: bool,
    /// The messages, in order.
    pub messages: Vec<McpMessage>,
}

impl McpRequest {
    /// The first message, which is the whole request unless it is a batch.
    pub fn first(&self) -> Option<&McpMessage> {
        self.messages.first()
    }
}

/// An LLM API request (Anthropic Messages today).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmRequest {
    /// `model` as the client asked for it.
    pub model: Option<String>,
    /// Whether the client asked for an SSE stream (`"stream": true`).
    pub stream: bool,
    /// `max_tokens`, the ceiling on output tokens.
    pub max_tokens: Option<u64>,
    /// Number of entries in `messages`.
    pub message_count: usize,
}

/// LLM token usage seen so far in the response (JSON body or SSE events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, including cache reads and writes when the provider reports them.
    pub input_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Of `input_tokens`, those written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Whether any usage figure was seen at all.
    pub reported: bool,
}

//! The tollgate plugin API and the built-in plugins.
//!
//! A plugin is a shared, immutable object (`Arc<dyn Plugin>`) built once per configuration load
//! by a [`PluginFactory`]. The gateway calls its phases for every request on the routes that name
//! it; per-request state lives in the [`RequestCtx`]. Operators write their own plugins against
//! the same trait the built-ins use and register their factory in a [`PluginRegistry`].

pub mod api;
pub mod config;
pub mod json_answer;
pub mod jwt;
pub mod mcp_rbac;
pub mod prompt_guard;
pub mod request;
pub mod secret_injection;
pub mod secret_source;
pub mod sse;
pub mod stream_events;
#[cfg(test)]
mod test_rng;
pub mod token_ratelimit;
pub mod trace;
pub mod units;

pub use api::{
    Decision, Extensions, HeaderEdits, Identity, Outcome, Plugin, PluginError, PluginFactory,
    PluginRegistry, RejectKind, Rejection, RequestBody, RequestCtx, ResponseChunk, ResponseHead,
    RouteInfo, RouteKind, Verdict,
};
pub use config::PluginConfigError;
pub use request::{LlmRequest, McpMessage, McpRequest, Usage};

/// Re-exported so that plugin crates use the same versions as the gateway.
pub use async_trait::async_trait;
pub use bytes;
pub use http;
pub use serde_json;
pub use toml;

impl PluginRegistry {
    /// A registry holding every built-in plugin type of this crate.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        registry.register("secret-injection", secret_injection::SecretInjectionFactory);
        registry.register("jwt", jwt::JwtFactory);
        registry.register("mcp-rbac", mcp_rbac::McpRbacFactory);
        registry.register("prompt-guard", prompt_guard::PromptGuardFactory);
        registry.register("token-ratelimit", token_ratelimit::TokenRateLimitFactory);
        registry
    }
}

//! The built-in plugins of the tollgate gateway.
//!
//! Each is written against the plugin SDK (crate `tollgate-plugin-api`) exactly as an operator's
//! own plugin is: nothing here reaches past its public API. [`builtins`] gives a registry holding
//! all of them, under the type names configurations use.

pub mod api_key;
pub mod budget;
pub mod caller_key;
pub mod jwt;
pub mod list_filter;
pub mod mcp_rbac;
pub mod mcp_tool_pin;
pub mod per_instance;
pub mod prompt_guard;
pub mod redis_link;
pub mod secret_injection;
pub mod token_ratelimit;

use tollgate_plugin_api::PluginRegistry;

/// A registry holding every built-in plugin type, to which an operator's binary adds its own.
pub fn builtins() -> PluginRegistry {
    let mut registry = PluginRegistry::new();
    register_builtins(&mut registry);
    registry
}

/// Registers every built-in plugin type in `registry` (replacing types of the same names).
pub fn register_builtins(registry: &mut PluginRegistry) {
    registry.register("secret-injection", secret_injection::SecretInjectionFactory);
    registry.register("api-key", api_key::ApiKeyFactory);
    registry.register("budget", budget::BudgetFactory);
    registry.register("jwt", jwt::JwtFactory);
    registry.register("mcp-rbac", mcp_rbac::McpRbacFactory);
    registry.register("mcp-tool-pin", mcp_tool_pin::ToolPinFactory);
    registry.register("prompt-guard", prompt_guard::PromptGuardFactory);
    registry.register("token-ratelimit", token_ratelimit::TokenRateLimitFactory);
}

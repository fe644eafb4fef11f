//! tollgate: a programmable gateway for AI-agent traffic (MCP and LLM APIs), built on Pingora.
//!
//! An operator's own binary registers its plugin types and runs the same CLI as the stock one:
//!
//! ```no_run
//! let mut gateway = tollgate::Gateway::new();
//! // gateway.register_plugin("my-plugin", MyPluginFactory);
//! std::process::exit(match tollgate::cli::main(gateway) {
//!     code if code == std::process::ExitCode::SUCCESS => 0,
//!     _ => 1,
//! });
//! ```

// Data flows one way between these (docs/architecture.md has the map): `routing` (the route
// table) is built by `config` and read by `proxy`; `gateway` wires everything together; `cli`
// drives `gateway`.
pub(crate) mod admin;
pub mod cli;
pub mod config;
pub(crate) mod connections;
#[cfg(feature = "demo")]
pub mod demo;
pub(crate) mod federation;
pub mod gateway;
pub mod internals;
pub(crate) mod ip_text;
pub(crate) mod keys_cli;
pub(crate) mod lifecycle;
pub(crate) mod mcp_lock;
pub(crate) mod protocol;
pub(crate) mod proxy;
pub(crate) mod reload;
pub(crate) mod routing;
pub(crate) mod telemetry;
pub(crate) mod tls;
pub mod token;

pub use gateway::{Gateway, StartError};
/// The plugin SDK (crate `tollgate-plugin-api`), re-exported so that an operator's binary and its
/// plugins need only this crate.
pub use tollgate_plugin_api as plugin_api;
/// The built-in plugins (crate `tollgate-plugins`).
pub use tollgate_plugins as plugins;

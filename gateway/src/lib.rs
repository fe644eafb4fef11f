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

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod ip_text;
pub mod lifecycle;
pub mod protocol;
pub mod proxy;
pub mod reload;
pub mod telemetry;
pub mod tls;
pub mod token;

pub use gateway::{Gateway, StartError};
/// The plugin SDK (crate `tollgate-plugin-api`), re-exported so that an operator's binary and its
/// plugins need only this crate.
pub use tollgate_plugin_api as plugin_api;
/// The built-in plugins (crate `tollgate-plugins`).
pub use tollgate_plugins as plugins;

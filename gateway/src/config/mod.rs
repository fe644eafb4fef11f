//! Configuration: the TOML schema, validation with `file:line:column` errors, and the
//! resolution of the route table (plugins built, chains resolved) at load time.

mod chain;
pub mod defaults;
pub mod error;
mod files;
mod listener_tls;
mod matcher;
mod mcp_servers;
mod mcp_stdio;
mod parse;
mod plugins;
mod report;
mod route;
pub mod schema;
mod server;
mod telemetry;
#[cfg(test)]
mod test_support;
pub mod trusted_proxies;
pub mod units;
mod upstream;

pub use mcp_servers::{retire_replaced, Servers};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_plugin_api::files::{read_limited_string, MAX_CONFIG_FILE};
use tollgate_plugin_api::PluginRegistry;

pub use defaults::MAX_BODY as DEFAULT_MAX_BODY;
pub use error::{ConfigError, ConfigErrors};
pub use plugins::Plugins;
pub use server::{ConnectionLimits, ServerSettings};
pub use telemetry::TelemetrySettings;

use crate::routing::RouteTable;
use report::Report;
use route::RouteContext;

/// A loaded, validated configuration: what the proxy serves from.
#[derive(Debug)]
pub struct RuntimeConfig {
    /// Process-level settings (changing them needs a restart).
    pub server: ServerSettings,
    /// Telemetry settings.
    pub telemetry: TelemetrySettings,
    /// Files the configuration names (secrets, keys, CAs); watched for hot reload.
    pub watched_files: Vec<std::path::PathBuf>,
    /// Plugin instances by name with the table they were built from (reused by reloads).
    pub plugins: Plugins,
    /// The route table.
    pub routes: RouteTable,
    /// The MCP servers of `[mcp_server.*]` (kept by reloads that leave their table unchanged).
    pub mcp_servers: mcp_servers::Servers,
}

/// The configuration the proxy serves from, swapped atomically on reload.
pub type SharedConfig = Arc<ArcSwap<RuntimeConfig>>;

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, registry: &PluginRegistry) -> Result<RuntimeConfig, ConfigErrors> {
    reload_file(path, registry, None)
}

/// Like `load_file`, reusing the unchanged instances of `previous` that survive reloads.
pub fn reload_file(
    path: &Path,
    registry: &PluginRegistry,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let source = read_limited_string(path, MAX_CONFIG_FILE).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path,
            "",
            None,
            format!("cannot read the file: {e}"),
        )])
    })?;
    build(path, &source, registry, previous)
}

/// Validates `source`, reporting errors against `path`.
pub fn load_str(
    path: &Path,
    source: &str,
    registry: &PluginRegistry,
) -> Result<RuntimeConfig, ConfigErrors> {
    build(path, source, registry, None)
}

fn build(
    path: &Path,
    source: &str,
    registry: &PluginRegistry,
    previous: Option<&RuntimeConfig>,
) -> Result<RuntimeConfig, ConfigErrors> {
    let file = parse::parse(path, source)?;
    let mut report = Report::new(path, source);
    let plugins = plugins::build_plugins(
        &file.plugin,
        registry,
        previous.map(|p| &p.plugins),
        &mut report,
    );
    let servers = mcp_servers::build_servers(
        &file.mcp_server,
        previous.map(|p| &p.mcp_servers),
        &mut report,
    );
    let sealer = mcp_servers::sealer(&file.server, &mut report);
    let cx = RouteContext {
        plugins: &plugins,
        declared: &file.plugin,
        default_max_body: file.server.max_body.map_or(defaults::MAX_BODY, |s| s.0),
        body_timeout: file
            .server
            .body_timeout
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(defaults::BODY_TIMEOUT),
        federation: upstream::FederationParts {
            servers: &servers,
            declared: file.mcp_server.keys().map(String::as_str).collect(),
            sealer: sealer.as_ref(),
        },
    };
    let routes = route::build_routes(&file.route, &cx, &mut report);
    let server = server::server_settings(&file.server, &mut report);
    let telemetry = telemetry::telemetry_settings(&file.telemetry, &mut report);
    report.finish()?;
    Ok(RuntimeConfig {
        server,
        telemetry,
        watched_files: {
            let mut files = files::referenced_files(&file, &plugins);
            files.extend(mcp_servers::referenced_files(
                &file.mcp_server,
                &file.server,
            ));
            files
        },
        plugins,
        routes: RouteTable::new(routes),
        mcp_servers: servers,
    })
}

#[cfg(test)]
mod tests;

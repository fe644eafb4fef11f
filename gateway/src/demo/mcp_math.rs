//! The demo MCP math server: `add` and `multiply` over Streamable HTTP, built with the official Rust
//! MCP SDK (rmcp) and served by axum at `/mcp`.

use std::future::Future;

use axum::serve::ListenerExt;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};

/// Two operands.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Operands {
    /// First operand.
    pub a: f64,
    /// Second operand.
    pub b: f64,
}

/// The math server.
#[derive(Debug, Clone)]
pub struct MathServer {
    tool_router: ToolRouter<Self>,
}

impl Default for MathServer {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

/// Integral results print without a trailing `.0` (`714`, not `714.0`).
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

#[tool_router]
impl MathServer {
    /// Adds two numbers.
    #[tool(description = "Add two numbers")]
    fn add(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> String {
        format_number(a + b)
    }

    /// Multiplies two numbers.
    #[tool(description = "Multiply two numbers")]
    fn multiply(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> String {
        format_number(a * b)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MathServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves the MCP math server on `listener` (path `/mcp`; the text server at `/text/mcp`; plus
/// `/healthz`) until `shutdown`.
pub async fn serve_mcp_math(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service: StreamableHttpService<MathServer, LocalSessionManager> =
        StreamableHttpService::new(
            || Ok(MathServer::default()),
            Default::default(),
            StreamableHttpServerConfig::default().with_sse_keep_alive(None),
        );
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .nest_service("/text/mcp", super::mcp_text::text_service())
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    // Without TCP_NODELAY each streamed answer would wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn integral_results_have_no_fraction() {
        assert_eq!(format_number(42.0 * 17.0), "714");
        assert_eq!(format_number(0.5 + 0.25), "0.75");
    }
}

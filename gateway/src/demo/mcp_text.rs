//! The demo's second MCP server, federated with the math server behind one route: `upper` and
//! `count_words`, built with rmcp like the math server.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};

/// Some text.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Text {
    /// The text.
    pub text: String,
}

/// The text server.
#[derive(Debug, Clone)]
pub struct TextServer {
    tool_router: ToolRouter<Self>,
}

impl Default for TextServer {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl TextServer {
    /// The text in capitals.
    #[tool(description = "Turn text into capitals")]
    fn upper(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text.to_uppercase()
    }

    /// How many words the text has.
    #[tool(description = "Count the words of a text")]
    fn count_words(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text.split_whitespace().count().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TextServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The text server as a Streamable HTTP service (mounted at `/text/mcp` beside the math server).
pub fn text_service() -> StreamableHttpService<TextServer, LocalSessionManager> {
    StreamableHttpService::new(
        || Ok(TextServer::default()),
        Default::default(),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    )
}

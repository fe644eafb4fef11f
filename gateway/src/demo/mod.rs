//! TEMPORARY stub until the demo upstreams land (being written in parallel).
use std::net::SocketAddr;
/// Echo options.
#[derive(Debug, Clone, Default)]
pub struct EchoOptions {
    /// Delay.
    pub event_delay: std::time::Duration,
    /// Key.
    pub expected_api_key: Option<String>,
}
/// Demo upstreams.
pub struct DemoUpstreams;
impl DemoUpstreams {
    /// Start.
    pub fn start(_: SocketAddr, _: SocketAddr, _: EchoOptions) -> std::io::Result<Self> {
        Err(std::io::Error::other("stub"))
    }
    /// Addr.
    pub fn mcp_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], 0).into()
    }
    /// Addr.
    pub fn llm_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], 0).into()
    }
    /// Stop.
    pub fn shutdown(self) {}
}

//! Upstream connections of the exchange, taken from the pool without building a connect future.
//!
//! Pingora's `get_http_session` future holds the whole connect path (TCP, TLS handshake) even
//! when it only hands out a pooled connection. Boxed, that is an allocation and a large copy per
//! request; inline, it would make every future above it that large (docs/benchmarks.md). HTTP/1.1-only
//! upstreams (every plain-text one, and TLS ones without `http2`) therefore have a pool of their
//! own, looked into with a small future; only a pool miss pays for the boxed connect.

use pingora::connectors::http::{v1, Connector};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::Result;

/// Hands out and takes back upstream connections.
pub struct UpstreamConnector {
    /// Connections to HTTP/1.1-only upstreams.
    h1: v1::Connector,
    /// Connections to upstreams offered h2 by ALPN (h2 or HTTP/1.1, as negotiated).
    negotiated: Connector,
}

impl UpstreamConnector {
    /// Connectors with empty pools and Pingora's default options.
    pub fn new() -> Self {
        Self {
            h1: v1::Connector::new(None),
            negotiated: Connector::new(None),
        }
    }

    /// A connection to `peer`, and whether it came from the pool.
    pub async fn session(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        if !h1_only(peer) {
            return Box::pin(self.negotiated.get_http_session(peer)).await;
        }
        if let Some(pooled) = self.h1.reused_http_session(peer).await {
            return Ok((HttpSession::H1(pooled), true));
        }
        let (fresh, reused) = Box::pin(self.h1.get_http_session(peer)).await?;
        Ok((HttpSession::H1(fresh), reused))
    }

    /// Gives a connection whose exchange completed back to the pool it came from.
    pub async fn release(&self, session: HttpSession, peer: &HttpPeer) {
        match session {
            HttpSession::H1(h1) if h1_only(peer) => {
                self.h1.release_http_session(h1, peer, None).await;
            }
            other => {
                self.negotiated
                    .release_http_session(other, peer, None)
                    .await;
            }
        }
    }
}

impl Default for UpstreamConnector {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `peer` is offered nothing above HTTP/1.1 by ALPN (the test Pingora's own `Connector`
/// makes to pick its HTTP/1.1 pool).
fn h1_only(peer: &HttpPeer) -> bool {
    peer.get_peer_options()
        .is_none_or(|options| options.alpn.get_max_http_version() == 1)
}

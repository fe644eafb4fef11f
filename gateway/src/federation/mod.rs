//! MCP federation: the gateway terminates MCP for a route that names several servers. It is the
//! server its clients talk to (in either era) and a client of each configured server (in the
//! era that server speaks), and bridges between them. docs/federation.md describes what a client
//! sees; this module is built per route at configuration load and holds no per-client state
//! but caches: a 2025-era client's session travels sealed in its session id (`seal`).
//!
//! A request goes through the gateway's plugin chain first (with the names the client sees),
//! then [`Federation::serve`] answers it: locally (`initialize`, `server/discover`, `ping`),
//! from every server at once (lists), or from the one server a name or URI belongs to. A server
//! is reached over Streamable HTTP or runs as processes of the gateway's own (`stdio`).

mod answer;
mod bridge;
mod client;
mod dispatch;
mod exchange;
mod handshake;
pub mod jsonrpc;
pub mod link;
mod listen;
mod lists;
mod relay;
pub mod seal;
pub mod spec;
pub mod stdio;

use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::Value;

pub use answer::{Answer, AnswerBody};
pub use link::ServerLink;
pub use seal::SessionSealer;
pub use spec::ServerSpec;

/// The sealer of a route's session ids.
#[derive(Debug, Clone)]
pub enum Sealer {
    /// Keyed by `[server] session_key`.
    Configured(Arc<SessionSealer>),
    /// The process's random key.
    Process(&'static SessionSealer),
}

impl std::ops::Deref for Sealer {
    type Target = SessionSealer;

    fn deref(&self) -> &SessionSealer {
        match self {
            Sealer::Configured(sealer) => sealer,
            Sealer::Process(sealer) => sealer,
        }
    }
}

/// One federated route's servers and caches.
pub struct Federation {
    /// The servers, in the route's order (which is the order of merged lists).
    servers: Vec<Arc<ServerLink>>,
    /// Indexes into `servers`, the longest prefix first (an unprefixed server last), for
    /// finding the server of an exposed name.
    by_prefix: Vec<usize>,
    sealer: Sealer,
    /// Server sessions opened again after the ones sealed in a client's id expired (or were
    /// never opened): keyed by the client's session id and the server's index.
    reopened: moka::sync::Cache<(Arc<str>, usize), Arc<link::SessionRef>>,
    /// Sessions their clients ended (DELETE) on this replica, by their ids' fingerprints:
    /// refused from then on.
    ended: moka::sync::Cache<seal::Fingerprint, ()>,
    /// Which server listed a resource URI (index into `servers`).
    resource_owners: moka::sync::Cache<String, usize>,
    /// Servers' list parts they declared public and cacheable (`ttlMs`), until they expire or
    /// the server announces a change.
    lists: lists::ListCache,
    /// Resource templates each server listed, by server index.
    templates: arc_swap::ArcSwap<Vec<(usize, String)>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field(
                "servers",
                &self.servers.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Client sessions whose re-opened server sessions a replica remembers.
const REOPENED_CAPACITY: u64 = 100_000;
/// Resource URIs whose server a replica remembers.
const RESOURCE_OWNERS_CAPACITY: u64 = 100_000;

impl Federation {
    /// A federation of `servers` (at least one), sealing session ids with `sealer`.
    pub fn new(servers: Vec<Arc<ServerLink>>, sealer: Sealer) -> Self {
        let mut by_prefix: Vec<usize> = (0..servers.len()).collect();
        by_prefix.sort_by_key(|&i| std::cmp::Reverse(servers[i].spec.prefix.len()));
        Self {
            servers,
            by_prefix,
            sealer,
            reopened: moka::sync::Cache::builder()
                .max_capacity(REOPENED_CAPACITY)
                .time_to_idle(std::time::Duration::from_secs(3600))
                .build(),
            ended: moka::sync::Cache::builder()
                .max_capacity(REOPENED_CAPACITY)
                .time_to_live(std::time::Duration::from_secs(24 * 3600))
                .build(),
            resource_owners: moka::sync::Cache::new(RESOURCE_OWNERS_CAPACITY),
            lists: lists::ListCache::default(),
            templates: arc_swap::ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The servers, in the route's order.
    pub fn servers(&self) -> &[Arc<ServerLink>] {
        &self.servers
    }

    /// Answers one client request (its body already through the plugins' body phase).
    pub async fn serve(self: &Arc<Self>, request: Inbound<'_>) -> Answer {
        dispatch::serve(self, request).await
    }

    /// The server an exposed tool or prompt name belongs to, with the server's own name.
    fn server_of_name<'a>(&self, exposed: &'a str) -> Option<(usize, &'a str)> {
        self.by_prefix
            .iter()
            .find_map(|&i| self.servers[i].spec.own_name(exposed).map(|own| (i, own)))
    }
}

/// A client request as the federation reads it.
pub struct Inbound<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The JSON-RPC body of a POST.
    pub body: Option<Value>,
    /// The W3C `traceparent` of the gateway's upstream span, sent to the servers.
    pub traceparent: Option<http::HeaderValue>,
}

//! Client connections: caps on how many are open (in all, and from one address) and a deadline
//! on request heads, around the proxy's HTTP application. Without them a client that opens
//! connections and trickles its headers (slowloris) holds memory for as long as it likes.

mod head_deadline;
pub mod metrics;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::config::ConnectionLimits;
use head_deadline::{FirstHead, HeadDeadline};

/// The proxy's application `A`, behind the connection caps and the head deadline.
pub struct ConnectionGuard<A> {
    app: Arc<A>,
    limits: ConnectionLimits,
    counts: Arc<Counts>,
}

impl<A> ConnectionGuard<A> {
    /// `app` behind `limits`.
    pub fn new(app: A, limits: ConnectionLimits) -> Self {
        Self {
            app: Arc::new(app),
            limits,
            counts: Arc::new(Counts::default()),
        }
    }
}

/// The open connections, in all and by client address (kept only when that is capped).
#[derive(Debug, Default)]
struct Counts {
    live: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused (the metric's `cause`).
const OVER_MAX: &str = "max_connections";
const OVER_PER_CLIENT: &str = "max_connections_per_client";

impl Counts {
    /// A place for a connection from `client`, or the cap it would pass.
    fn admit(
        self: &Arc<Self>,
        limits: &ConnectionLimits,
        client: Option<IpAddr>,
    ) -> Result<Permit, &'static str> {
        if self.live.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(OVER_MAX);
        }
        let counted = match (limits.max_per_client, client) {
            (Some(cap), Some(ip)) => {
                let mut per_client = self
                    .per_client
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let open = per_client.entry(ip).or_insert(0);
                if *open >= cap {
                    drop(per_client);
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(OVER_PER_CLIENT);
                }
                *open += 1;
                Some(ip)
            }
            _ => None,
        };
        metrics::live(true);
        Ok(Permit {
            counts: self.clone(),
            client: counted,
        })
    }
}

/// A connection's place in the counts, given back when the connection ends.
#[derive(Debug)]
pub struct Permit {
    counts: Arc<Counts>,
    /// The address counted per client, if it was.
    client: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counts.live.fetch_sub(1, Ordering::AcqRel);
        metrics::live(false);
        if let Some(ip) = self.client {
            let mut per_client = self
                .counts
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(open) = per_client.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_client.remove(&ip);
                }
            }
        }
    }
}

#[async_trait]
impl<A> ServerApp for ConnectionGuard<A>
where
    A: ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = stream
            .get_socket_digest()
            .and_then(|digest| digest.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let permit = match self.counts.admit(&self.limits, client) {
            Ok(permit) => permit,
            Err(cause) => {
                metrics::refused(cause);
                tracing::debug!(?client, cause, "connection refused: cap reached");
                return None;
            }
        };
        let mut guarded = HeadDeadline::new(stream, self.limits.header_timeout, permit);
        // Pingora logs each connection whose head fails as an ERROR; these are the client's
        // doing (and counted: `tollgate_client_header_timeouts_total`), so they end here. Like
        // Pingora, a connection still waiting for its head is dropped when the service shuts
        // down, rather than holding the shutdown until `header_timeout`.
        let head = tokio::select! {
            head = guarded.first_head() => head,
            () = shutting_down(shutdown.clone()) => {
                tracing::trace!(?client, "shutting down: connection closed before a request head");
                return None;
            }
        };
        match head {
            FirstHead::Arrived => {}
            FirstHead::Closed => {
                tracing::trace!(?client, "connection closed before a request head");
                return None;
            }
            FirstHead::TimedOut => {
                tracing::debug!(
                    ?client,
                    "request head did not arrive in time: connection closed"
                );
                return None;
            }
            FirstHead::Failed(error) => {
                tracing::debug!(?client, %error, "reading the request head failed");
                return None;
            }
        }
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

/// Resolves when the service starts shutting down (never, once nothing can tell it to).
async fn shutting_down(mut watch: ShutdownWatch) {
    if watch.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: usize, per_client: Option<usize>) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(1),
            max_connections: max,
            max_per_client: per_client,
        }
    }

    #[test]
    fn caps_hold_and_places_come_back() {
        let counts = Arc::new(Counts::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let limits = limits(3, Some(2));
        let first = counts.admit(&limits, Some(a)).unwrap();
        let _second = counts.admit(&limits, Some(a)).unwrap();
        assert_eq!(counts.admit(&limits, Some(a)).unwrap_err(), OVER_PER_CLIENT);
        let _third = counts.admit(&limits, Some(b)).unwrap();
        assert_eq!(counts.admit(&limits, Some(b)).unwrap_err(), OVER_MAX);
        drop(first);
        let _again = counts.admit(&limits, Some(a)).expect("a place came back");
        assert_eq!(counts.live.load(Ordering::Acquire), 3);
    }

    #[tokio::test]
    async fn shutting_down_resolves_on_shutdown_only() {
        let (tell, watch) = tokio::sync::watch::channel(false);
        let waiting = tokio::spawn(shutting_down(watch.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        tell.send(true).unwrap();
        waiting.await.unwrap();
        let (tell, watch) = tokio::sync::watch::channel(false);
        drop(tell);
        let orphaned = shutting_down(watch);
        let outcome = tokio::time::timeout(Duration::from_millis(50), orphaned).await;
        assert!(outcome.is_err(), "a dropped watch is not a shutdown");
    }

    #[test]
    fn without_a_per_client_cap_no_address_is_kept() {
        let counts = Arc::new(Counts::default());
        let permit = counts
            .admit(&limits(10, None), Some("10.0.0.1".parse().unwrap()))
            .unwrap();
        assert!(counts.per_client.lock().unwrap().is_empty());
        drop(permit);
        assert_eq!(counts.live.load(Ordering::Acquire), 0);
    }
}

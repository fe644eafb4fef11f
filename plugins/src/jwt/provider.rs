//! Where the key set comes from: fixed at load (file, inline JWKS, PEM, secret) or a JWKS URL
//! fetched in the background, refreshed on a schedule and on an unknown `kid`. When the identity
//! provider is down, the last good key set stays in use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_plugin_api::trace::TraceCtx;

use arc_swap::ArcSwapOption;

use super::keys::KeySet;

/// Longest wait for the JWKS endpoint.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The key set of a `jwt` plugin instance.
#[derive(Debug)]
pub enum KeyProvider {
    /// Keys fixed at configuration load.
    Static(Arc<KeySet>),
    /// Keys from a JWKS URL.
    Remote(Arc<RemoteJwks>),
}

/// A key set with the time it was fetched.
#[derive(Debug)]
struct Snapshot {
    keys: Arc<KeySet>,
    fetched_at: Instant,
}

/// A JWKS endpoint and the last key set fetched from it.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    refresh: Duration,
    min_refetch: Duration,
    client: reqwest::Client,
    current: ArcSwapOption<Snapshot>,
    refreshing: tokio::sync::Mutex<()>,
    created: Instant,
    /// Milliseconds after `created` of the last fetch attempt (0: none yet).
    last_attempt_ms: AtomicU64,
}

impl RemoteJwks {
    /// A provider for `url`, refreshed every `refresh`, refetched on an unknown `kid` at most
    /// every `min_refetch`.
    pub fn new(url: String, refresh: Duration, min_refetch: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the JWKS HTTP client: {e}"))?;
        Ok(Self {
            url,
            refresh,
            min_refetch,
            client,
            current: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
            created: Instant::now(),
            last_attempt_ms: AtomicU64::new(0),
        })
    }

    /// The current key set, fetching it on first use and refreshing it in the background once
    /// it is older than the refresh interval.
    pub async fn keys(self: &Arc<Self>, trace: &TraceCtx) -> Option<Arc<KeySet>> {
        match self.current.load_full() {
            None => {
                let _span = trace.io_span("jwks fetch");
                self.fetch().await;
                self.current.load_full().map(|s| s.keys.clone())
            }
            Some(snapshot) => {
                if snapshot.fetched_at.elapsed() >= self.refresh
                    && self.may_attempt(self.min_refetch.min(self.refresh))
                {
                    let this = self.clone();
                    tokio::spawn(async move { this.fetch().await });
                }
                Some(snapshot.keys.clone())
            }
        }
    }

    /// Refetches because a token names a `kid` the set lacks; rate-limited. Returns the new set
    /// if a fetch happened.
    pub async fn refetch_for_unknown_kid(&self, trace: &TraceCtx) -> Option<Arc<KeySet>> {
        if !self.may_attempt(self.min_refetch) {
            return None;
        }
        let _span = trace.io_span("jwks fetch");
        self.fetch().await;
        self.current.load_full().map(|s| s.keys.clone())
    }

    fn may_attempt(&self, interval: Duration) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        last == 0 || self.now_ms().saturating_sub(last) >= interval.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        (self.created.elapsed().as_millis() as u64).max(1)
    }

    async fn fetch(&self) {
        let started = self.now_ms();
        let _single_flight = self.refreshing.lock().await;
        // Someone else fetched while we waited for the lock.
        if self.last_attempt_ms.load(Ordering::Relaxed) >= started {
            return;
        }
        self.last_attempt_ms.store(self.now_ms(), Ordering::Relaxed);
        match self.download().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.keys.len(), "JWKS fetched");
                self.current.store(Some(Arc::new(Snapshot {
                    keys: Arc::new(keys),
                    fetched_at: Instant::now(),
                })));
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the last good key set");
            }
        }
    }

    async fn download(&self) -> Result<KeySet, String> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        KeySet::from_jwks(&text)
    }
}

//! Hot reload: the configuration file and the files it names are checked every `watch_interval`
//! (by content, so Kubernetes' symlink swaps of ConfigMap and Secret volumes are seen) and on
//! SIGHUP. A valid new configuration is swapped in atomically — requests in flight finish on the
//! routes and plugins they started with — and an invalid one is reported and counted while the
//! last good configuration stays.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tollgate_plugin_api::PluginRegistry;

use crate::config::{self, SharedConfig};
use crate::telemetry::Metrics;
use crate::tls::CertSlot;

/// Watches one configuration file and swaps in its new versions.
pub struct Reloader {
    path: PathBuf,
    registry: PluginRegistry,
    shared: SharedConfig,
    metrics: Arc<Metrics>,
    interval: Option<Duration>,
    cert_slot: Option<Arc<CertSlot>>,
}

fn tls_files(config: &config::RuntimeConfig) -> Option<&crate::tls::TlsFiles> {
    config.server.tls.as_ref().map(|tls| &tls.files)
}

impl Reloader {
    /// A reloader for `path`, polling every `interval` (`None`: only on SIGHUP).
    pub fn new(
        path: PathBuf,
        registry: PluginRegistry,
        shared: SharedConfig,
        metrics: Arc<Metrics>,
        interval: Option<Duration>,
    ) -> Self {
        Self {
            path,
            registry,
            shared,
            metrics,
            interval,
            cert_slot: None,
        }
    }

    /// Also swaps the listener's certificate when a reload brings a new one.
    pub fn with_cert_slot(mut self, slot: Option<Arc<CertSlot>>) -> Self {
        self.cert_slot = slot;
        self
    }

    /// Starts the watcher on its own thread (file reads never run on the proxy's runtimes).
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("tollgate-reload".into())
            .spawn(move || runtime.block_on(self.run()))
    }

    async fn run(self) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reloads come from file changes only");
                None
            }
        };
        let mut last = fingerprint(&self.path, &self.shared.load().watched_files);
        loop {
            let forced = tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                () = sleep_or_forever(self.interval) => false,
            };
            let now = fingerprint(&self.path, &self.shared.load().watched_files);
            if forced || now != last {
                self.reload(forced);
                // The new configuration may name other files.
                last = fingerprint(&self.path, &self.shared.load().watched_files);
            }
        }
    }

    fn reload(&self, forced: bool) {
        let old = self.shared.load();
        match config::reload_file(&self.path, &self.registry, Some(&old)) {
            Ok(new) => {
                if new.server.listen != old.server.listen
                    || new.server.admin != old.server.admin
                    || new.server.threads != old.server.threads
                    || tls_files(&new) != tls_files(&old)
                {
                    tracing::warn!("changes to [server] listeners, threads or TLS files take effect at the next restart");
                }
                if let (Some(slot), Some(tls)) = (&self.cert_slot, &new.server.tls) {
                    // Same files, maybe new contents (a renewed certificate).
                    slot.store(tls.certified.clone());
                }
                let routes = new.routes.routes().len();
                let replaced = self.shared.swap(Arc::new(new));
                config::retire_replaced(&replaced.mcp_servers, &self.shared.load().mcp_servers);
                self.metrics.config_reload(true);
                tracing::info!(config = %self.path.display(), routes, sighup = forced, "configuration reloaded");
            }
            Err(errors) => {
                self.metrics.config_reload(false);
                tracing::error!(config = %self.path.display(), "configuration not reloaded, the last good one stays:\n{errors}");
            }
        }
    }
}

async fn sleep_or_forever(interval: Option<Duration>) {
    match interval {
        Some(interval) => tokio::time::sleep(interval).await,
        None => std::future::pending().await,
    }
}

/// A hash of the contents of the configuration and the files it names (unreadable counts too).
fn fingerprint(path: &Path, files: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for file in std::iter::once(path).chain(files.iter().map(PathBuf::as_path)) {
        match tollgate_plugin_api::files::read_limited(
            file,
            tollgate_plugin_api::files::MAX_CONFIG_FILE,
        ) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(error) => error.kind().hash(&mut hasher),
        }
    }
    hasher.finish()
}

//! Process lifecycle: readiness, in-flight accounting, and the shutdown sequence.
//!
//! SIGTERM: `/readyz` turns 503 at once and the gateway keeps serving for `drain_delay` (load
//! balancers and Kubernetes endpoints catch up), then stops accepting; requests and streams in
//! flight get up to `grace_period`, and the process exits 0 as soon as none remain. SIGQUIT
//! hands the listening sockets to a new process started with `tollgate run --upgrade`, then
//! drains the same way. SIGINT stops at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;

/// Work to finish before the process exits (flush the audit log, export the last spans).
pub type ExitHook = Box<dyn Fn() + Send + Sync>;

/// Shared lifecycle state: whether the gateway is draining and how many requests are in flight.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Lifecycle {
    /// A lifecycle in the serving state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether shutdown has begun (readiness fails, responses close their connections).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Requests currently being served.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn track(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// One request in flight; dropping it ends the request's count.
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The signal handling installed into Pingora's server loop.
pub(crate) struct SignalWatch {
    lifecycle: Arc<Lifecycle>,
    drain_delay: Duration,
}

impl SignalWatch {
    pub(crate) fn new(lifecycle: Arc<Lifecycle>, drain_delay: Duration) -> Self {
        Self {
            lifecycle,
            drain_delay,
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; SIGTERM will stop at once");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = quit.recv() => {
                tracing::info!("SIGQUIT: handing the listeners to the new process, then draining");
                self.lifecycle.start_draining();
                ShutdownSignal::GracefulUpgrade
            }
            _ = term.recv() => {
                tracing::info!(
                    drain_delay = ?self.drain_delay,
                    "SIGTERM: readiness off; serving on until the drain delay ends"
                );
                self.lifecycle.start_draining();
                tokio::time::sleep(self.drain_delay).await;
                tracing::info!("no longer accepting; waiting for requests in flight");
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}

/// Exits the process once the listeners have stopped and no request is in flight, so a drained
/// gateway does not sit out the whole grace period. Runs `hooks` before exiting.
pub(crate) fn exit_when_drained(
    lifecycle: Arc<Lifecycle>,
    mut phases: broadcast::Receiver<ExecutionPhase>,
    hooks: Vec<ExitHook>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tollgate-drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            while lifecycle.in_flight() > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::info!("drained; exiting");
            for hook in &hooks {
                hook();
            }
            std::process::exit(0);
        })
        .map(|_| ())
}

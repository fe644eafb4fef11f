//! Notices a client that goes away while the gateway waits on the upstream, so that the upstream
//! request is dropped at once (a long LLM call stops costing tokens) instead of running on.

use std::future::Future;

use pingora::proxy::Session;

/// Watches the client connection of one exchange.
#[derive(Debug)]
pub struct ClientWatch {
    active: bool,
}

impl Default for ClientWatch {
    fn default() -> Self {
        Self { active: true }
    }
}

impl ClientWatch {
    /// Awaits `op`, or returns `None` as soon as the client closes its connection. Dropping `op`
    /// closes the upstream connection it was using.
    pub async fn guard<T>(
        &mut self,
        session: &mut Session,
        op: impl Future<Output = T>,
    ) -> Option<T> {
        tokio::pin!(op);
        loop {
            if !self.active {
                return Some(op.await);
            }
            tokio::select! {
                biased;
                out = &mut op => return Some(out),
                idle = session.as_downstream_mut().read_body_or_idle(true) => {
                    if idle.is_err() {
                        return None;
                    }
                    // The client sent more bytes (pipelining): stop watching rather than spin.
                    self.active = false;
                }
            }
        }
    }
}

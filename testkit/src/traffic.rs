//! Traffic that must survive a change to the gateway (a reload, a listener handover): clients
//! sending GET requests to one URL in a loop until stopped, recording every failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::net::client;

/// Client loops; failures are a transport error or a non-200 answer.
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<(u32, Vec<String>)>>,
}

impl ClientLoop {
    /// Starts `workers` loops on `url`; with `keep_alive` each loop reuses its connection,
    /// otherwise every request opens a new one.
    pub fn start(url: &str, workers: usize, keep_alive: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (stop, url) = (stop.clone(), url.to_string());
                tokio::spawn(async move {
                    let shared = client();
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let fresh;
                        let client = if keep_alive {
                            &shared
                        } else {
                            fresh = client();
                            &fresh
                        };
                        match client.get(&url).send().await {
                            Ok(resp) if resp.status() == 200 => ok += 1,
                            Ok(resp) => failed.push(resp.status().to_string()),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Self { stop, workers }
    }

    /// Stops the loops; the number of successful requests and the failures, over all loops.
    pub async fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for worker in self.workers {
            let (n, errors) = worker.await.expect("client loop");
            ok += n;
            failed.extend(errors);
        }
        (ok, failed)
    }
}

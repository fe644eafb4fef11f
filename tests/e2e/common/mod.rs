//! Shared end-to-end test harness: the real gateway binary on loopback ports, test upstreams,
//! and the Python SDK runner.

#![allow(dead_code)]

pub mod gateway;
pub mod keys;
pub mod otlp;
pub mod python;
pub mod redis;
pub mod upstream;

use std::net::{SocketAddr, TcpListener};

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// An HTTP client that neither retries nor follows redirects, with a generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// The value of one Prometheus series (`name{labels}` exactly as exposed) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Clients sending GET requests to one URL in a loop until stopped, recording every failure
/// (a transport error or a non-200 answer): traffic that must survive reloads and handovers.
pub struct ClientLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<(u32, Vec<String>)>>,
}

impl ClientLoop {
    /// Starts `workers` loops on `url`; with `keep_alive` each loop reuses its connection,
    /// otherwise every request opens a new one.
    pub fn start(url: &str, workers: usize, keep_alive: bool) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (stop, url) = (stop.clone(), url.to_string());
                tokio::spawn(async move {
                    let shared = client();
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
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
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for worker in self.workers {
            let (n, errors) = worker.await.expect("client loop");
            ok += n;
            failed.extend(errors);
        }
        (ok, failed)
    }
}

//! What the load benchmarks share: their knobs (environment variables, the quick smoke mode),
//! latency figures with percentiles, the two ways of sending load (a closed loop over several
//! connections, one request after another), the figures as table rows and JSON, and the report
//! file under `target/bench/`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Whether the benchmark should only prove that it runs: `--test` on its command line (`cargo
/// bench -- --test`) or `TOLLGATE_BENCH_QUICK` set (`cargo test --bench` passes no arguments).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--test") || std::env::var_os("TOLLGATE_BENCH_QUICK").is_some()
}

/// The number in the environment variable `name`, or `default` when it is unset or not one.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The knobs of a closed loop: TOLLGATE_BENCH_CONNECTIONS and TOLLGATE_BENCH_SECONDS, over the
/// benchmark's defaults; in the [`quick`] mode one second, no warm-up.
#[derive(Debug, Clone, Copy)]
pub struct LoopSettings {
    /// Connections, each with a request in flight.
    pub connections: usize,
    /// Load sent before recording.
    pub warmup: Duration,
    /// Load recorded.
    pub measure: Duration,
}

impl LoopSettings {
    /// The settings from the environment, else `connections`, `seconds` measured after `warmup`.
    pub fn from_env(connections: usize, seconds: u64, warmup: Duration) -> Self {
        let quick = quick();
        Self {
            connections: env_number("TOLLGATE_BENCH_CONNECTIONS", connections),
            warmup: if quick { Duration::ZERO } else { warmup },
            measure: Duration::from_secs(if quick {
                1
            } else {
                env_number("TOLLGATE_BENCH_SECONDS", seconds as usize) as u64
            }),
        }
    }
}

/// The gateway's worker threads for a benchmark: TOLLGATE_BENCH_THREADS, else 1.
pub fn gateway_threads() -> usize {
    env_number("TOLLGATE_BENCH_THREADS", 1)
}

/// Latencies of one run, with its failures and its length.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Requests answered as expected (one latency each).
    pub requests: usize,
    /// Requests that failed (not timed).
    pub errors: usize,
    /// Wall time of the run.
    pub seconds: f64,
    /// Every latency, sorted once the run is over ([`Figures::finish`]).
    latencies: Vec<Duration>,
}

impl Figures {
    /// Records one answered request.
    pub fn record(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// Counts one failed request.
    pub fn fail(&mut self) {
        self.errors += 1;
    }

    /// Adds another run's (or connection's) figures.
    pub fn merge(&mut self, other: Figures) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.seconds += other.seconds;
    }

    /// Ends recording: sorts the latencies; `seconds` is added to the wall time.
    pub fn finish(mut self, seconds: f64) -> Self {
        self.latencies.sort_unstable();
        self.requests = self.latencies.len();
        self.seconds += seconds;
        self
    }

    /// The latency below which a fraction `p` of the requests fall (`0.5`: the median).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    /// [`percentile`](Self::percentile) in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        self.percentile(p).as_secs_f64() * 1000.0
    }

    /// Answered requests per second of wall time.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The figures for the JSON report.
    pub fn json(&self) -> Value {
        json!({"requests": self.requests, "errors": self.errors, "rps": self.rps(),
               "p50_ms": self.ms(0.5), "p90_ms": self.ms(0.9),
               "p99_ms": self.ms(0.99), "max_ms": self.ms(1.0)})
    }

    /// A Markdown table row (see [`TABLE_HEAD`]).
    pub fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            self.rps(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(1.0),
            self.errors
        )
    }
}

/// The head of a table of [`Figures::row`]s; `what` names the first column, `rate` the second.
pub fn table_head(what: &str, rate: &str) -> String {
    format!("| {what} | {rate} | p50 ms | p90 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|")
}

/// A closed loop: `connections` workers, each sending its next request when the previous one is
/// answered, for `warmup` (not recorded) and then `measure` (see [`LoopSettings`]).
/// `request(worker, client)` sends one
/// request on the worker's own HTTP client (one keep-alive connection) and says whether it was
/// answered as expected; it is timed from the call to the end of its future.
pub async fn closed_loop<F, Fut>(settings: &LoopSettings, request: F) -> Figures
where
    F: Fn(usize, reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let request = Arc::new(request);
    let clients: Vec<reqwest::Client> = (0..settings.connections)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client")
        })
        .collect();
    let run = |duration: Duration| {
        let workers: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(worker, client)| {
                let (request, client) = (request.clone(), client.clone());
                tokio::spawn(async move {
                    let mut figures = Figures::default();
                    let end = Instant::now() + duration;
                    while Instant::now() < end {
                        let started = Instant::now();
                        if request(worker, client.clone()).await {
                            figures.record(started.elapsed());
                        } else {
                            figures.fail();
                        }
                    }
                    figures
                })
            })
            .collect();
        async move {
            let started = Instant::now();
            let mut figures = Figures::default();
            for worker in workers {
                figures.merge(worker.await.expect("load worker"));
            }
            figures.finish(started.elapsed().as_secs_f64())
        }
    };
    if !settings.warmup.is_zero() {
        run(settings.warmup).await;
    }
    run(settings.measure).await
}

/// `count` requests one after another; `request(n)` sends the `n`th and gives its latency as the
/// benchmark defines it (`None`: it failed). See [`timed`] for a whole request's.
pub async fn sequential<F, Fut>(count: usize, mut request: F) -> Figures
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Option<Duration>>,
{
    let started = Instant::now();
    let mut figures = Figures::default();
    for n in 0..count {
        match request(n).await {
            Some(latency) => figures.record(latency),
            None => figures.fail(),
        }
    }
    figures.finish(started.elapsed().as_secs_f64())
}

/// The time `request` takes, if it says it was answered as expected.
pub async fn timed(request: impl Future<Output = bool>) -> Option<Duration> {
    let started = Instant::now();
    request.await.then(|| started.elapsed())
}

/// Writes `report` as `target/bench/<name>.json` at the workspace's root (whatever
/// `CARGO_TARGET_DIR` says: the builds may live elsewhere, the results stay with the checkout).
pub fn write_report(name: &str, report: &Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(report).unwrap_or_default(),
        )
    });
    if let Err(e) = written {
        eprintln!("cannot write target/bench/{name}.json: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_latencies() {
        let mut figures = Figures::default();
        for ms in [5, 1, 4, 2, 3] {
            figures.record(Duration::from_millis(ms));
        }
        figures.fail();
        let figures = figures.finish(2.0);
        assert_eq!(figures.requests, 5);
        assert_eq!(figures.errors, 1);
        assert_eq!(figures.percentile(0.0), Duration::from_millis(1));
        assert_eq!(figures.percentile(0.5), Duration::from_millis(3));
        assert_eq!(figures.percentile(1.0), Duration::from_millis(5));
        assert_eq!(figures.rps(), 2.5);
        assert_eq!(Figures::default().percentile(0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn sequential_counts_failures_apart() {
        let figures = sequential(4, |n| async move {
            (n % 2 == 0).then_some(Duration::from_millis(n as u64))
        })
        .await;
        assert_eq!((figures.requests, figures.errors), (2, 2));
        assert_eq!(figures.percentile(1.0), Duration::from_millis(2));
    }
}

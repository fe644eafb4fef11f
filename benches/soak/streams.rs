//! Scenario `streams`: many SSE streams open through the gateway at once (the slow echo model
//! pauses between events, so every stream stays open until the client lets go), on a route with
//! the provider key alone and on one with the full chain, from HTTP/1.1 clients (a connection per
//! stream) and from h2c clients (100 streams per connection). Reports the gateway's resident set
//! with all of them open, the cost per stream, and that everything is given back when they close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use tollgate_testkit::load;

use crate::setup::{self, mib, Outcome, Verdict};

/// Streams the gateway opens on one h2 connection to an upstream (`max_h2_streams`).
const UPSTREAM_H2_STREAMS_PER_CONNECTION: usize = 100;

/// The target for the gateway's resident set with the streams open.
const TARGET_MIB: f64 = 300.0;
/// Streams opened per batch, one batch every [`BATCH_PAUSE`].
const BATCH: usize = 200;
const BATCH_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/1.1 streams that come from one source address (one client each).
const PER_ADDRESS: usize = 2000;
/// Streams an h2c client multiplexes over its connection: Pingora's default
/// `SETTINGS_MAX_CONCURRENT_STREAMS`.
const H2C_STREAMS_PER_CONNECTION: usize = 100;
/// File descriptors the gateway holds besides its streams' (listeners, log, runtime), with room.
const GATEWAY_OWN_FDS: usize = 100;

/// How the clients reach the gateway.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// HTTP/1.1: a connection per stream, so two sockets per stream in the gateway.
    Http1,
    /// HTTP/2 over cleartext, [`H2C_STREAMS_PER_CONNECTION`] streams per connection.
    H2c,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Http1 => "HTTP/1.1, a connection per stream",
            Transport::H2c => "h2c, 100 streams per connection",
        }
    }
}

/// The knobs.
pub struct StreamSettings {
    /// Streams open at once.
    pub streams: usize,
    /// The slow model's pause between events.
    pub event_delay: Duration,
    /// Words of each answer (one event each): streams last about `words × event_delay`.
    pub words: usize,
    /// How long the streams stay open once all are, before the memory is read.
    pub settle: Duration,
    /// A pause for the gateway to finish what it was doing (closing connections, freeing).
    pub rest: Duration,
    /// Only the runs on these routes (`TOLLGATE_SOAK_STREAM_ROUTES`, comma-separated); all if
    /// empty.
    pub routes: Vec<String>,
}

impl StreamSettings {
    pub fn from_env(quick: bool) -> Self {
        Self {
            streams: if quick {
                200
            } else {
                load::env_number("TOLLGATE_SOAK_STREAMS", 10_000)
            },
            event_delay: Duration::from_millis(if quick { 500 } else { 3000 }),
            words: if quick { 30 } else { 100 },
            settle: Duration::from_millis(if quick { 500 } else { 5000 }),
            rest: Duration::from_millis(if quick { 200 } else { 1000 }),
            routes: std::env::var("TOLLGATE_SOAK_STREAM_ROUTES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|route| !route.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// Whether the runs on `route` are wanted.
    fn runs_route(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route)
    }
}

/// How the streams of one run are going.
#[derive(Default)]
struct Progress {
    /// Streams whose first event arrived.
    opened: AtomicUsize,
    /// Streams that failed before their first event.
    failed: AtomicUsize,
    /// Streams the model ended before the client let go (they were not all open at once).
    ended_early: AtomicUsize,
}

/// One stream: sends the request, reads the first event, then reads on until released.
async fn hold_stream(
    client: reqwest::Client,
    target: Arc<Target>,
    progress: Arc<Progress>,
    mut release: watch::Receiver<bool>,
) {
    let mut request = client
        .post(&target.url)
        .header("content-type", "application/json")
        .body(target.body.clone());
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let fail = |why: String| {
        progress.failed.fetch_add(1, Ordering::Relaxed);
        target.first_error.lock().expect("lock").get_or_insert(why);
    };
    let mut response = match request.send().await {
        Ok(response) if response.status() == 200 => response,
        Ok(response) => return fail(format!("HTTP {}", response.status())),
        Err(e) => return fail(format!("{e:?}")),
    };
    match response.chunk().await {
        Ok(Some(_)) => {
            progress.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(None) => return fail("empty body".into()),
        Err(e) => return fail(format!("{e:?}")),
    }
    loop {
        tokio::select! {
            _ = release.wait_for(|released| *released) => return,
            chunk = response.chunk() => match chunk {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    progress.ended_early.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        }
    }
}

/// Figures of one run.
struct RouteFigures {
    route: &'static str,
    plugins: &'static str,
    transport: Transport,
    wanted: usize,
    opened: usize,
    failed: usize,
    ended_early: usize,
    open_seconds: f64,
    idle_kib: u64,
    open_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    fds: (usize, usize, usize),
    connections_gauge: f64,
    /// Gateway CPU while the streams were open and trickling events, as a share of one core.
    cpu_share: f64,
    closed_cleanly: bool,
    first_error: Option<String>,
}

impl RouteFigures {
    fn per_stream_kib(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        (self.open_kib as f64 - self.idle_kib as f64) / self.opened as f64
    }
}

/// A client per `per_client` streams, from its source address.
fn clients(streams: usize, transport: Transport) -> (Vec<reqwest::Client>, usize) {
    let per_client = match transport {
        Transport::Http1 => PER_ADDRESS,
        Transport::H2c => H2C_STREAMS_PER_CONNECTION,
    };
    let clients = (0..streams.div_ceil(per_client))
        .map(|i| {
            let builder = reqwest::Client::builder()
                .local_address(setup::source_address(i * per_client, PER_ADDRESS));
            match transport {
                Transport::Http1 => builder,
                Transport::H2c => builder.http2_prior_knowledge(),
            }
            .build()
            .expect("client")
        })
        .collect();
    (clients, per_client)
}

/// One run: a gateway of its own, `streams` streams to `route` opened, held, let go.
async fn run_route(
    (route, plugins, transport): (&'static str, &'static str, Transport),
    streams: usize,
    routes: &str,
    threads: usize,
    settings: &StreamSettings,
) -> RouteFigures {
    let mut server_lines = vec![format!("max_connections = {}", streams + 2000)];
    if transport == Transport::H2c {
        server_lines.push("h2c = true".into());
    }
    let gateway = setup::start_gateway(routes, threads, &server_lines).await;
    let url = gateway.url(&format!("/{route}/v1/messages"));
    let token = (!route.ends_with("-plain"))
        .then(|| setup::token("stream-user", "math-users", Duration::from_secs(3600)));
    let words: Vec<String> = (0..settings.words).map(|i| format!("word{i}")).collect();
    let body = json!({"model": "tollgate-echo-1", "max_tokens": settings.words + 1,
                      "stream": true,
                      "messages": [{"role": "user", "content": words.join(" ")}]})
    .to_string();
    let (clients, per_client) = clients(streams, transport);
    let target = Arc::new(Target {
        url,
        token,
        body,
        first_error: std::sync::Mutex::new(None),
    });

    // Warm up with a few streams opened and let go, so that idle means "used".
    let warm_count = 20.min(streams);
    let (release, warm, tasks) = open(&clients, per_client, &target, warm_count);
    wait_open(&warm, warm_count, Duration::from_secs(10)).await;
    release.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
    tokio::time::sleep(settings.rest).await;
    let idle_kib = gateway.rss_kib();
    let idle_fds = gateway.open_fds();

    let started = Instant::now();
    let (release, progress, tasks) = open(&clients, per_client, &target, streams);
    wait_open(&progress, streams, Duration::from_secs(180)).await;
    let open_seconds = started.elapsed().as_secs_f64();
    let cpu_before = gateway.cpu_time();
    tokio::time::sleep(settings.settle).await;
    let cpu_share = (gateway.cpu_time() - cpu_before).as_secs_f64() / settings.settle.as_secs_f64();
    let open_kib = gateway.rss_kib();
    let open_fds = gateway.open_fds();
    let connections_gauge = setup::metric(&gateway, "tollgate_client_connections").await;
    let peak_kib = gateway.peak_rss_kib();

    release.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
    drop(clients);
    // h2 upstream connections outlive their streams in the pool, until its idle timeout (60 s).
    let pooled = if route.starts_with("slow-h2") {
        streams.div_ceil(UPSTREAM_H2_STREAMS_PER_CONNECTION)
    } else {
        0
    };
    let closed_cleanly = setup::settles(Duration::from_secs(30), || {
        gateway.open_fds() <= idle_fds + 8 + pooled
    })
    .await;
    tokio::time::sleep(settings.rest).await;
    let first_error = target.first_error.lock().expect("lock").clone();
    RouteFigures {
        route,
        plugins,
        transport,
        wanted: streams,
        opened: progress.opened.load(Ordering::Relaxed),
        failed: progress.failed.load(Ordering::Relaxed),
        ended_early: progress.ended_early.load(Ordering::Relaxed),
        open_seconds,
        idle_kib,
        open_kib,
        peak_kib,
        after_kib: gateway.rss_kib(),
        fds: (idle_fds, open_fds, gateway.open_fds()),
        connections_gauge,
        cpu_share,
        closed_cleanly,
        first_error,
    }
}

/// What the streams of a run ask for, and the first failure one of them met.
struct Target {
    url: String,
    token: Option<String>,
    body: String,
    first_error: std::sync::Mutex<Option<String>>,
}

/// Opens `count` streams in batches, `per_client` on each client; the release switch, the
/// progress and the streams' tasks.
fn open(
    clients: &[reqwest::Client],
    per_client: usize,
    target: &Arc<Target>,
    count: usize,
) -> (
    watch::Sender<bool>,
    Arc<Progress>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (release, released) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let tasks = (0..count)
        .map(|i| {
            let client = clients[i / per_client].clone();
            let (target, progress, released) = (target.clone(), progress.clone(), released.clone());
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_PAUSE * (i / BATCH) as u32).await;
                hold_stream(client, target, progress, released).await;
            })
        })
        .collect();
    (release, progress, tasks)
}

/// Waits until every stream is open or has failed, or `within` has passed.
async fn wait_open(progress: &Progress, count: usize, within: Duration) {
    setup::settles(within, || {
        progress.opened.load(Ordering::Relaxed) + progress.failed.load(Ordering::Relaxed) >= count
    })
    .await;
}

/// Runs the scenario: a gateway of its own per route and transport. HTTP/1.1 runs hold no more
/// streams than the open-file limit `fd_limit` lets the gateway hold (two sockets each).
pub async fn run(routes: &str, threads: usize, quick: bool, fd_limit: usize) -> Outcome {
    let settings = StreamSettings::from_env(quick);
    let http1_cap = fd_limit.saturating_sub(GATEWAY_OWN_FDS) / 2;
    let http1_streams = settings.streams.min(http1_cap);
    let full = "jwt, prompt-guard, token-ratelimit, secret-injection";
    let mut figures = Vec::new();
    for run in [
        ("slow-plain", "secret-injection", Transport::Http1),
        ("slow", full, Transport::Http1),
        ("slow-plain", "secret-injection", Transport::H2c),
        ("slow", full, Transport::H2c),
        ("slow-h2-plain", "secret-injection", Transport::H2c),
        ("slow-h2", full, Transport::H2c),
        ("slow-h2", full, Transport::Http1),
    ] {
        if !settings.runs_route(run.0) {
            continue;
        }
        let streams = match run.2 {
            Transport::Http1 => http1_streams,
            Transport::H2c => settings.streams,
        };
        figures.push(run_route(run, streams, routes, threads, &settings).await);
    }
    println!(
        "\n## streams: {} SSE streams open at once (an event every {} ms per stream; gateway \
         threads {threads})\n",
        settings.streams,
        settings.event_delay.as_millis()
    );
    if http1_streams < settings.streams {
        println!(
            "HTTP/1.1 runs hold {http1_streams} streams: the gateway needs two sockets per \
             stream and may open {fd_limit} files (the hard limit, which this process cannot \
             raise).\n"
        );
    }
    println!(
        "| route (plugins) | clients | open / failed | opened in s | RSS idle MiB | RSS all open \
         MiB | per stream KiB | peak MiB | RSS after MiB | fds idle / open / after | \
         `tollgate_client_connections` | gateway CPU while open |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} ({}) | {} | {} / {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} / {} / {} | {:.0} | {:.0} % |",
            f.route,
            f.plugins,
            f.transport.name(),
            f.opened,
            f.failed,
            f.open_seconds,
            mib(f.idle_kib),
            mib(f.open_kib),
            f.per_stream_kib(),
            mib(f.peak_kib),
            mib(f.after_kib),
            f.fds.0,
            f.fds.1,
            f.fds.2,
            f.connections_gauge,
            f.cpu_share * 100.0
        );
    }
    for f in figures.iter().filter(|f| f.first_error.is_some()) {
        println!(
            "\n{} ({}): first failure: {}",
            f.route,
            f.transport.name(),
            f.first_error.as_deref().unwrap_or_default()
        );
    }
    let mut verdicts = Vec::new();
    for f in &figures {
        let run = format!("{}, {}", f.route, f.transport.name());
        verdicts.push(Verdict::new(
            f.opened == f.wanted && f.ended_early == 0,
            format!(
                "{run}: all {} streams open at once ({} opened, {} failed, {} ended before \
                 release)",
                f.wanted, f.opened, f.failed, f.ended_early
            ),
        ));
        // The target is for 10,000 streams: a run held to fewer is judged on the same cost.
        let at_target = f.idle_kib as f64 + f.per_stream_kib() * settings.streams as f64;
        verdicts.push(Verdict::new(
            at_target / 1024.0 < TARGET_MIB,
            format!(
                "{run}: RSS with {} open {:.1} MiB ({:.1} KiB per stream{}) < {TARGET_MIB:.0} MiB",
                settings.streams,
                at_target / 1024.0,
                f.per_stream_kib(),
                if f.opened < settings.streams {
                    format!("; {:.1} MiB measured with {}", mib(f.open_kib), f.opened)
                } else {
                    String::new()
                }
            ),
        ));
        verdicts.push(Verdict::new(
            f.closed_cleanly,
            format!(
                "{run}: fds back to idle after release ({} idle, {} after; h2 upstream \
                 connections may stay pooled)",
                f.fds.0, f.fds.2
            ),
        ));
    }
    let report = json!({
        "streams": settings.streams, "http1_streams": http1_streams,
        "event_delay_ms": settings.event_delay.as_millis() as u64,
        "runs": figures.iter().map(|f| json!({
            "route": f.route, "plugins": f.plugins, "clients": f.transport.name(),
            "wanted": f.wanted, "opened": f.opened, "failed": f.failed,
            "ended_early": f.ended_early, "open_seconds": f.open_seconds,
            "rss_idle_kib": f.idle_kib, "rss_open_kib": f.open_kib, "rss_peak_kib": f.peak_kib,
            "rss_after_kib": f.after_kib, "per_stream_kib": f.per_stream_kib(),
            "fds_idle": f.fds.0, "fds_open": f.fds.1, "fds_after": f.fds.2,
            "connections_gauge": f.connections_gauge, "cpu_share": f.cpu_share,
            "first_error": f.first_error,
        })).collect::<Vec<_>>(),
    });
    let outcome = Outcome {
        scenario: "streams",
        verdicts,
        report,
    };
    outcome.print_verdicts();
    outcome
}

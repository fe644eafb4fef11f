//! Scenario `idle`: an attack holds many client connections open that send nothing (half of
//! them) or their request head a byte a second (slowloris, the other half); each connection the
//! gateway cuts is opened again at once. Meanwhile a normal client keeps sending LLM requests
//! through the full chain, on one kept connection and on a new connection each time, and must be
//! served as before the attack. Reports the gateway's peak memory, the normal client's latency
//! before and during the attack, and the connections cut by `header_timeout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tollgate_testkit::load::{self, Figures};

use crate::setup::{self, mib, Outcome, Verdict};

/// Attack connections opened per batch, one batch every [`BATCH_PAUSE`].
const BATCH: usize = 500;
const BATCH_PAUSE: Duration = Duration::from_millis(100);
/// Attack connections that come from one source address.
const PER_ADDRESS: usize = 2000;
/// What the slow half sends, a byte a second: a head that never ends in time.
const SLOW_HEAD: &[u8] = b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: soak\r\nX-Padding: \
    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// The gateway's default `header_timeout`.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The normal client's pause between requests.
const NORMAL_PAUSE: Duration = Duration::from_millis(50);

/// The knobs.
pub struct IdleSettings {
    /// Attack connections held open.
    pub connections: usize,
    /// How long the attack holds them, once all are open.
    pub hold: Duration,
    /// How long the normal clients are measured before the attack.
    pub baseline: Duration,
    /// How long they are measured after it (the gateway gives memory back meanwhile).
    pub after: Duration,
    /// The gateway's `header_timeout` (its default unless in the quick mode).
    pub header_timeout: Duration,
}

impl IdleSettings {
    pub fn from_env(quick: bool) -> Self {
        Self {
            connections: if quick {
                200
            } else {
                load::env_number("TOLLGATE_SOAK_IDLE_CONNECTIONS", 10_000)
            },
            hold: Duration::from_secs(if quick {
                3
            } else {
                load::env_number("TOLLGATE_SOAK_IDLE_SECONDS", 40) as u64
            }),
            baseline: Duration::from_secs(if quick { 1 } else { 15 }),
            after: Duration::from_secs(if quick {
                1
            } else {
                load::env_number("TOLLGATE_SOAK_IDLE_AFTER_SECONDS", 30) as u64
            }),
            header_timeout: if quick {
                Duration::from_secs(1)
            } else {
                DEFAULT_HEADER_TIMEOUT
            },
        }
    }
}

/// The attack's side of things.
#[derive(Default)]
struct Attack {
    /// Connections open now.
    open: AtomicUsize,
    /// Most open at once.
    most_open: AtomicUsize,
    /// Connections the gateway closed, and how long each had lived.
    cut: Mutex<Vec<Duration>>,
    /// Connects that failed (refused, timed out, no address).
    connect_failures: AtomicUsize,
}

impl Attack {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_open.fetch_max(now, Ordering::Relaxed);
    }
}

/// One attack connection, opened again each time the gateway cuts it, until `stop`.
async fn attack_slot(
    target: SocketAddr,
    source: IpAddr,
    slow: bool,
    attack: Arc<Attack>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let connect = async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(target).await
        };
        let mut stream = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(stream)) => stream,
            _ => {
                attack.connect_failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        attack.opened();
        let opened = Instant::now();
        let (mut reader, mut writer) = stream.split();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut sent = 0;
        let mut buf = [0u8; 1024];
        let cut = loop {
            tokio::select! {
                _ = stop.changed() => break false,
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                _ = tick.tick(), if slow => {
                    let byte = &SLOW_HEAD[sent % SLOW_HEAD.len()..][..1];
                    if writer.write_all(byte).await.is_err() {
                        break true;
                    }
                    sent += 1;
                }
            }
        };
        attack.open.fetch_sub(1, Ordering::Relaxed);
        if !cut {
            return;
        }
        attack.cut.lock().expect("lock").push(opened.elapsed());
    }
}

/// Where a normal client sends its requests, and how it authenticates.
#[derive(Clone)]
struct NormalTarget {
    url: String,
    /// `Authorization: Bearer` (through the gateway) or `x-api-key` (the model directly).
    bearer: Option<String>,
    api_key: Option<&'static str>,
    /// Each request on a new connection.
    fresh: bool,
}

/// A normal client: LLM requests one after the other, a pause between them, until `stop`.
async fn normal_client(target: NormalTarget, mut stop: watch::Receiver<bool>) -> Figures {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if target.fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    let client = builder.build().expect("client");
    let body = json!({"model": "tollgate-echo-1", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hello from a normal client"}]})
    .to_string();
    let started = Instant::now();
    let mut figures = Figures::default();
    while !*stop.borrow() {
        let mut request = client
            .post(&target.url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = &target.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(key) = target.api_key {
            request = request.header("x-api-key", key);
        }
        let answered = async {
            match request.send().await {
                Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                Err(_) => false,
            }
        };
        match load::timed(answered).await {
            Some(latency) => figures.record(latency),
            None => figures.fail(),
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(NORMAL_PAUSE) => {}
        }
    }
    figures.finish(started.elapsed().as_secs_f64())
}

/// The normal clients' figures over one phase.
struct Phase {
    /// Through the gateway on one kept connection.
    kept: Figures,
    /// Through the gateway, a new connection each time.
    fresh: Figures,
    /// The model directly, bypassing the gateway: what the machine itself does to latency.
    direct: Figures,
}

/// The three normal clients for as long as `run` takes.
async fn normal_clients<F: std::future::Future>(
    targets: &[NormalTarget; 3],
    run: F,
) -> (Phase, F::Output) {
    let (stop, stopped) = watch::channel(false);
    let clients: Vec<_> = targets
        .iter()
        .map(|target| tokio::spawn(normal_client(target.clone(), stopped.clone())))
        .collect();
    let output = run.await;
    stop.send_replace(true);
    let mut figures = Vec::new();
    for client in clients {
        figures.push(client.await.expect("normal client"));
    }
    let direct = figures.pop().unwrap_or_default();
    let fresh = figures.pop().unwrap_or_default();
    let kept = figures.pop().unwrap_or_default();
    (
        Phase {
            kept,
            fresh,
            direct,
        },
        output,
    )
}

/// What the gateway looked like during the attack, sampled every second.
#[derive(Default)]
struct Sampled {
    most_rss_kib: u64,
    most_fds: usize,
    most_gauge: f64,
    cpu_share: f64,
}

/// Runs the scenario on a gateway of its own; `model` is the echo model's address (for the
/// direct client).
pub async fn run(routes: &str, model: SocketAddr, threads: usize, quick: bool) -> Outcome {
    let settings = IdleSettings::from_env(quick);
    let max_connections = settings.connections + 2000;
    let mut server_lines = vec![format!("max_connections = {max_connections}")];
    if settings.header_timeout != DEFAULT_HEADER_TIMEOUT {
        server_lines.push(format!(
            "header_timeout = \"{}ms\"",
            settings.header_timeout.as_millis()
        ));
    }
    let gateway = setup::start_gateway(routes, threads, &server_lines).await;
    let token = setup::token("normal-user", "math-users", Duration::from_secs(3600));
    let through = NormalTarget {
        url: gateway.url("/anthropic/v1/messages"),
        bearer: Some(token),
        api_key: None,
        fresh: false,
    };
    let targets = [
        through.clone(),
        NormalTarget {
            fresh: true,
            ..through
        },
        NormalTarget {
            url: format!("http://{model}/v1/messages"),
            bearer: None,
            api_key: Some(setup::PROVIDER_KEY),
            fresh: false,
        },
    ];

    // Before: the normal clients alone.
    let (before, ()) = normal_clients(&targets, tokio::time::sleep(settings.baseline)).await;
    let idle_kib = gateway.rss_kib();
    let idle_fds = gateway.open_fds();

    // During: the attack ramps up, holds, and lets go.
    let attack = Arc::new(Attack::default());
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let slots: Vec<_> = (0..settings.connections)
        .map(|i| {
            let (attack, stopped) = (attack.clone(), stopped.clone());
            let (target, source) = (gateway.addr, setup::source_address(i, PER_ADDRESS));
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_PAUSE * (i / BATCH) as u32).await;
                attack_slot(target, source, i % 2 == 1, attack, stopped).await;
            })
        })
        .collect();
    let ramp = BATCH_PAUSE * settings.connections.div_ceil(BATCH) as u32;
    let (during, sampled) = normal_clients(&targets, async {
        let mut sampled = Sampled::default();
        let cpu_before = gateway.cpu_time();
        let watch_started = Instant::now();
        while started.elapsed() < ramp + settings.hold {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sampled.most_rss_kib = sampled.most_rss_kib.max(gateway.rss_kib());
            sampled.most_fds = sampled.most_fds.max(gateway.open_fds());
            let gauge = setup::metric(&gateway, "tollgate_client_connections").await;
            sampled.most_gauge = sampled.most_gauge.max(gauge);
        }
        sampled.cpu_share =
            (gateway.cpu_time() - cpu_before).as_secs_f64() / watch_started.elapsed().as_secs_f64();
        sampled
    })
    .await;
    stop.send_replace(true);
    for slot in slots {
        let _ = slot.await;
    }
    let attack_seconds = started.elapsed().as_secs_f64();
    let scrape = gateway.metrics().await;
    let series = |name: &str| tollgate_testkit::sample(&scrape, name).unwrap_or(0.0);
    let header_timeouts = series("tollgate_client_header_timeouts_total");
    let refused = series("tollgate_client_connections_refused_total{cause=\"max_connections\"}");
    let peak_kib = gateway.peak_rss_kib();
    let closed_kib = gateway.rss_kib();

    // After: the normal clients alone again, while the gateway gives back what it held (the
    // allocator returns freed pages to the system as it keeps working).
    let (after, returning) = normal_clients(&targets, async {
        let mut rss = Vec::new();
        let after_started = Instant::now();
        while after_started.elapsed() < settings.after {
            tokio::time::sleep(Duration::from_secs(5).min(settings.after)).await;
            rss.push(mib(gateway.rss_kib()));
        }
        rss
    })
    .await;
    let settled = setup::settles(Duration::from_secs(15), || {
        gateway.open_fds() <= idle_fds + 8
    })
    .await;
    let gauge_after = setup::metric(&gateway, "tollgate_client_connections").await;
    let after_kib = gateway.rss_kib();
    let after_fds = gateway.open_fds();
    let mut gateway = gateway;
    let alive = gateway.is_running();
    let (warnings, first_warnings) = setup::log_warnings(&gateway);
    drop(gateway);

    let mut lifetimes = Figures::default();
    for lived in attack.cut.lock().expect("lock").iter() {
        lifetimes.record(*lived);
    }
    let lifetimes = lifetimes.finish(0.0);
    let client_cuts = lifetimes.requests;
    let most_open = attack.most_open.load(Ordering::Relaxed);
    let connect_failures = attack.connect_failures.load(Ordering::Relaxed);
    let per_connection_kib =
        (sampled.most_rss_kib as f64 - idle_kib as f64) / settings.connections as f64;

    println!(
        "\n## idle: {} attack connections (half silent, half a head byte a second) for {:.0} s; \
         header_timeout {} s, max_connections {max_connections}, gateway threads {threads}\n",
        settings.connections,
        attack_seconds,
        settings.header_timeout.as_secs_f64()
    );
    println!(
        "Normal clients (LLM JSON, a request every 50 ms; through the full chain, and directly \
         to the model as a control):\n"
    );
    println!("{}", load::table_head("normal client", "req/s"));
    for (what, pick) in [
        (
            "kept connection",
            (|p: &Phase| &p.kept) as fn(&Phase) -> &Figures,
        ),
        ("new connection each", |p: &Phase| &p.fresh),
        ("directly to the model (control)", |p: &Phase| &p.direct),
    ] {
        for (when, phase) in [("before", &before), ("during", &during), ("after", &after)] {
            println!("{}", pick(phase).row(&format!("{what}, {when} the attack")));
        }
    }
    println!("\n| figure | value |\n|---|---|");
    println!("| attack connections open at once (client side, most) | {most_open} |");
    println!(
        "| `tollgate_client_connections` (most, sampled each second) | {:.0} |",
        sampled.most_gauge
    );
    println!("| attack connects that failed | {connect_failures} |");
    println!(
        "| cut by the gateway (client side) / `tollgate_client_header_timeouts_total` | {client_cuts} / {header_timeouts:.0} |"
    );
    println!(
        "| lifetime of a cut connection p50 / max s | {:.2} / {:.2} |",
        lifetimes.ms(0.5) / 1000.0,
        lifetimes.ms(1.0) / 1000.0
    );
    println!("| refused for `max_connections` | {refused:.0} |");
    println!(
        "| gateway RSS before / most during / at the attack's end / {} s after MiB | {:.1} / {:.1} / {:.1} / {:.1} |",
        settings.after.as_secs(),
        mib(idle_kib),
        mib(sampled.most_rss_kib),
        mib(closed_kib),
        mib(after_kib)
    );
    println!(
        "| gateway peak RSS (VmHWM) MiB | {:.1} ({per_connection_kib:.1} KiB per attack connection) |",
        mib(peak_kib)
    );
    println!(
        "| gateway fds before / most during / after | {idle_fds} / {} / {after_fds} |",
        sampled.most_fds
    );
    println!(
        "| gateway CPU during the attack | {:.0} % of a core |",
        sampled.cpu_share * 100.0
    );
    let returning: Vec<String> = returning.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "| gateway RSS every 5 s after the attack MiB | {} |",
        returning.join(", ")
    );
    println!("| `tollgate_client_connections` after | {gauge_after:.0} |");
    println!("| gateway log | {warnings} warning lines {first_warnings:?} |");

    let served = |f: &Figures| f.errors == 0 && f.requests > 0 && f.ms(1.0) < 1000.0;
    let timeout_s = settings.header_timeout.as_secs_f64();
    let verdicts = vec![
        Verdict::new(
            served(&during.kept) && served(&during.fresh),
            format!(
                "the normal client was served throughout: {} + {} requests, {} + {} failed, \
                 none slower than 1 s (slowest {:.1} / {:.1} ms)",
                during.kept.requests,
                during.fresh.requests,
                during.kept.errors,
                during.fresh.errors,
                during.kept.ms(1.0),
                during.fresh.ms(1.0)
            ),
        ),
        // Normal latency: the median as before, no tail of queued requests (a stalled worker
        // or a full accept queue shows as hundreds of milliseconds: a SYN retried after 1 s).
        Verdict::new(
            [(&during.kept, &before.kept), (&during.fresh, &before.fresh)]
                .iter()
                .all(|(d, b)| d.ms(0.5) <= b.ms(0.5) + 1.0 && d.ms(0.99) < 100.0),
            format!(
                "with normal latency (p50 within 1 ms of before, p99 under 100 ms): p50 / p99 \
                 {:.2} / {:.2} ms on a kept connection, {:.2} / {:.2} ms on new ones (before: \
                 {:.2} / {:.2} and {:.2} / {:.2}; the model directly: {:.2} / {:.2} during, \
                 {:.2} / {:.2} before)",
                during.kept.ms(0.5),
                during.kept.ms(0.99),
                during.fresh.ms(0.5),
                during.fresh.ms(0.99),
                before.kept.ms(0.5),
                before.kept.ms(0.99),
                before.fresh.ms(0.5),
                before.fresh.ms(0.99),
                during.direct.ms(0.5),
                during.direct.ms(0.99),
                before.direct.ms(0.5),
                before.direct.ms(0.99)
            ),
        ),
        Verdict::new(
            most_open >= settings.connections * 95 / 100 && refused == 0.0,
            format!(
                "the attack was served, not refused: {most_open} of {} open at once, {refused:.0} \
                 refused",
                settings.connections
            ),
        ),
        Verdict::new(
            header_timeouts > 0.0
                && lifetimes.ms(0.5) >= timeout_s * 900.0
                && lifetimes.ms(0.5) <= timeout_s * 1000.0 + 2000.0,
            format!(
                "header_timeout cut the attack: {header_timeouts:.0} connections (the attack \
                 counted {client_cuts}), after {:.1} s at the median",
                lifetimes.ms(0.5) / 1000.0
            ),
        ),
        Verdict::new(
            alive && settled,
            format!(
                "the gateway did not run out of memory (still running, peak {:.1} MiB, {:.1} MiB \
                 {} s after) and gave back its fds ({idle_fds} before, {after_fds} after)",
                mib(peak_kib),
                mib(after_kib),
                settings.after.as_secs()
            ),
        ),
    ];
    let phase_json = |p: &Phase| json!({"kept": p.kept.json(), "fresh": p.fresh.json(), "direct": p.direct.json()});
    let report = json!({
        "connections": settings.connections, "hold_seconds": settings.hold.as_secs(),
        "header_timeout_seconds": timeout_s, "max_connections": max_connections,
        "normal": {"before": phase_json(&before), "during": phase_json(&during),
                   "after": phase_json(&after)},
        "most_open": most_open, "most_gauge": sampled.most_gauge,
        "connect_failures": connect_failures, "client_cuts": client_cuts,
        "header_timeouts_total": header_timeouts, "refused": refused,
        "cut_lifetime": lifetimes.json(),
        "rss_idle_kib": idle_kib, "rss_most_kib": sampled.most_rss_kib, "rss_peak_kib": peak_kib,
        "rss_closed_kib": closed_kib, "rss_after_kib": after_kib,
        "per_connection_kib": per_connection_kib,
        "fds_idle": idle_fds, "fds_most": sampled.most_fds, "fds_after": after_fds,
        "cpu_share": sampled.cpu_share, "alive": alive, "log_warnings": warnings,
    });
    let outcome = Outcome {
        scenario: "idle",
        verdicts,
        report,
    };
    outcome.print_verdicts();
    outcome
}

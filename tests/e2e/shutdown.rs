//! Graceful shutdown and listener handover: on SIGTERM `/readyz` fails first, the gateway keeps
//! serving through the drain delay, then stops accepting, lets the streams in flight finish and
//! exits 0; SIGQUIT hands the listening sockets to a new process without failing a request.

use std::time::{Duration, Instant};

use tollgate_testkit::sse::SseReader;
use tollgate_testkit::traffic::ClientLoop;
use tollgate_testkit::{client, eventually, RunningGateway};

use crate::common::upstream::TestUpstream;
use crate::common::{gateway, tollgate_bin};

fn all_to(upstream: &str) -> String {
    format!("[[route]]\nname = \"all\"\nmatch = {{ path_prefix = \"/\" }}\nupstream = {{ url = \"{upstream}\" }}\n")
}

async fn readyz(gw: &RunningGateway) -> Option<u16> {
    let resp = client()
        .get(format!("http://{}/readyz", gw.admin))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_fails_readiness_first_drains_the_stream_then_exits_zero() {
    let up = TestUpstream::start().await;
    let mut gw = gateway(&all_to(&up.url()))
        .server_line("drain_delay = \"1s\"\ngrace_period = \"20s\"\nshutdown_timeout = \"1s\"")
        .start()
        .await;
    assert_eq!(readyz(&gw).await, Some(200));

    // A 3-second stream (30 events, 100 ms apart) in flight when SIGTERM arrives.
    let resp = client().get(gw.url("/events/30")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = SseReader::new(resp);
    let first = stream.next_event().await.unwrap().unwrap();
    assert!(first.text.starts_with("data: 1"));
    gw.signal("TERM");
    let term_at = Instant::now();

    // Readiness turns 503 at once, while the proxy still serves new connections.
    eventually(
        "readyz answers 503",
        Duration::from_millis(500),
        async || match readyz(&gw).await {
            Some(503) => Ok(()),
            other => Err(format!("readyz {other:?}; gateway log:\n{}", gw.log())),
        },
    )
    .await;
    let resp = client().get(gw.url("/during-drain")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "served during the drain delay");
    assert_eq!(
        resp.headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close"),
        "keep-alive clients are sent elsewhere"
    );

    // After the drain delay the listener is closed: new connections fail.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(term_at.elapsed())).await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after the drain delay:\n{}",
        gw.log()
    );
    assert!(gw.is_running(), "exited with a stream in flight");

    // The stream in flight completes, every event in order.
    let text = stream.read_to_end().await.unwrap().text;
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 30, "{text}");
    assert_eq!(events[29], "data: 30");

    // Then the process exits 0, well before the 20 s grace period.
    let code = gw.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "{}", gw.log());
    assert!(term_at.elapsed() < Duration::from_secs(10));
    let log = gw.log();
    assert!(log.contains("drained; exiting"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_gateway_exits_at_once_on_sigterm() {
    let up = TestUpstream::start().await;
    let mut gw = gateway(&all_to(&up.url()))
        .server_line("grace_period = \"30s\"")
        .start()
        .await;
    let started = Instant::now();
    gw.signal("TERM");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(5)).await,
        Some(0),
        "{}",
        gw.log()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigquit_hands_the_listeners_to_a_new_process_without_failing_requests() {
    let up = TestUpstream::start().await;
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("upgrade.sock");
    let mut old = gateway(&all_to(&up.url()))
        .server_line(&format!(
            "upgrade_sock = \"{}\"\ngrace_period = \"10s\"",
            sock.display()
        ))
        .start()
        .await;

    // A client loop that must never see a failure, on a new connection per request.
    let traffic = ClientLoop::start(&old.url("/loop"), 1, false);

    // The new process waits for the sockets, then the old one is told to hand them over.
    let log = std::fs::File::create(old.dir().join("new.log")).unwrap();
    let mut new = std::process::Command::new(tollgate_bin())
        .args(["run", "--upgrade", "-c"])
        .arg(old.config_path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal("QUIT");
    let code = old.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "old process:\n{}", old.log());

    // Only the new process serves now; keep the loop going a moment on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed) = traffic.stop().await;
    let new_log = std::fs::read_to_string(old.dir().join("new.log")).unwrap_or_default();
    assert!(
        failed.is_empty(),
        "failed requests: {failed:?}\nnew:\n{new_log}"
    );
    assert!(ok > 10, "only {ok} requests");
    let resp = client().get(old.url("/after")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{new_log}");
    let _ = new.kill();
    let _ = new.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_with_an_unusable_socket_path_is_a_clear_error() {
    let up = TestUpstream::start().await;
    let gw = gateway(&all_to(&up.url()))
        .server_line("upgrade_sock = \"/nonexistent-dir/tollgate.sock\"")
        .start()
        .await;
    let out = std::process::Command::new(tollgate_bin())
        .args(["run", "--upgrade", "-c"])
        .arg(gw.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("upgrade_sock") && stderr.contains("directory does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

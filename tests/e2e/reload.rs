//! Hot reload: a changed configuration is swapped in without dropping requests in flight, an
//! invalid one is reported and the last good one stays, Kubernetes' symlink swap is noticed, and
//! SIGHUP reloads at once.

use std::time::Duration;

use tollgate_testkit::traffic::ClientLoop;
use tollgate_testkit::{client, eventually, sample, RunningGateway};

use crate::common::gateway;
use crate::common::upstream::TestUpstream;

fn route(prefix: &str, upstream: &str) -> String {
    format!("[[route]]\nname = \"r{}\"\nmatch = {{ path_prefix = \"{prefix}\" }}\nupstream = {{ url = \"{upstream}\", strip_prefix = true }}\n", prefix.trim_start_matches('/'))
}

async fn status(gw: &RunningGateway, path: &str) -> u16 {
    client()
        .get(gw.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_status(gw: &RunningGateway, path: &str, want: u16, within: Duration) {
    let what = format!("{path} answers {want}");
    eventually(&what, within, async || {
        if status(gw, path).await == want {
            Ok(())
        } else {
            Err(format!("gateway log:\n{}", gw.log()))
        }
    })
    .await;
}

/// Waits until a reload of `gw` has failed.
async fn wait_reload_error(gw: &RunningGateway) {
    eventually(
        "the invalid config is reported",
        Duration::from_secs(5),
        async || {
            if reloads(gw, "error").await >= 1.0 {
                Ok(())
            } else {
                Err(format!("gateway log:\n{}", gw.log()))
            }
        },
    )
    .await;
}

async fn reloads(gw: &RunningGateway, result: &str) -> f64 {
    let series = format!("tollgate_config_reloads_total{{result=\"{result}\"}}");
    sample(&gw.metrics().await, &series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_config_is_swapped_in_and_streams_in_flight_finish() {
    let up = TestUpstream::start().await;
    let gw = gateway(&route("/a", &up.url()))
        .server_line("watch_interval = \"200ms\"")
        .start()
        .await;
    assert_eq!(status(&gw, "/a/x").await, 200);

    // A stream that spans the reload (3 events, 300 ms apart).
    let mut stream = client().get(gw.url("/a/mcp")).send().await.unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());

    gw.rewrite_config(&route("/b", &up.url()));
    wait_status(&gw, "/b/x", 200, Duration::from_secs(5)).await;
    assert_eq!(status(&gw, "/a/x").await, 404, "the old route is gone");

    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.contains("id: ev-3"),
        "the stream begun before the reload finished: {text}"
    );
    assert_eq!(reloads(&gw, "ok").await, 2.0, "start + one reload");

    // An invalid configuration is reported with its location; the last good one keeps serving.
    gw.rewrite_config("[[route]]\nname = \"broken\"\nmatch = { path_prefix = \"/c\" }\nupstream = { url = \"http://127.0.0.1:1\" }\nplugins = [\"missing\"]\n");
    wait_reload_error(&gw).await;
    assert_eq!(status(&gw, "/b/x").await, 200);
    assert!(gw.log().contains("the last good one stays"), "{}", gw.log());
    assert!(
        gw.log()
            .contains("tollgate.toml:13:12: route `broken` names plugin `missing`"),
        "{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_configmap_symlink_swap_is_noticed() {
    let up = TestUpstream::start().await;
    let gw = gateway(&route("/a", &up.url()))
        .server_line("watch_interval = \"200ms\"")
        .kubernetes_layout()
        .start()
        .await;
    assert_eq!(status(&gw, "/a/x").await, 200);
    gw.rewrite_config(&route("/b", &up.url()));
    wait_status(&gw, "/b/x", 200, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_at_once() {
    let up = TestUpstream::start().await;
    let gw = gateway(&route("/a", &up.url()))
        .server_line("watch_interval = \"0s\"")
        .start()
        .await;
    gw.rewrite_config(&route("/b", &up.url()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        status(&gw, "/b/x").await,
        404,
        "no polling: nothing changes without a signal"
    );
    gw.signal("HUP");
    wait_status(&gw, "/b/x", 200, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_buckets_survive_reloads_that_leave_the_instance_unchanged() {
    let up = TestUpstream::start().await;
    let budget = |max: u32| {
        format!("[plugin.budget]\ntype = \"token-ratelimit\"\nunit = \"requests\"\nkey = \"header:x-user\"\nmax_tokens = {max}\nrefill_tokens = 1\nrefill_interval = \"1h\"\n\n")
    };
    let api = |extra: &str| {
        format!("[[route]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nupstream = {{ url = \"{}\", strip_prefix = true }}\nplugins = [\"budget\"]\n{extra}", up.url())
    };
    let gw = gateway(&format!("{}{}", budget(2), api("")))
        .server_line("watch_interval = \"200ms\"")
        .start()
        .await;
    let call = || {
        client()
            .get(gw.url("/api/x"))
            .header("x-user", "dana")
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 429);

    // Another route changes; the budget's table does not: its buckets are kept.
    gw.rewrite_config(&format!(
        "{}{}{}",
        budget(2),
        api(""),
        route("/other", &up.url())
    ));
    wait_status(&gw, "/other/x", 200, Duration::from_secs(5)).await;
    assert_eq!(
        call().await.unwrap().status(),
        429,
        "dana's spent budget survived the reload"
    );

    // The budget itself changes: a new instance with fresh buckets.
    gw.rewrite_config(&format!("{}{}", budget(5), api("")));
    wait_status(&gw, "/other/x", 404, Duration::from_secs(5)).await;
    assert_eq!(call().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_under_load_fails_no_request() {
    let up = TestUpstream::start().await;
    let gw = gateway(&route("/a", &up.url()))
        .server_line("watch_interval = \"100ms\"")
        .start()
        .await;
    // Four clients loop on `/a` (present in every valid version) for the whole test.
    let traffic = ClientLoop::start(&gw.url("/a/x"), 4, true);

    // 1: a route is added.
    let with_b = format!("{}{}", route("/a", &up.url()), route("/b", &up.url()));
    gw.rewrite_config(&with_b);
    wait_status(&gw, "/b/x", 200, Duration::from_secs(5)).await;
    // 2: invalid; reported, the last good configuration stays.
    gw.rewrite_config(&format!("{with_b}[[route]]\nname = 7\n"));
    wait_reload_error(&gw).await;
    assert_eq!(status(&gw, "/b/x").await, 200);
    // 3: `/b` goes away, `/c` arrives.
    let with_c = format!("{}{}", route("/a", &up.url()), route("/c", &up.url()));
    gw.rewrite_config(&with_c);
    wait_status(&gw, "/c/x", 200, Duration::from_secs(5)).await;
    assert_eq!(status(&gw, "/b/x").await, 404);

    let (total, failed) = traffic.stop().await;
    assert!(failed.is_empty(), "failed during reloads: {failed:?}");
    assert!(total > 20, "only {total} requests during the reloads");
    assert_eq!(
        reloads(&gw, "ok").await,
        3.0,
        "initial load + 2 valid reloads"
    );
    assert!(
        gw.log().contains("tollgate.toml:"),
        "error located:\n{}",
        gw.log()
    );
}

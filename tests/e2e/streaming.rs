//! SSE passes through event by event: the upstream pauses 300 ms between events and the client
//! must hold each event before the upstream has even produced the next.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_testkit::sse::SseReader;
use tollgate_testkit::{client, eventually, RunningGateway};

use crate::common::gateway;
use crate::common::upstream::{TestUpstream, EVENT_GAP};

/// Reads the response, noting when each complete SSE event (blank-line terminated) arrived.
async fn event_arrivals(resp: reqwest::Response) -> (Vec<Instant>, String) {
    let stream = SseReader::new(resp)
        .read_to_end()
        .await
        .expect("stream chunk");
    (stream.events.iter().map(|e| e.at).collect(), stream.text)
}

fn assert_streamed(arrivals: &[Instant], sent: &[Instant]) {
    assert!(
        sent.len() >= 3 && arrivals.len() == sent.len(),
        "sent {} events, got {}",
        sent.len(),
        arrivals.len()
    );
    for i in 0..sent.len() - 1 {
        assert!(
            arrivals[i] < sent[i + 1],
            "event {i} reached the client only after the upstream sent event {}: the gateway buffered",
            i + 1
        );
    }
    let last = *sent.last().unwrap();
    assert!(
        last.duration_since(arrivals[0]) >= EVENT_GAP * (sent.len() as u32 - 2),
        "first event came well before the last was sent"
    );
}

fn routes(up: &TestUpstream) -> String {
    format!(
        r#"
[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
# The test upstream's endpoints (/events/N, ...) are not Anthropic's: all are served.
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true, allow_paths = ["/*"] }}

[[route]]
name = "plain"
match = {{ path_prefix = "/plain" }}
upstream = {{ url = "{u}", strip_prefix = true }}
"#,
        u = up.url()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_post_sse_answer_streams_event_by_event() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up)).start().await;
    let resp = client()
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 9, "method": "slow/stream"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (arrivals, text) = event_arrivals(resp).await;
    assert!(text.contains("\"done\":true"), "{text}");
    assert_streamed(&arrivals, &up.recorder.event_times.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_stream_reaches_the_client_event_by_event() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up)).start().await;
    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp = client()
        .post(gw.url("/anthropic/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (arrivals, text) = event_arrivals(resp).await;
    assert!(text.contains("message_stop"), "{text}");
    assert_streamed(&arrivals, &up.recorder.event_times.lock().unwrap());
    // Usage was read from message_start (12 in) and message_delta (3 out) as they passed.
    wait_for_log(&gw, "input_tokens=12 output_tokens=3", 1).await;

    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let resp = client()
        .post(gw.url("/anthropic/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap().matches("output_tokens").count(),
        1
    );
    wait_for_log(&gw, "input_tokens=12 output_tokens=3", 2).await;
}

/// Waits (5 s at most) until the gateway's log holds `needle` `times` times; the per-request
/// line with the usage is logged at debug level when the exchange completes.
async fn wait_for_log(gw: &RunningGateway, needle: &str, times: usize) {
    let what = format!("`{needle}` {times} times in the gateway log");
    eventually(&what, Duration::from_secs(5), async || {
        let log = gw.log();
        if log.matches(needle).count() >= times {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_route_streams_too() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up)).start().await;
    let resp = client().get(gw.url("/plain/mcp")).send().await.unwrap();
    let (arrivals, _) = event_arrivals(resp).await;
    assert_streamed(&arrivals, &up.recorder.event_times.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_head_is_not_held_for_its_first_event() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up)).start().await;
    let body = json!({"model": "m", "max_tokens": 1, "stream": true, "messages": []});
    let started = Instant::now();
    let resp = client()
        .post(gw.url("/anthropic/quiet-stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let head_after = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(
        head_after < Duration::from_millis(400),
        "the head waited {head_after:?} for the first event"
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("data: late"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(600));
}

/// `upstream.http2 = true` on an `http://` upstream: h2c with prior knowledge, one connection
/// for many exchanges. Answers reach HTTP/1.1 clients framed for HTTP/1.1 (chunked when the
/// upstream gave no length) and streams still pass event by event.
#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_upstream_streams_event_by_event_to_http1_clients() {
    let up = TestUpstream::start().await;
    let routes = format!(
        r#"
[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp", http2 = true }}

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", strip_prefix = true, http2 = true }}
"#,
        u = up.url()
    );
    let gw = gateway(&routes).start().await;
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();

    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp = http1
        .post(gw.url("/anthropic/v1/messages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let (arrivals, text) = event_arrivals(resp).await;
    assert!(text.contains("message_stop"), "{text}");
    assert_streamed(&arrivals, &up.recorder.event_times.lock().unwrap());
    wait_for_log(&gw, "input_tokens=12 output_tokens=3", 1).await;

    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let resp = http1
            .post(gw.url("/anthropic/v1/messages"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["usage"]["output_tokens"], 3, "{answer}");
    }
    wait_for_log(&gw, "input_tokens=12 output_tokens=3", 3).await;

    let resp = http1
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"tools\""), "{text}");

    let requests = up.recorder.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests
            .iter()
            .all(|r| r.version == axum::http::Version::HTTP_2),
        "{:?}",
        requests.iter().map(|r| r.version).collect::<Vec<_>>()
    );
}

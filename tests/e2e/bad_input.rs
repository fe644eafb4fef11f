//! Bad input and bad upstreams: a clear error in the caller's protocol, and a gateway that keeps
//! serving afterwards.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_testkit::{client, eventually, free_addr, RunningGateway};

use crate::common::gateway;
use crate::common::upstream::TestUpstream;

fn routes(up: &str, timeout: &str) -> String {
    format!(
        r#"
[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{up}/mcp", kind = "mcp" }}

[[route]]
name = "llm"
match = {{ path_prefix = "/anthropic" }}
# The test upstream's endpoints (/stream, /slow, ...) are not Anthropic's: all are served.
upstream = {{ url = "{up}", kind = "llm", strip_prefix = true, timeout = "{timeout}", allow_paths = ["/*"] }}

[[route]]
name = "plain"
match = {{ path_prefix = "/plain" }}
upstream = {{ url = "{up}", strip_prefix = true, timeout = "{timeout}" }}
max_body = "1MiB"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_gets_protocol_errors_and_never_reaches_the_upstream() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up.url(), "5s")).start().await;
    let client = client();

    let resp = client
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .body("{\"jsonrpc\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.headers()["x-tollgate-reason"],
        "request.invalid_jsonrpc"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32700);

    let resp = client
        .post(gw.url("/mcp"))
        .body(json!({"id": 4, "method": "x"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);

    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    assert!(
        up.recorder.requests().is_empty(),
        "bad requests must not reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up.url(), "5s")).start().await;
    let client = client();
    let big = vec![b'a'; 20 << 20];

    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "request_too_large");

    // Chunked (no Content-Length): the limit is enforced while reading.
    let stream =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'{'; 1 << 20])));
    let resp = client
        .post(gw.url("/mcp"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    match resp {
        Ok(resp) => {
            assert_eq!(resp.status(), 413);
            assert_eq!(resp.headers()["x-tollgate-reason"], "request.too_large");
        }
        // The gateway may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    let resp = client
        .post(gw.url("/plain/echo"))
        .body(vec![b'a'; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(up.recorder.requests().is_empty());

    let resp = client
        .post(gw.url("/plain/echo"))
        .body("small")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the gateway keeps serving");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_refused_is_502_and_slow_is_504() {
    let dead = format!("http://{}", free_addr());
    let up = TestUpstream::start().await;
    let gw_dead = gateway(&routes(&dead, "5s")).start().await;
    let client = client();

    let resp = client
        .post(gw_dead.url("/anthropic/v1/messages"))
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.unavailable");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");

    let resp = client
        .post(gw_dead.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 5);
    assert_eq!(body["error"]["code"], -32603);

    let resp = client.get(gw_dead.url("/plain/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.unavailable");

    let gw_slow = gateway(&routes(&up.url(), "500ms")).start().await;
    let resp = client
        .post(gw_slow.url("/anthropic/slow"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "timeout_error");
    let resp = client.get(gw_slow.url("/plain/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.timeout");
}

/// A loopback upstream that hands every connection to `serve`; its `http://` URL.
async fn raw_upstream<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    format!("http://{addr}")
}

/// An upstream whose every answer is a response head followed, in the same write, by a chunked
/// body that cannot be parsed; the connection then stays open (so the failure is the framing,
/// not an early close). A request for `/stream` gets an SSE head.
async fn broken_body_upstream() -> String {
    raw_upstream(|mut socket| async move {
        let mut request = vec![0u8; 64 * 1024];
        if socket.read(&mut request).await.unwrap_or(0) == 0 {
            return;
        }
        let content_type = if request.starts_with(b"POST /stream") {
            "text/event-stream"
        } else {
            "application/json"
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n\
             transfer-encoding: chunked\r\n\r\nnot-a-chunk-size\r\n"
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await
}

/// An upstream that reads each request and closes the connection without answering (a crash).
async fn hanging_up_upstream() -> String {
    raw_upstream(|mut socket| async move {
        let mut request = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut request).await;
    })
    .await
}

/// The LLM requests to `llm_paths` and an MCP request each get a clean `502 upstream.error` in
/// their protocol.
async fn assert_upstream_errors(gw: &RunningGateway, llm_paths: &[&str]) {
    let client = client();
    for path in llm_paths {
        let resp = client
            .post(gw.url(path))
            .json(&json!({"model": "m", "max_tokens": 5, "stream": path.ends_with("stream"), "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 502, "{path}");
        assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.error");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "api_error", "{body}");
    }

    let resp = client
        .post(gw.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.error");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 9, "{body}");
    assert_eq!(body["error"]["code"], -32603);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_fails_before_anything_is_sent_is_a_clean_502() {
    let up = broken_body_upstream().await;
    let gw = gateway(&routes(&up, "5s")).start().await;
    assert_upstream_errors(&gw, &["/anthropic/v1/messages", "/anthropic/stream"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_hangs_up_without_answering_is_a_502() {
    let up = hanging_up_upstream().await;
    let gw = gateway(&routes(&up, "5s")).start().await;
    assert_upstream_errors(&gw, &["/anthropic/v1/messages"]).await;
    let resp = client()
        .get(gw.url("/plain/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_mid_stream_leaves_the_gateway_healthy() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up.url(), "5s")).start().await;
    let client = client();
    for path in ["/plain/stream-forever", "/anthropic/stream-forever"] {
        let mut resp = client
            .post(gw.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let first = resp.chunk().await.unwrap().expect("first event");
        assert!(!first.is_empty());
        drop(resp);
    }
    // The gateway notices on its next write and lets go of the upstream stream.
    eventually(
        "the upstream streams are released",
        Duration::from_secs(5),
        async || up.recorder.abandoned_streams.load(Ordering::SeqCst) >= 2,
    )
    .await;
    let resp = client
        .post(gw.url("/anthropic/v1/messages"))
        .json(&json!({"model": "m", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("http://{}/healthz", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_leaving_a_slow_llm_call_cancels_the_upstream_request() {
    let up = TestUpstream::start().await;
    let gw = gateway(&routes(&up.url(), "10s")).start().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let result = impatient
        .post(gw.url("/anthropic/slow"))
        .json(&json!({"model": "m"}))
        .send()
        .await;
    assert!(result.is_err(), "the client gave up");
    eventually(
        "the upstream request is dropped when the client leaves",
        Duration::from_millis(2500).saturating_sub(started.elapsed()),
        async || up.recorder.abandoned_requests.load(Ordering::SeqCst) > 0,
    )
    .await;
    let resp = client()
        .get(format!("http://{}/healthz", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

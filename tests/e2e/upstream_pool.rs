//! Upstream connections of MCP and LLM routes are kept and reused, and a kept connection that
//! the upstream gave up is replaced without the client noticing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tollgate_testkit::client;

use crate::common::gateway;

/// What the upstream saw.
#[derive(Default)]
struct Counts {
    /// Connections accepted.
    connections: AtomicUsize,
    /// Requests that arrived on a connection the upstream had given up (dropped unanswered).
    dropped: AtomicUsize,
}

/// A Messages upstream on loopback. With `one_answer_per_connection`, a connection that has
/// carried one answer is closed when the next request arrives on it, unanswered — what a
/// server does whose keep-alive timeout ran out just as the gateway reused the connection.
async fn upstream(one_answer_per_connection: bool) -> (SocketAddr, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = CountingListener {
        inner: listener,
        counts: counts.clone(),
        one_answer_per_connection,
    };
    let app = Router::new().route(
        "/v1/messages",
        post(|Json(body): Json<Value>| async move {
            Json(json!({
                "id": "msg_pool", "type": "message", "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "pong"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1}
            }))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, counts)
}

struct CountingListener {
    inner: TcpListener,
    counts: Arc<Counts>,
    one_answer_per_connection: bool,
}

impl axum::serve::Listener for CountingListener {
    type Io = UpstreamConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, peer)) = self.inner.accept().await {
                self.counts.connections.fetch_add(1, Ordering::SeqCst);
                let connection = UpstreamConnection {
                    stream,
                    counts: self.counts.clone(),
                    drop_after_answer: self.one_answer_per_connection,
                    answered: false,
                };
                return (connection, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; once it has written an answer it may end at the next request.
struct UpstreamConnection {
    stream: TcpStream,
    counts: Arc<Counts>,
    drop_after_answer: bool,
    answered: bool,
}

impl AsyncRead for UpstreamConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !(this.drop_after_answer && this.answered) {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        // The next request is read and thrown away; the HTTP server sees the end of the
        // connection and closes it without an answer.
        let mut scratch = [0u8; 4096];
        let mut discarded = ReadBuf::new(&mut scratch);
        let read = Pin::new(&mut this.stream).poll_read(cx, &mut discarded);
        if matches!(read, Poll::Ready(Ok(()))) && !discarded.filled().is_empty() {
            this.counts.dropped.fetch_add(1, Ordering::SeqCst);
        }
        read
    }
}

impl AsyncWrite for UpstreamConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.answered = true;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn route(upstream: SocketAddr) -> String {
    format!(
        r#"
[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://{upstream}", kind = "llm", provider = "anthropic", strip_prefix = true }}
"#
    )
}

/// Sends `count` requests one after the other; every answer must be the upstream's.
async fn send_messages(url: &str, count: usize) {
    let client = client();
    for n in 0..count {
        let answer = client
            .post(url)
            .json(&json!({
                "model": "claude-pool-test", "max_tokens": 5,
                "messages": [{"role": "user", "content": format!("ping {n}")}]
            }))
            .send()
            .await
            .expect("the gateway answers");
        let status = answer.status();
        let body: Value = answer.json().await.expect("JSON answer");
        assert_eq!(status, 200, "request {n}: {body}");
        assert_eq!(body["content"][0]["text"], "pong", "request {n}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_a_row_share_one_upstream_connection() {
    let (addr, counts) = upstream(false).await;
    let gw = gateway(&route(addr)).start().await;
    send_messages(&gw.url("/anthropic/v1/messages"), 5).await;
    assert_eq!(
        counts.connections.load(Ordering::SeqCst),
        1,
        "five requests one after the other go over one kept upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_connection_the_upstream_gave_up_is_replaced_unnoticed() {
    let (addr, counts) = upstream(true).await;
    let gw = gateway(&route(addr)).start().await;
    send_messages(&gw.url("/anthropic/v1/messages"), 4).await;
    // Requests 2 to 4 each went first to the connection the previous answer left in the pool,
    // which the upstream closed on them, then to a new one.
    assert_eq!(counts.dropped.load(Ordering::SeqCst), 3, "{}", gw.log());
    assert_eq!(counts.connections.load(Ordering::SeqCst), 4);
}

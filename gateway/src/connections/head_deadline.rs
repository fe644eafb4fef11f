//! A client connection whose request heads must arrive in time: Pingora gives each read of a
//! head its own timeout, so a client sending a byte now and then (slowloris) holds the
//! connection and its buffers for as long as it likes. This stream counts from the start of a
//! head (the connection's start, or the first byte of a later request) and fails the read once
//! `header_timeout` has passed without the blank line that ends the head.
//!
//! The first head is read here, before Pingora sees the connection ([`HeadDeadline::first_head`]),
//! and handed to it afterwards: Pingora's HTTP task for a connection (its request state machine,
//! about 16 KiB) and its head buffer exist only for clients that sent a head. A connection that
//! never does costs the accept task and a small buffer, is closed here when its time is up, and
//! never reaches Pingora's error log (one ERROR line per such connection, which an attacker
//! would control).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::Permit;

/// Where the connection is in its exchange.
#[derive(Debug)]
enum Phase {
    /// A head is being received: the blank line must come before the timer fires. `tail`: the
    /// last bytes read, for a blank line split over two reads.
    Head { tail: [u8; 3], start: HeadStart },
    /// The head arrived: body and answer are timed elsewhere.
    Exchange,
    /// An answer was written: the next byte read starts a new head.
    Answered,
    /// HTTP/2: frames, not heads; the protocol has its own flow control and timeouts.
    Frames,
}

/// How an HTTP/2 connection without TLS (h2c) starts: the request line of its preface, whose
/// blank line follows at once (so no slow head hides behind it).
const H2_PREFACE_LINE: &[u8; 14] = b"PRI * HTTP/2.0";

/// The first bytes of a head, to tell the HTTP/2 preface from an HTTP/1 request.
#[derive(Debug, Default)]
struct HeadStart {
    bytes: [u8; 14],
    len: usize,
}

impl HeadStart {
    fn push(&mut self, read: &[u8]) {
        let take = (self.bytes.len() - self.len).min(read.len());
        self.bytes[self.len..self.len + take].copy_from_slice(&read[..take]);
        self.len += take;
    }

    fn is_h2_preface(&self) -> bool {
        self.len == self.bytes.len() && &self.bytes == H2_PREFACE_LINE
    }
}

fn new_head() -> Phase {
    Phase::Head {
        tail: [0; 3],
        start: HeadStart::default(),
    }
}

/// Most bytes of the first head read before the connection goes to Pingora anyway (a head
/// this long is rare; Pingora reads the rest, under the same deadline).
const FIRST_HEAD_LIMIT: usize = 8 * 1024;
/// Room made in the read-ahead buffer before each read: a typical head fits in one.
const READ_AHEAD: usize = 1024;

/// How the first head of a connection went ([`HeadDeadline::first_head`]).
#[derive(Debug)]
pub enum FirstHead {
    /// It arrived (or HTTP/2 frames did, or a head longer than the read-ahead): the connection
    /// goes to Pingora, these bytes first.
    Arrived,
    /// The client closed the connection before a whole head.
    Closed,
    /// `header_timeout` passed without a whole head (counted in the metric).
    TimedOut,
    /// Reading failed.
    Failed(io::Error),
}

/// What one read ahead brought.
enum ReadAhead {
    Bytes,
    Closed,
    TimedOut,
}

/// A client connection with a deadline on its request heads, holding its connection permit.
pub struct HeadDeadline {
    inner: Stream,
    phase: Phase,
    /// Bytes read ahead of Pingora (the first head, a peek), handed out before `inner`'s.
    read_ahead: BytesMut,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// Returned when the connection ends.
    _permit: Permit,
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl HeadDeadline {
    /// `inner`, whose first head must arrive within `timeout` from now (none for HTTP/2
    /// negotiated by TLS).
    pub fn new(inner: Stream, timeout: Duration, permit: Permit) -> Self {
        let phase = if inner.selected_alpn_proto() == Some(ALPN::H2) {
            Phase::Frames
        } else {
            new_head()
        };
        Self {
            inner,
            phase,
            read_ahead: BytesMut::new(),
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            _permit: permit,
        }
    }

    /// Reads the connection's first request head (up to [`FIRST_HEAD_LIMIT`] bytes of it)
    /// before the connection goes to Pingora; the bytes are read again from this stream.
    pub async fn first_head(&mut self) -> FirstHead {
        while matches!(self.phase, Phase::Head { .. }) && self.read_ahead.len() < FIRST_HEAD_LIMIT {
            match self.read_ahead_once().await {
                Ok(ReadAhead::Bytes) => {}
                Ok(ReadAhead::Closed) => return FirstHead::Closed,
                Ok(ReadAhead::TimedOut) => return FirstHead::TimedOut,
                Err(e) => return FirstHead::Failed(e),
            }
        }
        FirstHead::Arrived
    }

    /// Reads once from the client into the read-ahead buffer, under the deadline while a head
    /// is due, following the phase through the bytes.
    async fn read_ahead_once(&mut self) -> io::Result<ReadAhead> {
        if self.read_ahead.capacity() - self.read_ahead.len() < READ_AHEAD {
            self.read_ahead.reserve(READ_AHEAD);
        }
        let before = self.read_ahead.len();
        let read = if matches!(self.phase, Phase::Head { .. }) {
            tokio::select! {
                biased;
                read = self.inner.read_buf(&mut self.read_ahead) => read?,
                () = self.timer.as_mut() => {
                    super::metrics::header_timeout();
                    return Ok(ReadAhead::TimedOut);
                }
            }
        } else {
            self.inner.read_buf(&mut self.read_ahead).await?
        };
        if read == 0 {
            return Ok(ReadAhead::Closed);
        }
        // `saw` borrows `self` whole: the buffer steps out meanwhile (a move, no copy).
        let read_ahead = std::mem::take(&mut self.read_ahead);
        self.saw(&read_ahead[before..]);
        self.read_ahead = read_ahead;
        Ok(ReadAhead::Bytes)
    }

    /// Follows the phase through `read`, the bytes a read just returned.
    fn saw(&mut self, read: &[u8]) {
        if read.is_empty() || matches!(self.phase, Phase::Frames) {
            return;
        }
        if matches!(self.phase, Phase::Answered) {
            self.timer.as_mut().reset(Instant::now() + self.timeout);
            self.phase = new_head();
        }
        if let Phase::Head { tail, start } = &mut self.phase {
            start.push(read);
            if ends_head(tail, read) {
                self.phase = if start.is_h2_preface() {
                    Phase::Frames
                } else {
                    Phase::Exchange
                };
            }
        }
    }
}

impl HeadDeadline {
    /// Bytes of an answer were written: the next byte read starts the next head.
    fn answered(&mut self) {
        if !matches!(self.phase, Phase::Frames) {
            self.phase = Phase::Answered;
        }
    }
}

/// Whether the blank line that ends a head is in `read`, given the `tail` of the bytes before;
/// keeps `tail` up to date.
fn ends_head(tail: &mut [u8; 3], read: &[u8]) -> bool {
    let mut window = u32::from_be_bytes([0, tail[0], tail[1], tail[2]]);
    for &byte in read {
        window = (window << 8) | u32::from(byte);
        // `\r\n\r\n`, or a bare `\n\n`, which HTTP/1 parsers also take as the end.
        if window == 0x0d0a_0d0a || window & 0xffff == 0x0a0a {
            return true;
        }
    }
    let [_, a, b, c] = window.to_be_bytes();
    *tail = [a, b, c];
    false
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request head did not arrive in time",
    )
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_ahead.is_empty() {
            // Already seen by `saw` when read ahead.
            let n = self.read_ahead.len().min(buf.remaining());
            buf.put_slice(&self.read_ahead[..n]);
            self.read_ahead.advance(n);
            if self.read_ahead.is_empty() {
                // Its memory goes back now, not with the connection.
                self.read_ahead = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(self.phase, Phase::Head { .. })
                    && self.timer.as_mut().poll(cx).is_ready()
                {
                    super::metrics::header_timeout();
                    return Poll::Ready(Err(timed_out()));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        // An interim answer (`100 Continue`) comes before the body, not after the exchange.
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) && !data.starts_with(b"HTTP/1.1 1") {
            self.answered();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let interim = bufs
            .iter()
            .find(|b| !b.is_empty())
            .is_some_and(|b| b.starts_with(b"HTTP/1.1 1"));
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) && !interim {
            self.answered();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    /// Pingora peeks for the h2c preface: the bytes come from (and stay in) the read-ahead
    /// buffer, so the bytes already read ahead are part of what it sees.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        while self.read_ahead.len() < buf.len() {
            match self.read_ahead_once().await? {
                ReadAhead::Bytes => {}
                ReadAhead::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                ReadAhead::TimedOut => return Err(timed_out()),
            }
        }
        buf.copy_from_slice(&self.read_ahead[..buf.len()]);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blank_line_is_found_even_split_over_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        for cut in 0..head.len() {
            let mut tail = [0; 3];
            let (first, second) = head.split_at(cut);
            let found = ends_head(&mut tail, first) || ends_head(&mut tail, second);
            assert!(found, "cut at {cut}");
        }
        let mut tail = [0; 3];
        assert!(!ends_head(&mut tail, b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!ends_head(&mut tail, b"X-A: 1\r\n"));
        assert!(ends_head(&mut tail, b"\r\n"));
        assert!(ends_head(&mut [0; 3], b"GET / HTTP/1.0\n\n"));
    }

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A guarded server end and the client end of a loopback connection.
    async fn connection(timeout: Duration) -> (HeadDeadline, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let counts = std::sync::Arc::new(super::super::Counts::default());
        let limits = crate::config::ConnectionLimits {
            header_timeout: timeout,
            max_connections: 10,
            max_per_client: None,
        };
        let permit = counts.admit(&limits, None).unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        (HeadDeadline::new(stream, timeout, permit), client)
    }

    #[tokio::test]
    async fn the_first_head_is_read_ahead_and_read_again() {
        let (mut guarded, mut client) = connection(Duration::from_secs(5)).await;
        let sender = tokio::spawn(async move {
            client
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            client
                .write_all(b"Content-Length: 2\r\n\r\nhi")
                .await
                .unwrap();
            client
        });
        assert!(matches!(guarded.first_head().await, FirstHead::Arrived));
        assert!(matches!(guarded.phase, Phase::Exchange));
        let mut client = sender.await.unwrap();
        client.write_all(b"!").await.unwrap();
        let expected = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi!";
        let mut seen = Vec::new();
        while seen.len() < expected.len() {
            let mut buf = [0; 64];
            let n = guarded.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(seen, expected);
        assert_eq!(guarded.read_ahead.capacity(), 0, "its memory went back");
    }

    #[tokio::test]
    async fn a_head_that_does_not_end_in_time_ends_the_connection() {
        let (mut guarded, mut client) = connection(Duration::from_millis(200)).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(guarded.first_head().await, FirstHead::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_client_closing_before_a_head_is_told_apart() {
        let (mut guarded, mut client) = connection(Duration::from_secs(5)).await;
        client.write_all(b"GET / HT").await.unwrap();
        drop(client);
        assert!(matches!(guarded.first_head().await, FirstHead::Closed));
    }

    #[tokio::test]
    async fn the_h2c_preface_is_frames_and_can_be_peeked() {
        let (mut guarded, mut client) = connection(Duration::from_secs(5)).await;
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        client.write_all(&preface[..20]).await.unwrap();
        assert!(matches!(guarded.first_head().await, FirstHead::Arrived));
        assert!(matches!(guarded.phase, Phase::Frames));
        client.write_all(&preface[20..]).await.unwrap();
        let mut peeked = [0; 24];
        assert!(guarded.try_peek(&mut peeked).await.unwrap());
        assert_eq!(&peeked, preface);
        let mut read = [0; 24];
        guarded.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, preface, "a peek leaves the bytes to read");
    }

    #[test]
    fn only_the_whole_h2_preface_line_means_frames() {
        let mut start = HeadStart::default();
        start.push(b"PRI * HT");
        start.push(b"TP/2.0\r\n\r\nSM");
        assert!(start.is_h2_preface());
        let mut start = HeadStart::default();
        start.push(b"PRI /x HTTP/1.1\r\n");
        assert!(
            !start.is_h2_preface(),
            "a PRI request of HTTP/1 keeps its deadline"
        );
    }
}

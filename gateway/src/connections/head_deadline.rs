//! A client connection whose request heads must arrive in time: Pingora gives each read of a
//! head its own timeout, so a client sending a byte now and then (slowloris) holds the
//! connection and its buffers for as long as it likes. This stream counts from the start of a
//! head (the connection's start, or the first byte of a later request) and fails the read once
//! `header_timeout` has passed without the blank line that ends the head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// A client connection with a deadline on its request heads, holding its connection permit.
pub struct HeadDeadline {
    inner: Stream,
    phase: Phase,
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
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            _permit: permit,
        }
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

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )));
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
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
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

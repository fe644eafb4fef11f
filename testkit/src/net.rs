//! Loopback ports and the HTTP client the tests talk with.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::eventually;

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// An HTTP client that neither retries nor follows redirects, with a generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// Waits until `addr` accepts connections, failing the test with `what` after `within`.
pub async fn wait_listening(what: &str, addr: SocketAddr, within: Duration) {
    eventually(&format!("{what} listening on {addr}"), within, async || {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
}

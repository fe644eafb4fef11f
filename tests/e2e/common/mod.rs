//! Shared end-to-end test harness: the real gateway binary on loopback ports, test upstreams,
//! and the Python SDK runner.

#![allow(dead_code)]

pub mod gateway;
pub mod keys;
pub mod otlp;
pub mod python;
pub mod redis;
pub mod upstream;

use std::net::{SocketAddr, TcpListener};

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// An HTTP client that neither retries nor follows redirects, with a generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

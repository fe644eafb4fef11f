//! A real `redis-server` on a free loopback port, without persistence; stopped on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net::{free_addr, wait_listening};

/// A running Redis.
pub struct RedisServer {
    child: Option<Child>,
    /// Its address.
    pub addr: SocketAddr,
}

impl RedisServer {
    /// Starts `redis-server` (Debian package `redis-server`) and waits until it accepts; the
    /// test fails if it cannot.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(server) => server,
            Err(e) => panic!("{e} (apt-get install -y redis-server; .ci/run installs it)"),
        }
    }

    /// Like [`RedisServer::start`], for callers that can do without Redis: an error when
    /// `redis-server` cannot be run.
    pub async fn try_start() -> Result<Self, String> {
        let addr = free_addr();
        let child = Command::new("redis-server")
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let server = Self {
            child: Some(child),
            addr,
        };
        wait_listening("redis-server", addr, Duration::from_secs(10)).await;
        Ok(server)
    }

    /// `redis://<addr>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

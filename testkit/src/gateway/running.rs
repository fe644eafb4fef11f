//! A started gateway process: its addresses, log, metrics, configuration and signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{layout, AUDIT_FILE, CONFIG_FILE, LOG_FILE};
use crate::eventually;
use crate::net::client;

/// A running gateway process; killed on drop, its directory removed.
pub struct RunningGateway {
    pub(super) child: Child,
    /// The generated `[server]` table, kept for rewrites of the configuration.
    pub(super) server_header: String,
    pub(super) kubernetes_layout: bool,
    /// Proxy listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    pub(super) dir: TempDir,
}

impl RunningGateway {
    /// `http://<proxy addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident set in KiB (`VmRSS` of `/proc/<pid>/status`; 0 where there is none).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The process's peak resident set in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// How many file descriptors the process has open (entries of `/proc/<pid>/fd`; 0 where
    /// there is none): sockets, pipes and files.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// The CPU time (user and system) the process has used so far, in `/proc/<pid>/stat`'s
    /// clock ticks (10 ms on Linux): compare over many requests.
    pub fn cpu_time(&self) -> Duration {
        /// `USER_HZ`, which the kernel's interface fixes at 100.
        const TICKS_PER_SECOND: u64 = 100;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()));
        let stat = stat.unwrap_or_default();
        // The fields after the command name (which may hold spaces) in parentheses: utime and
        // stime are the 14th and 15th of the line, the 12th and 13th after it.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()));
        status
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Replaces the routes and plugins of the running gateway's configuration (the `[server]`
    /// table stays), as an operator editing the file (or Kubernetes swapping the volume) would.
    pub fn rewrite_config(&self, routes_and_plugins: &str) {
        let config = format!("{}{routes_and_plugins}", self.server_header);
        layout::rewrite(self.dir.path(), self.kubernetes_layout, &config);
    }

    /// Sends a signal (`"HUP"`, `"TERM"`) to the gateway process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// A scrape of the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("scrape body")
    }

    /// The gateway's stderr so far.
    pub fn log(&self) -> String {
        let bytes = std::fs::read(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits up to `within` for the process to exit; its exit code (`None`: still running or
    /// killed by a signal).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The records of the audit log ([`super::GatewayBuilder::audit_log`]) once there are
    /// `count` of them, waiting up to 5 s (a dedicated thread writes them); more than `count`
    /// fails.
    pub async fn audit_lines(&self, count: usize) -> Vec<Value> {
        super::read_audit_lines(&self.dir.path().join(AUDIT_FILE), count).await
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// A directory that lives as long as the gateway (for extra files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until `/readyz` answers 200; the test fails with the gateway's log if the process
    /// exits first or is not ready within 20 s.
    pub(super) async fn wait_ready(&mut self) {
        let client = client();
        let url = format!("http://{}/readyz", self.admin);
        eventually(
            "the gateway is ready",
            Duration::from_secs(20),
            async || {
                if !self.is_running() {
                    panic!("gateway exited during start-up:\n{}", self.log());
                }
                match client.get(&url).send().await {
                    Ok(resp) if resp.status() == 200 => Ok(()),
                    _ => Err(format!("gateway log:\n{}", self.log())),
                }
            },
        )
        .await;
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Runs the real `tollgate` binary (or the custom-plugin example) against a config written by
//! the test, and stops it when dropped.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_addr;

/// Path of the stock binary.
pub fn tollgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// Path of the `custom_plugin` example binary (built by `cargo test` alongside the tests).
pub fn example_bin() -> PathBuf {
    let bin = tollgate_bin();
    let dir = bin.parent().expect("binary dir");
    let path = dir.join("examples").join("custom_plugin");
    assert!(
        path.exists(),
        "example binary missing at {} (cargo test builds examples)",
        path.display()
    );
    path
}

/// The audit log's file name in the gateway's directory.
const AUDIT_FILE: &str = "audit.jsonl";

/// The records of the audit log at `path` once it has at least `count` (waiting up to 5 s; a
/// dedicated thread writes them): exactly `count`, or the test fails.
pub async fn read_audit_lines(path: &Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= count {
            assert_eq!(lines.len(), count, "{lines:#?}");
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "audit log has {} lines:\n{text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running gateway process.
pub struct RunningGateway {
    child: Child,
    /// The generated `[server]` table, kept for rewrites of the configuration.
    server_header: String,
    kubernetes_layout: bool,
    /// Proxy listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    dir: tempdir::Dir,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A private temporary directory, removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("tollgate-e2e-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What to start.
pub struct GatewayBuilder {
    kubernetes_layout: bool,
    bin: PathBuf,
    server_extra: String,
    body: String,
    env: Vec<(String, String)>,
    audit_log: bool,
}

impl GatewayBuilder {
    /// The stock binary with `routes_and_plugins` (TOML without `[server]`).
    pub fn new(routes_and_plugins: &str) -> Self {
        Self {
            kubernetes_layout: false,
            bin: tollgate_bin(),
            server_extra: String::new(),
            body: routes_and_plugins.to_string(),
            env: Vec::new(),
            audit_log: false,
        }
    }

    /// Use the custom-plugin example binary instead.
    pub fn example(mut self) -> Self {
        self.bin = example_bin();
        self
    }

    /// Adds a line to the `[server]` table (e.g. `tls = { ... }`).
    pub fn server_line(mut self, line: &str) -> Self {
        self.server_extra.push_str(line);
        self.server_extra.push('\n');
        self
    }

    /// Lays the configuration out as a Kubernetes ConfigMap volume does: `tollgate.toml` is a
    /// symlink into `..data`, itself a symlink to a versioned directory.
    pub fn kubernetes_layout(mut self) -> Self {
        self.kubernetes_layout = true;
        self
    }

    /// Writes the audit log to a file of the gateway's directory (read it with
    /// [`RunningGateway::audit_lines`]); the configuration must have no `[telemetry]` table.
    pub fn audit_log(mut self) -> Self {
        self.audit_log = true;
        self
    }

    /// Sets an environment variable for the gateway process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the gateway and waits until `/readyz` answers 200.
    pub async fn start(self) -> RunningGateway {
        let addr = free_addr();
        let admin = free_addr();
        let dir = tempdir::Dir::new();
        // Tests stop gateways by killing them; short shutdown settings unless a test sets its own.
        let shutdown = if self.server_extra.contains("grace_period") {
            ""
        } else {
            "grace_period = \"0s\"\nshutdown_timeout = \"1s\"\n"
        };
        let server_header = format!(
            "[server]\nlisten = \"{addr}\"\nadmin = \"{admin}\"\nthreads = 1\n{shutdown}{}\n",
            self.server_extra
        );
        let telemetry = if self.audit_log {
            format!(
                "[telemetry]\naudit_log = \"{}\"\n",
                dir.path().join(AUDIT_FILE).display()
            )
        } else {
            String::new()
        };
        let config = format!("{server_header}{telemetry}{}", self.body);
        let config_path = dir.path().join("tollgate.toml");
        if self.kubernetes_layout {
            write_kubernetes_version(dir.path(), "v1", &config);
            std::os::unix::fs::symlink("..data/tollgate.toml", &config_path).expect("symlink");
        } else {
            std::fs::write(&config_path, config).expect("write config");
        }
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let mut command = Command::new(&self.bin);
        command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .env("RUST_LOG", "info,tollgate=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn gateway");
        let mut gateway = RunningGateway {
            child,
            server_header,
            kubernetes_layout: self.kubernetes_layout,
            addr,
            admin,
            dir,
        };
        gateway.wait_ready().await;
        gateway
    }
}

impl RunningGateway {
    /// `http://<proxy addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Replaces the routes and plugins of the running gateway's configuration (the `[server]`
    /// table stays), as an operator editing the file (or Kubernetes swapping the volume) would.
    pub fn rewrite_config(&self, routes_and_plugins: &str) {
        let config = format!("{}{routes_and_plugins}", self.server_header);
        if self.kubernetes_layout {
            static VERSION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);
            let version = format!(
                "v{}",
                VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            write_kubernetes_version(self.dir.path(), &version, &config);
        } else {
            let path = self.dir.path().join("tollgate.toml");
            let tmp = self.dir.path().join("tollgate.toml.tmp");
            std::fs::write(&tmp, config).expect("write config");
            std::fs::rename(tmp, path).expect("replace config");
        }
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
        super::client()
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
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.path().join("gateway.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
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

    /// The records of the audit log ([`GatewayBuilder::audit_log`]) once there are `count` of
    /// them, waiting up to 5 s (a dedicated thread writes them); more than `count` fails.
    pub async fn audit_lines(&self, count: usize) -> Vec<serde_json::Value> {
        read_audit_lines(&self.dir.path().join(AUDIT_FILE), count).await
    }

    /// Checks that the audit log's records (as many as `expected` has lists) carry exactly the
    /// plugin warnings `expected` (one list per record, in order), and that the route's
    /// `tollgate_plugin_warnings_total` counts them and no other reason.
    pub async fn assert_warnings(&self, route: &str, expected: &[&[&str]]) {
        let lines = self.audit_lines(expected.len()).await;
        let mut counts = std::collections::BTreeMap::<&str, f64>::new();
        for (line, warned) in lines.iter().zip(expected) {
            let listed: Vec<&str> = line["warnings"]
                .as_array()
                .map(|w| w.iter().filter_map(|r| r.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(&listed, warned, "{line}");
            for reason in *warned {
                *counts.entry(reason).or_default() += 1.0;
            }
        }
        let scrape = self.metrics().await;
        let route_label = format!(r#"route="{route}""#);
        for line in scrape.lines() {
            if line.starts_with("tollgate_plugin_warnings_total{") && line.contains(&route_label) {
                assert!(
                    counts
                        .keys()
                        .any(|reason| line.contains(&format!(r#"reason="{reason}""#))),
                    "unexpected warning: {line}"
                );
            }
        }
        for (reason, count) in counts {
            let series =
                format!(r#"tollgate_plugin_warnings_total{{reason="{reason}",route="{route}"}}"#);
            assert_eq!(super::sample(&scrape, &series), Some(count), "{scrape}");
        }
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tollgate.toml")
    }

    /// A directory that lives as long as the gateway (for extra files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn wait_ready(&mut self) {
        let client = super::client();
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{}/readyz", self.admin);
        while Instant::now() < deadline {
            if !self.is_running() {
                panic!("gateway exited during start-up:\n{}", self.log());
            }
            if let Ok(resp) = client.get(&url).send().await {
                if resp.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway not ready after 20 s:\n{}", self.log());
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `<bin> check -c <file>` on `config`; returns (exit code, stdout + stderr).
pub fn check(bin: &std::path::Path, config: &str, env: &[(&str, &str)]) -> (i32, String, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.path().join("check.toml");
    std::fs::write(&path, config).expect("write config");
    let mut command = Command::new(bin);
    command
        .arg("check")
        .arg("-c")
        .arg(&path)
        .env_remove("TOLLGATE_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text, path)
}

/// Writes `config` into `<dir>/<version>/tollgate.toml` and points `<dir>/..data` at it
/// atomically (a new symlink renamed over the old one), as the kubelet does.
fn write_kubernetes_version(dir: &std::path::Path, version: &str, config: &str) {
    std::fs::create_dir_all(dir.join(version)).expect("version dir");
    std::fs::write(dir.join(version).join("tollgate.toml"), config).expect("write config");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
}

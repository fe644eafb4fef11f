//! The gateway binary run on loopback ports from a configuration text: the caller writes the
//! routes and plugins, the builder adds the `[server]` table (ports, one thread, a quick
//! shutdown) and waits for `/readyz`; dropping the [`RunningGateway`] kills the process.

mod audit;
mod check;
mod layout;
mod running;

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub use audit::read_audit_lines;
pub use check::check;
pub use running::RunningGateway;

use crate::net::free_addr;

/// The audit log's file name in the gateway's directory.
const AUDIT_FILE: &str = "audit.jsonl";
/// The configuration's file name in the gateway's directory.
const CONFIG_FILE: &str = "tollgate.toml";
/// The file the gateway's stderr goes to, in its directory.
const LOG_FILE: &str = "gateway.log";

/// What to start.
pub struct GatewayBuilder {
    bin: PathBuf,
    body: String,
    threads: usize,
    server_extra: String,
    telemetry_extra: String,
    audit_log: bool,
    kubernetes_layout: bool,
    log_filter: String,
    env: Vec<(String, String)>,
}

impl GatewayBuilder {
    /// The binary at `bin` (`env!("CARGO_BIN_EXE_tollgate")` or an operator binary built on the
    /// library) with `routes_and_plugins` (TOML without `[server]`).
    pub fn new(bin: impl Into<PathBuf>, routes_and_plugins: &str) -> Self {
        Self {
            bin: bin.into(),
            body: routes_and_plugins.to_string(),
            threads: 1,
            server_extra: String::new(),
            telemetry_extra: String::new(),
            audit_log: false,
            kubernetes_layout: false,
            log_filter: "info,tollgate=debug".into(),
            env: Vec::new(),
        }
    }

    /// Proxy worker threads (1 unless set).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Adds a line to the `[server]` table (e.g. `tls = { ... }`).
    pub fn server_line(mut self, line: &str) -> Self {
        self.server_extra.push_str(line);
        self.server_extra.push('\n');
        self
    }

    /// Adds a line to a `[telemetry]` table written by the builder; the routes and plugins must
    /// then have none of their own.
    pub fn telemetry_line(mut self, line: &str) -> Self {
        self.telemetry_extra.push_str(line);
        self.telemetry_extra.push('\n');
        self
    }

    /// Writes the audit log to a file of the gateway's directory (read it with
    /// [`RunningGateway::audit_lines`]); the routes and plugins must have no `[telemetry]` table.
    pub fn audit_log(mut self) -> Self {
        self.audit_log = true;
        self
    }

    /// Lays the configuration out as a Kubernetes ConfigMap volume does: `tollgate.toml` is a
    /// symlink into `..data`, itself a symlink to a versioned directory.
    pub fn kubernetes_layout(mut self) -> Self {
        self.kubernetes_layout = true;
        self
    }

    /// The gateway's `RUST_LOG` (`info,tollgate=debug` unless set: tests read the debug lines).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = filter.to_string();
        self
    }

    /// Sets an environment variable for the gateway process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the gateway and waits until `/readyz` answers 200.
    pub async fn start(self) -> RunningGateway {
        let (addr, admin) = (free_addr(), free_addr());
        let dir = tempfile::Builder::new()
            .prefix("tollgate-gw-")
            .tempdir()
            .expect("gateway directory");
        // Tests stop gateways by killing them; short shutdown settings unless a test sets its own.
        let shutdown = if self.server_extra.contains("grace_period") {
            ""
        } else {
            "grace_period = \"0s\"\nshutdown_timeout = \"1s\"\n"
        };
        let server_header = format!(
            "[server]\nlisten = \"{addr}\"\nadmin = \"{admin}\"\nthreads = {}\n{shutdown}{}\n",
            self.threads, self.server_extra
        );
        let mut telemetry = String::new();
        if self.audit_log {
            let audit = dir.path().join(AUDIT_FILE);
            telemetry.push_str(&format!("audit_log = \"{}\"\n", audit.display()));
        }
        telemetry.push_str(&self.telemetry_extra);
        if !telemetry.is_empty() {
            telemetry = format!("[telemetry]\n{telemetry}\n");
        }
        let config = format!("{server_header}{telemetry}{}", self.body);
        let config_path = dir.path().join(CONFIG_FILE);
        layout::write_first(dir.path(), self.kubernetes_layout, &config);
        let log = std::fs::File::create(dir.path().join(LOG_FILE)).expect("log file");
        let mut command = Command::new(&self.bin);
        command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
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

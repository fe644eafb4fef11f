//! Runs the Python SDK clients and servers of tests/python with the venv `tests/run` creates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_addr, wait_listening};

/// The workspace's root: this crate sits one level below it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/python/<script>`.
pub fn script_path(script: &str) -> PathBuf {
    workspace_root().join("tests/python").join(script)
}

/// The venv's python: `TOLLGATE_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    if let Ok(path) = std::env::var("TOLLGATE_PYTHON") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(".venv/bin/python");
    assert!(
        path.exists(),
        "no Python venv at {}: run `tests/run` (it creates it) or set TOLLGATE_PYTHON",
        path.display()
    );
    path
}

/// Runs `tests/python/<script>` with `args` (blocking, so call it from `spawn_blocking`), and
/// parses the one JSON object it prints.
pub fn run_script(script: &str, args: &[String]) -> (i32, serde_json::Value, String) {
    let output = Command::new(python())
        .arg(script_path(script))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        output.status.code().unwrap_or(-1),
        json,
        format!("stdout: {stdout}\nstderr: {stderr}"),
    )
}

/// `run_script` on a blocking thread.
pub async fn run(script: &'static str, args: Vec<String>) -> (i32, serde_json::Value, String) {
    tokio::task::spawn_blocking(move || run_script(script, &args))
        .await
        .expect("python runner")
}

/// A Python server script from tests/python running on a loopback port; killed on drop.
pub struct PythonServer {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    /// Holds the file its stderr goes to.
    log_dir: TempDir,
}

/// The file a [`PythonServer`]'s stderr goes to, in its directory.
const SERVER_LOG: &str = "server.log";

impl PythonServer {
    /// Starts `tests/python/<script> --port <free port>` and waits until it accepts connections.
    pub async fn start(script: &str) -> Self {
        Self::start_with_args(script, &[]).await
    }

    /// Starts `tests/python/<script> --port <free port> <args>` (e.g. `mcp_fed_server.py` with
    /// `--name alpha --era legacy`) and waits until it accepts connections; its stderr is kept
    /// for [`log`](Self::log).
    pub async fn start_with_args(script: &str, args: &[&str]) -> Self {
        let addr = free_addr();
        let log_dir = tempfile::Builder::new()
            .prefix("tollgate-py-")
            .tempdir()
            .expect("python server directory");
        let log = std::fs::File::create(log_dir.path().join(SERVER_LOG)).expect("log file");
        let child = Command::new(python())
            .arg(script_path(script))
            .arg("--port")
            .arg(addr.port().to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start python server");
        let server = Self {
            child,
            addr,
            log_dir,
        };
        wait_listening(script, addr, Duration::from_secs(20)).await;
        server
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        let bytes = std::fs::read(self.log_dir.path().join(SERVER_LOG)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

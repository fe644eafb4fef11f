//! Runs the Python SDK clients in tests/python with the venv `tests/run` creates.

use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
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
    let script_path = workspace_root().join("tests/python").join(script);
    let output = Command::new(python())
        .arg(&script_path)
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
    child: std::process::Child,
    /// Its address.
    pub addr: std::net::SocketAddr,
}

impl PythonServer {
    /// Starts `tests/python/<script> --port <free port>` and waits until it accepts connections.
    pub async fn start(script: &str) -> Self {
        let addr = super::free_addr();
        let child = Command::new(python())
            .arg(workspace_root().join("tests/python").join(script))
            .arg("--port")
            .arg(addr.port().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python server");
        let server = Self { child, addr };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{script} did not start listening"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

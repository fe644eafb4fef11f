//! `tollgate check` on a configuration text.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `<bin> check -c <file>` on `config` with `env` set (and `TOLLGATE_CONFIG` unset); the
/// exit code, stdout + stderr, and the path the errors are reported against (the file itself is
/// gone when this returns).
pub fn check(bin: &Path, config: &str, env: &[(&str, &str)]) -> (i32, String, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tollgate-check-")
        .tempdir()
        .expect("temporary directory");
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

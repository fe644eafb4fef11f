//! Reading a Prometheus scrape.

/// The value of one series (`name{labels}` exactly as exposed) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Asserts that `promtool check metrics` accepts `scrape` (the text exposition format, names,
/// help texts, types).
pub fn assert_promtool_accepts(scrape: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; tests/run and .ci/run install it)");
    promtool
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(scrape.as_bytes())
        .expect("the scrape written to promtool");
    let out = promtool.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

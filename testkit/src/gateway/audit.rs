//! Reading the audit log a gateway writes to a file.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::eventually;

/// The records of the audit log at `path` once it has at least `count` (waiting up to 5 s; a
/// dedicated thread writes them): exactly `count`, or the test fails.
pub async fn read_audit_lines(path: &Path, count: usize) -> Vec<Value> {
    let what = format!("{count} records in the audit log {}", path.display());
    let lines = eventually(&what, Duration::from_secs(5), async || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= count {
            Ok(lines)
        } else {
            Err(format!("{} lines:\n{text}", lines.len()))
        }
    })
    .await;
    assert_eq!(lines.len(), count, "{lines:#?}");
    lines
}

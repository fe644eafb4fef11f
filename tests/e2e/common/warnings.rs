//! The plugin warnings of a gateway run, as the audit log and the metrics both report them.

use std::collections::BTreeMap;

use tollgate_testkit::{sample, RunningGateway};

/// Checks that the audit log's records of `gw` (started with `audit_log()`; as many as
/// `expected` has lists) carry exactly the plugin warnings `expected` (one list per record, in
/// order), and that the route's `tollgate_plugin_warnings_total` counts them and no other reason.
pub async fn assert_warnings(gw: &RunningGateway, route: &str, expected: &[&[&str]]) {
    let lines = gw.audit_lines(expected.len()).await;
    let mut counts = BTreeMap::<&str, f64>::new();
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
    let scrape = gw.metrics().await;
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
        assert_eq!(sample(&scrape, &series), Some(count), "{scrape}");
    }
}

//! Values a plugin reports on `/metrics`: the gateway asks every plugin instance of the running
//! configuration for its gauges at each scrape (`Plugin::gauges`) and writes them as Prometheus
//! gauges, prefixed `tollgate_`. Keep label values bounded: a scrape carries every value.

/// One gauge sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// The metric name without the `tollgate_` prefix (`budget_spent_usd`): letters, digits
    /// and `_`, not starting with a digit. Samples of one name are one family.
    pub name: &'static str,
    /// What it measures (the family's help text; the first sample's is used).
    pub help: &'static str,
    /// Label names (as for `name`) and values.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// Whether `name` is a valid metric or label name of the gauges.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(is_valid_name("budget_spent_usd"));
        assert!(!is_valid_name("9lives"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
    }
}

//! Bounded label values: model and tool names come from clients and upstreams, so only values an
//! allow-list admits are used as labels, at most a fixed number of them; the rest are `other`.

use std::collections::HashSet;
use std::sync::RwLock;

/// The label value for values that are not kept.
pub const OTHER: &str = "other";

/// An allow-list of label values (exact, `*`, or `prefix*`) with a cap on distinct values.
#[derive(Debug)]
pub struct LabelFilter {
    patterns: Vec<String>,
    cap: usize,
    seen: RwLock<HashSet<String>>,
}

impl LabelFilter {
    /// A filter admitting `patterns`, at most `cap` distinct values.
    pub fn new(patterns: Vec<String>, cap: usize) -> Self {
        Self {
            patterns,
            cap,
            seen: RwLock::new(HashSet::new()),
        }
    }

    fn admits(&self, value: &str) -> bool {
        self.patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => p == value,
        })
    }

    /// The label to use for `value`.
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
        if value.is_empty() || !self.admits(value) {
            return if value.is_empty() { "" } else { OTHER };
        }
        if let Ok(seen) = self.seen.read() {
            if seen.contains(value) {
                return value;
            }
        }
        let Ok(mut seen) = self.seen.write() else {
            return OTHER;
        };
        if seen.contains(value) || seen.len() < self.cap {
            seen.insert(value.to_string());
            value
        } else {
            OTHER
        }
    }
}

/// MCP methods kept as labels; any other method is `other`.
pub fn mcp_method(method: &str) -> &str {
    const KNOWN: [&str; 19] = [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "sampling/createMessage",
        "elicitation/create",
    ];
    if KNOWN.contains(&method) {
        method
    } else {
        OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_excess_values_fold_into_other() {
        let filter = LabelFilter::new(vec!["claude-*".into(), "gpt-4o".into()], 2);
        assert_eq!(filter.label("claude-a"), "claude-a");
        assert_eq!(filter.label("gpt-4o"), "gpt-4o");
        assert_eq!(filter.label("claude-b"), OTHER, "over the cap");
        assert_eq!(filter.label("claude-a"), "claude-a", "kept values stay");
        assert_eq!(filter.label("llama"), OTHER);
        assert_eq!(mcp_method("tools/call"), "tools/call");
        assert_eq!(mcp_method("x/y"), OTHER);
    }
}

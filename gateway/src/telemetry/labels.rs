//! Bounded label values: model and tool names come from clients and upstreams, so only values an
//! allow-list admits are used as labels, at most a fixed number of them; the rest are `other`.

use std::collections::HashSet;
use std::sync::RwLock;

use tollgate_plugin_api::NamePattern;

use tollgate_plugin_api::McpMethod;

/// The label value for values that are not kept.
pub const OTHER: &str = "other";

/// An allow-list of label values (exact, `*`, or `prefix*`) with a cap on distinct values.
#[derive(Debug)]
pub struct LabelFilter {
    patterns: Vec<NamePattern>,
    cap: usize,
    seen: RwLock<HashSet<String>>,
}

impl LabelFilter {
    /// A filter admitting `patterns`, at most `cap` distinct values.
    pub fn new(patterns: Vec<NamePattern>, cap: usize) -> Self {
        Self {
            patterns,
            cap,
            seen: RwLock::new(HashSet::new()),
        }
    }

    fn admits(&self, value: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(value))
    }

    /// The label for a value a refused request carried, which any client can make up: its own
    /// when it already has one or the operator listed it by name, else `other` (a pattern such
    /// as `*` must not let made-up names take the slots).
    pub fn existing_label<'a>(&self, value: &'a str) -> &'a str {
        if value.is_empty() {
            return "";
        }
        let named = self
            .patterns
            .iter()
            .any(|p| matches!(p, NamePattern::Exact(name) if name == value));
        if named {
            return self.label(value);
        }
        match self.seen.read() {
            Ok(seen) if seen.contains(value) => value,
            _ => OTHER,
        }
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

/// MCP methods kept as labels; any other method is `other`. The methods of MCP 2026-07-28 stay
/// `other` for now so that the label values of existing dashboards and alerts do not change.
pub fn mcp_method(method: &McpMethod) -> &str {
    match method {
        McpMethod::Other(_) | McpMethod::ServerDiscover | McpMethod::SubscriptionsListen => OTHER,
        known => known.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_values_take_no_slot() {
        let filter = LabelFilter::new(vec![NamePattern::parse("*").unwrap()], 2);
        assert_eq!(filter.existing_label("junk-1"), OTHER);
        assert_eq!(filter.existing_label("junk-2"), OTHER);
        assert_eq!(filter.label("add"), "add", "the slots are still free");
        assert_eq!(filter.existing_label("add"), "add");
        assert_eq!(filter.label("sub"), "sub");
        let named = LabelFilter::new(vec![NamePattern::parse("delete_all").unwrap()], 2);
        assert_eq!(
            named.existing_label("delete_all"),
            "delete_all",
            "a tool the operator listed by name keeps its label when refused"
        );
    }

    #[test]
    fn unknown_and_excess_values_fold_into_other() {
        let patterns = ["claude-*", "gpt-4o"].map(|p| NamePattern::parse(p).unwrap());
        let filter = LabelFilter::new(patterns.to_vec(), 2);
        assert_eq!(filter.label("claude-a"), "claude-a");
        assert_eq!(filter.label("gpt-4o"), "gpt-4o");
        assert_eq!(filter.label("claude-b"), OTHER, "over the cap");
        assert_eq!(filter.label("claude-a"), "claude-a", "kept values stay");
        assert_eq!(filter.label("llama"), OTHER);
        assert_eq!(mcp_method(&McpMethod::ToolsCall), "tools/call");
        assert_eq!(mcp_method(&McpMethod::parse("x/y")), OTHER);
        assert_eq!(mcp_method(&McpMethod::ServerDiscover), OTHER);
    }
}

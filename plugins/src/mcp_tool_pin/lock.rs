//! The lock file of mode `lock`: the definitions a route's tools may have, one entry per tool
//! (route, name, hash and the definition itself), as pretty JSON so that it reads and diffs
//! well. Written by `tollgate mcp lock`, or by hand.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One locked tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedTool {
    /// The route it is locked for.
    pub route: String,
    /// Its name, as the route's clients see it.
    pub name: String,
    /// `sha256:<hex>` of its canonical definition.
    pub hash: String,
    /// The definition, for people reviewing the file.
    #[serde(default)]
    pub definition: Value,
}

/// The file.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// The tools, sorted by route and name.
    pub tools: Vec<LockedTool>,
}

/// A lock file read, by route and name.
#[derive(Debug, Default)]
pub struct Lock {
    hashes: HashMap<(String, String), String>,
}

impl Lock {
    /// Reads `file`.
    pub fn read(file: &Path) -> Result<Self, String> {
        let bytes = tollgate_plugin_api::files::read_limited(
            file,
            tollgate_plugin_api::files::MAX_CONFIG_FILE,
        )
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        let parsed: LockFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("`{}` is not a tool lock file: {e}", file.display()))?;
        let mut hashes = HashMap::new();
        for tool in parsed.tools {
            if !tool.hash.starts_with("sha256:") {
                return Err(format!(
                    "`{}`: the hash of `{}` is not `sha256:<hex>`",
                    file.display(),
                    tool.name
                ));
            }
            hashes.insert((tool.route, tool.name), tool.hash);
        }
        Ok(Self { hashes })
    }

    /// The locked hash of `tool` on `route`.
    pub fn hash(&self, route: &str, tool: &str) -> Option<&str> {
        self.hashes
            .get(&(route.to_string(), tool.to_string()))
            .map(String::as_str)
    }
}

impl LockFile {
    /// The file's text: pretty JSON, tools sorted.
    pub fn render(mut self) -> String {
        self.tools
            .sort_by(|a, b| (&a.route, &a.name).cmp(&(&b.route, &b.name)));
        let mut text = serde_json::to_string_pretty(&self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rendered_lock_reads_back() {
        let file = LockFile {
            tools: vec![
                LockedTool {
                    route: "tools".into(),
                    name: "b".into(),
                    hash: "sha256:bb".into(),
                    definition: json!({"name": "b"}),
                },
                LockedTool {
                    route: "tools".into(),
                    name: "a".into(),
                    hash: "sha256:aa".into(),
                    definition: json!({"name": "a"}),
                },
            ],
        };
        let text = file.render();
        assert!(
            text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap(),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tools.lock");
        std::fs::write(&path, &text).unwrap();
        let lock = Lock::read(&path).unwrap();
        assert_eq!(lock.hash("tools", "a"), Some("sha256:aa"));
        assert_eq!(lock.hash("other", "a"), None);
        std::fs::write(&path, "{\"tools\": [{\"route\": \"r\"}]}").unwrap();
        assert!(Lock::read(&path)
            .unwrap_err()
            .contains("not a tool lock file"));
    }
}

//! Which provider endpoints an `llm` route forwards. The gateway's key goes with every request,
//! so a route serves only the endpoints its plugins understand (their usage is read, their
//! prompts guarded); others (batches, files, ...) are refused unless the operator lists them.

/// The endpoints of the Anthropic API that `llm` routes serve by default.
const ANTHROPIC: &[&str] = &[
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/models/*",
];

/// The endpoints one `llm` route serves: its provider's defaults and `allow_paths`.
#[derive(Debug, Clone, Default)]
pub struct LlmEndpoints {
    extra: Vec<String>,
}

impl LlmEndpoints {
    /// The defaults plus `extra` (each checked by [`check_pattern`]).
    pub fn new(extra: Vec<String>) -> Self {
        Self { extra }
    }

    /// Whether the route forwards a request for the provider path `path` (no query).
    pub fn allows(&self, path: &str) -> bool {
        ANTHROPIC
            .iter()
            .copied()
            .chain(self.extra.iter().map(String::as_str))
            .any(|pattern| matches(pattern, path))
    }
}

/// `pattern` is a path, or a path ending in `/*` for everything below it.
fn matches(pattern: &str, path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    match pattern.strip_suffix("/*") {
        Some(base) => path
            .strip_prefix(base)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
        None => path == pattern,
    }
}

/// Why an `allow_paths` entry is refused, if it is.
pub fn check_pattern(pattern: &str) -> Option<&'static str> {
    if !pattern.starts_with('/') {
        return Some("an allowed path starts with `/`");
    }
    let body = pattern.strip_suffix("/*").unwrap_or(pattern);
    if body.contains('*') {
        return Some("`*` is only allowed as the last segment (`/v1/files/*`)");
    }
    if body.contains(['%', '?', '#', ';', '\\']) || body.split('/').any(|s| s == "." || s == "..") {
        return Some(
            "an allowed path is a plain path: no `%`, `?`, `#`, `;`, `\\` or dot segments",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_and_models_endpoints_pass_and_others_need_listing() {
        let defaults = LlmEndpoints::default();
        for path in [
            "/v1/messages",
            "/v1/messages/",
            "/v1/messages/count_tokens",
            "/v1/models",
            "/v1/models/claude-sonnet-4-5",
        ] {
            assert!(defaults.allows(path), "{path}");
        }
        for path in [
            "/v1/messages/batches",
            "/v1/messages/batches/msgbatch_1/results",
            "/v1/files",
            "/",
            "/v1/messagesx",
        ] {
            assert!(!defaults.allows(path), "{path}");
        }
        let extended = LlmEndpoints::new(vec![
            "/v1/messages/batches".into(),
            "/v1/messages/batches/*".into(),
        ]);
        assert!(extended.allows("/v1/messages/batches"));
        assert!(extended.allows("/v1/messages/batches/msgbatch_1/results"));
        assert!(!extended.allows("/v1/files"));
    }

    #[test]
    fn allowed_paths_are_plain() {
        assert_eq!(check_pattern("/v1/files/*"), None);
        assert_eq!(check_pattern("/v1/files"), None);
        assert_eq!(
            check_pattern("/*"),
            None,
            "everything: the operator's choice"
        );
        assert!(LlmEndpoints::new(vec!["/*".into()]).allows("/anything/at/all"));
        for bad in ["v1/files", "/v1/*/x", "/v1/f*", "/v1/%66iles", "/v1/../x"] {
            assert!(check_pattern(bad).is_some(), "{bad}");
        }
    }
}

//! `mcp-rbac`'s judgement of a list answer: the entries the caller may use, and the list made
//! private to the caller.

use serde_json::{Map, Value};
use tollgate_plugin_api::Identity;

use super::rules::Policy;
use crate::list_filter::{Judged, ListJudge, Target};

/// The reason of the error that replaces an answer too long to filter.
pub const TOO_LONG_REASON: &str = "rbac.list_too_long";

/// The reason of the error that replaces a list answer that is not JSON.
pub const UNREADABLE_REASON: &str = "rbac.list_unreadable";

/// How list filters name `mcp-rbac`.
pub const OWNER: crate::list_filter::Owner = crate::list_filter::Owner {
    plugin: "mcp-rbac",
    too_long: TOO_LONG_REASON,
    unreadable: UNREADABLE_REASON,
};

/// The policy, for one caller.
pub struct CallerJudge<'a> {
    /// The rules.
    pub policy: &'a Policy,
    /// Who calls.
    pub identity: Option<&'a Identity>,
}

impl ListJudge for CallerJudge<'_> {
    fn judge(&mut self, target: Target, result: &mut Map<String, Value>) -> Judged {
        // The list depends on the caller now: a 2026-07-28 client must not let a shared cache
        // hand it to anyone else.
        let made_private = match result.get_mut("cacheScope") {
            Some(scope) if scope != "private" => {
                *scope = Value::from("private");
                true
            }
            _ => false,
        };
        let (key, field) = target.list_key();
        let Some(Value::Array(entries)) = result.get_mut(key) else {
            return made_private.into();
        };
        let before = entries.len();
        entries.retain(|entry| {
            entry
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|name| self.policy.allows(self.identity, target, name))
        });
        (made_private || entries.len() != before).into()
    }
}

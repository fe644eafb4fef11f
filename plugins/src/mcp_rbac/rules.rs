//! Access rules: which callers (by claims) may use which tools, prompts and resources.

use serde::Deserialize;
use serde_json::Value;

use tollgate_plugin_api::config::PluginConfigError;
use tollgate_plugin_api::{Identity, NamePattern};

pub use crate::list_filter::Target;

/// One rule as written in the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Tool name patterns.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Prompt name patterns.
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Resource URI patterns.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The claim to test (`sub`, `groups`, `email`, ...).
    pub claim: String,
    /// The caller matches if the claim has any of these values.
    pub any_of: Option<Vec<String>>,
    /// The caller matches if the claim has all of these values.
    pub all_of: Option<Vec<String>>,
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
}

/// What a rule does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants access.
    #[default]
    Allow,
    /// Refuses access, whatever other rules say.
    Deny,
}

/// How a rule tests the caller's claim.
#[derive(Debug, Clone)]
enum Condition {
    AnyOf(Vec<String>),
    AllOf(Vec<String>),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    tools: Vec<NamePattern>,
    prompts: Vec<NamePattern>,
    resources: Vec<NamePattern>,
    claim: String,
    condition: Condition,
    effect: Effect,
}

impl Rule {
    /// Compiles rule number `index` (for error messages).
    pub fn compile(config: RuleConfig, index: usize) -> Result<Self, PluginConfigError> {
        let err = |message: String| {
            PluginConfigError::at("rules", format!("rule #{}: {message}", index + 1))
        };
        let patterns = |list: &[String]| {
            list.iter()
                .map(|p| NamePattern::parse(p).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        };
        let tools = patterns(&config.tools).map_err(err)?;
        let prompts = patterns(&config.prompts).map_err(err)?;
        let resources = patterns(&config.resources).map_err(err)?;
        if tools.is_empty() && prompts.is_empty() && resources.is_empty() {
            return Err(err(
                "name at least one of `tools`, `prompts`, `resources`".into()
            ));
        }
        let condition = match (config.any_of, config.all_of) {
            (Some(values), None) => Condition::AnyOf(values),
            (None, Some(values)) => Condition::AllOf(values),
            _ => return Err(err("give exactly one of `any_of`, `all_of`".into())),
        };
        Ok(Self {
            tools,
            prompts,
            resources,
            claim: config.claim,
            condition,
            effect: config.effect,
        })
    }

    fn covers(&self, target: Target, name: &str) -> bool {
        let patterns = match target {
            Target::Tool => &self.tools,
            Target::Prompt => &self.prompts,
            Target::Resource => &self.resources,
        };
        patterns.iter().any(|p| p.matches(name))
    }

    fn caller_matches(&self, identity: Option<&Identity>) -> bool {
        let Some(value) = identity.and_then(|i| claim_value(i, &self.claim)) else {
            return false;
        };
        let has = |wanted: &String| match value {
            Value::String(s) => s == wanted,
            Value::Array(items) => items.iter().any(|v| v.as_str() == Some(wanted.as_str())),
            Value::Number(n) => n.to_string() == *wanted,
            Value::Bool(b) => b.to_string() == *wanted,
            _ => false,
        };
        match &self.condition {
            Condition::AnyOf(values) => values.iter().any(has),
            Condition::AllOf(values) => values.iter().all(has),
        }
    }
}

fn claim_value<'a>(identity: &'a Identity, claim: &str) -> Option<&'a Value> {
    if claim == "sub" && !identity.claims.contains_key("sub") {
        return None;
    }
    identity.claims.get(claim)
}

/// The rule set with its default.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Whether names no allow-rule covers are allowed.
    pub default_allow: bool,
}

impl Policy {
    /// Decides: a matching deny rule refuses; a matching allow rule grants; a name covered by
    /// allow rules the caller does not match is refused; anything else gets the default.
    pub fn allows(&self, identity: Option<&Identity>, target: Target, name: &str) -> bool {
        let covering = self.rules.iter().filter(|r| r.covers(target, name));
        let mut covered_by_allow = false;
        let mut granted = false;
        for rule in covering {
            let matches = rule.caller_matches(identity);
            match rule.effect {
                Effect::Deny if matches => return false,
                Effect::Deny => {}
                Effect::Allow => {
                    covered_by_allow = true;
                    granted |= matches;
                }
            }
        }
        granted || (!covered_by_allow && self.default_allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(claims: Value) -> Identity {
        let claims = std::sync::Arc::new(claims.as_object().cloned().unwrap_or_default());
        Identity {
            subject: "x".into(),
            claims,
        }
    }

    fn policy(default_allow: bool, rules: Value) -> Policy {
        let rules: Vec<RuleConfig> = serde_json::from_value(rules).unwrap();
        Policy {
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| Rule::compile(r, i).unwrap())
                .collect(),
            default_allow,
        }
    }

    #[test]
    fn groups_and_subjects() {
        let p = policy(
            false,
            json!([
                {"tools": ["add", "multiply"], "claim": "groups", "any_of": ["math-users"]},
                {"tools": ["*"], "claim": "sub", "any_of": ["admin@example.com"]},
                {"tools": ["fs_*"], "claim": "groups", "all_of": ["staff", "disk"]},
            ]),
        );
        let math = identity(json!({"sub": "a", "groups": ["math-users"]}));
        let admin = identity(json!({"sub": "admin@example.com"}));
        let staff = identity(json!({"sub": "s", "groups": ["staff", "disk"]}));
        assert!(p.allows(Some(&math), Target::Tool, "multiply"));
        assert!(!p.allows(Some(&math), Target::Tool, "delete"));
        assert!(p.allows(Some(&admin), Target::Tool, "delete"));
        assert!(p.allows(Some(&staff), Target::Tool, "fs_read"));
        assert!(!p.allows(Some(&math), Target::Tool, "fs_read"));
        assert!(!p.allows(None, Target::Tool, "add"));
    }

    #[test]
    fn default_allow_still_restricts_covered_names_and_deny_wins() {
        let p = policy(
            true,
            json!([
                {"tools": ["billing"], "claim": "groups", "any_of": ["finance"]},
                {"prompts": ["*"], "claim": "groups", "any_of": ["interns"], "effect": "deny"},
            ]),
        );
        let intern = identity(json!({"sub": "i", "groups": ["interns"]}));
        assert!(p.allows(Some(&intern), Target::Tool, "weather"));
        assert!(!p.allows(Some(&intern), Target::Tool, "billing"));
        assert!(!p.allows(Some(&intern), Target::Prompt, "anything"));
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        let rule: RuleConfig =
            serde_json::from_value(json!({"tools": ["a*b"], "claim": "sub", "any_of": ["x"]}))
                .unwrap();
        assert!(Rule::compile(rule, 0).is_err());
    }
}

//! Helpers for plugin factories: typed configuration with errors the gateway can locate.

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// What a plugin does when a service it depends on (a shared store, a classifier) cannot
/// answer: `failure_mode = "closed"` (default) or `"open"`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse the request (503).
    #[default]
    Closed,
    /// Let the request through, counted as a plugin warning.
    Open,
}

/// A plugin configuration error. `key` names the offending key inside the plugin's table (if
/// known) so that the gateway can report `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginConfigError {
    /// What is wrong, for a human.
    pub message: String,
    /// The key inside the plugin's table the error is about, if any.
    pub key: Option<String>,
}

impl PluginConfigError {
    /// An error about the plugin's table as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
        }
    }

    /// An error about one key of the plugin's table.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: Some(key.into()),
        }
    }
}

/// Deserializes a plugin's table (without its `type` key) into `T`.
///
/// Use `#[serde(deny_unknown_fields)]` on `T` so that typos are reported. The key named in serde's
/// message (`unknown field `x``, `missing field `x``, `invalid type ... for key `x``) is kept for
/// location.
pub fn parse<T: DeserializeOwned>(table: &toml::Table) -> Result<T, PluginConfigError> {
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let message = e.message().trim().to_string();
        let key = first_backticked(&message)
            .filter(|k| table.contains_key(*k))
            .map(str::to_string);
        PluginConfigError { message, key }
    })
}

fn first_backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        header: String,
    }

    #[test]
    fn unknown_field_is_located() {
        let table: toml::Table = toml::from_str("header = \"x\"\nheadr = \"y\"").unwrap();
        let err = parse::<Sample>(&table).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("headr"));
        assert!(err.message.contains("unknown field"), "{}", err.message);
    }
}

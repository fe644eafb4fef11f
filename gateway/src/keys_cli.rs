//! `tollgate keys ...` and `tollgate spend ...`: the `api-key` plugin's keys and the `budget`
//! plugin's spending from the command line. They call the admin API of the gateway the
//! configuration describes (its `[server] admin` listener, with its `admin_token`); `keys
//! generate` makes a key offline for a read-only key file.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};
use tollgate_plugin_api::secret_source::ExposeSecret;
use tollgate_plugins::api_key::record::{new_key, unix_now};

use crate::gateway::Gateway;

/// Why a `keys` command failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeysError(String);

fn failed(message: impl std::fmt::Display) -> KeysError {
    KeysError(message.to_string())
}

/// A key to make: its identity and lifetime.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The identity's subject.
    pub subject: String,
    /// `name=value` claims.
    pub claims: Vec<String>,
    /// A label for people.
    pub name: Option<String>,
    /// `"90d"`, `"12h"`.
    pub expires_in: Option<String>,
}

impl KeySpec {
    fn claims(&self) -> Result<Map<String, Value>, KeysError> {
        self.claims
            .iter()
            .map(|pair| {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| failed(format!("--claim `{pair}` is not name=value")))?;
                Ok((name.trim().to_string(), Value::String(value.to_string())))
            })
            .collect()
    }
}

/// What a `keys` command does.
#[derive(Debug)]
pub enum KeysAction {
    /// A new key through the admin API.
    Create(KeySpec),
    /// Every key's record.
    List {
        /// Only this subject's.
        subject: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// Runs `action` against the admin API of the gateway configured by `config`, on the instance
/// `plugin`; the JSON answer, printed by the caller.
pub fn call_admin(
    gateway: &Gateway,
    config: &Path,
    plugin: &str,
    action: KeysAction,
) -> Result<Value, KeysError> {
    let base = format!("{plugin}/keys");
    let (method, path, body) = match action {
        KeysAction::Create(spec) => {
            let mut body = json!({"subject": spec.subject, "claims": spec.claims()?});
            if let Some(name) = &spec.name {
                body["name"] = json!(name);
            }
            if let Some(expires_in) = &spec.expires_in {
                body["expires_in"] = json!(expires_in);
            }
            (Method::POST, base, Some(body))
        }
        KeysAction::List { subject } => {
            let path = match subject {
                Some(subject) => format!("{base}?subject={}", query_value(&subject)),
                None => base,
            };
            (Method::GET, path, None)
        }
        KeysAction::Revoke { id } => (Method::DELETE, format!("{base}/{id}"), None),
    };
    admin_request(gateway, config, method, &path, body).map_err(KeysError)
}

/// `text` encoded for a query string.
pub fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Calls `/admin/v1/plugins/<path>` of the gateway configured by `config` (its admin listener,
/// with its `admin_token`); the JSON answer of a success, the error's message otherwise.
pub fn admin_request(
    gateway: &Gateway,
    config: &Path,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let loaded = gateway.load(config).map_err(|e| e.to_string())?;
    let admin = loaded
        .server
        .admin
        .clone()
        .ok_or("the configuration has no admin listener (`[server] admin = \"\"`)")?;
    let token = loaded
        .server
        .admin_token
        .clone()
        .ok_or("the admin API is off: set `[server] admin_token` in the configuration")?;
    let url = format!("http://{admin}/admin/v1/plugins/{path}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client
            .request(method, &url)
            .bearer_auth(token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("the admin API at {admin} did not answer: {e}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(answer)
        } else {
            let message = answer["error"]["message"]
                .as_str()
                .map_or_else(|| answer.to_string(), str::to_string);
            Err(format!("{status}: {message}"))
        }
    })
}

/// A new key for a read-only key file: the key (to hand over once) and its `[[key]]` entry.
pub fn generate(spec: &KeySpec) -> Result<(String, String), KeysError> {
    let claims = spec.claims()?;
    let now = unix_now();
    let expires_at = match &spec.expires_in {
        Some(text) => Some(
            now.saturating_add(
                tollgate_plugin_api::units::parse_duration(text)
                    .map_err(|e| failed(format!("--expires-in: {e}")))?
                    .as_secs(),
            ),
        ),
        None => None,
    };
    let key = new_key().map_err(|_| failed("the system's random source failed"))?;
    // Written line by line, in the order people read an entry; values quoted by `toml`.
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut text = format!(
        "[[key]]\nid = {}\nhash = {}\nprefix = {}\nsubject = {}\n",
        quoted(&key.id),
        quoted(&key.hash),
        quoted(&key.prefix),
        quoted(&spec.subject)
    );
    if let Some(name) = &spec.name {
        text.push_str(&format!("name = {}\n", quoted(name)));
    }
    if !claims.is_empty() {
        let pairs: Vec<String> = claims
            .iter()
            .map(|(name, value)| {
                let name = toml::Value::String(name.clone()).to_string();
                format!("{name} = {}", quoted(value.as_str().unwrap_or_default()))
            })
            .collect();
        text.push_str(&format!("claims = {{ {} }}\n", pairs.join(", ")));
    }
    text.push_str(&format!("created_at = {now}\n"));
    if let Some(at) = expires_at {
        text.push_str(&format!("expires_at = {at}\n"));
    }
    Ok((key.key, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_entry_is_a_key_file_of_one_key() {
        let spec = KeySpec {
            subject: "dave \"d\"".into(),
            claims: vec!["team=eng".into(), "odd name=a=b".into()],
            name: Some("laptop".into()),
            expires_in: Some("1d".into()),
        };
        let (key, text) = generate(&spec).unwrap();
        assert!(!text.contains(&key));
        let file: toml::Table = toml::from_str(&text).unwrap();
        let entry = &file["key"][0];
        assert_eq!(entry["subject"].as_str(), Some("dave \"d\""));
        assert_eq!(entry["claims"]["odd name"].as_str(), Some("a=b"));
        assert_eq!(
            entry["hash"].as_str(),
            Some(tollgate_plugins::api_key::record::hash(&key).as_str())
        );
        assert!(entry["expires_at"].as_integer() > entry["created_at"].as_integer());
    }
}

//! `api-key` on the admin API:
//!
//! - `POST keys` `{"subject", "claims"?, "name"?, "expires_in"?}`: a new key; the answer is the
//!   only place the key is ever shown (`201`, `{"key", "id", ...}`).
//! - `GET keys[?subject=S]`: every key's record (never the key, never its hash).
//! - `DELETE keys/<id>`: revokes the key, at once on every replica (Redis store).
//!
//! A file store is read-only: these change nothing there (`409`); edit the file instead.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_plugin_api::units::parse_duration;
use tollgate_plugin_api::{AdminRequest, AdminResponse};

use super::record::{new_key, unix_now, KeyRecord};
use super::store::StoreError;
use super::ApiKey;

/// Longest subject and name accepted.
const MAX_TEXT: usize = 256;

/// Claims the gateway sets itself.
const RESERVED_CLAIMS: [&str; 2] = ["sub", "key_id"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyRequest {
    subject: String,
    #[serde(default)]
    claims: Map<String, Value>,
    name: Option<String>,
    /// `"90d"`, `"12h"`: the key stops working that long after its creation.
    expires_in: Option<String>,
}

/// Answers an admin call of `plugin`.
pub async fn answer(plugin: &ApiKey, request: &AdminRequest) -> AdminResponse {
    match (&request.method, request.path.as_str()) {
        (&Method::POST, "keys") => match request.json::<NewKeyRequest>() {
            Ok(new) => create(plugin, new).await,
            Err(refusal) => refusal,
        },
        (&Method::GET, "keys") => list(plugin, request.query_param("subject")).await,
        (&Method::DELETE, path) => match path.strip_prefix("keys/") {
            Some(id) if !id.is_empty() && !id.contains('/') => revoke(plugin, id).await,
            _ => AdminResponse::not_found(),
        },
        _ => AdminResponse::not_found(),
    }
}

fn invalid(message: impl Into<String>) -> AdminResponse {
    AdminResponse::error(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn store_error(error: &StoreError) -> AdminResponse {
    match error {
        StoreError::ReadOnly => {
            AdminResponse::error(StatusCode::CONFLICT, "read_only_store", error.to_string())
        }
        StoreError::Unavailable(_) => AdminResponse::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            error.to_string(),
        ),
    }
}

/// What is wrong with a request for a new key, if anything; its expiry otherwise.
fn check(new: &NewKeyRequest, now: u64) -> Result<Option<u64>, AdminResponse> {
    let subject = new.subject.trim();
    if subject.is_empty() || subject.len() > MAX_TEXT {
        return Err(invalid(format!(
            "`subject` must be 1 to {MAX_TEXT} characters"
        )));
    }
    if new.name.as_ref().is_some_and(|n| n.len() > MAX_TEXT) {
        return Err(invalid(format!("`name` is at most {MAX_TEXT} characters")));
    }
    if let Some(reserved) = RESERVED_CLAIMS
        .iter()
        .find(|c| new.claims.contains_key(**c))
    {
        return Err(invalid(format!(
            "the claim `{reserved}` is set by the gateway (use `subject`)"
        )));
    }
    if serde_json::to_string(&new.claims).map_or(0, |s| s.len()) > 4096 {
        return Err(invalid("`claims` are at most 4 KiB of JSON"));
    }
    let Some(expires_in) = &new.expires_in else {
        return Ok(None);
    };
    let lifetime = parse_duration(expires_in).map_err(|e| invalid(format!("`expires_in`: {e}")))?;
    if lifetime.as_secs() == 0 {
        return Err(invalid("`expires_in` must be at least one second"));
    }
    Ok(Some(now.saturating_add(lifetime.as_secs())))
}

async fn create(plugin: &ApiKey, new: NewKeyRequest) -> AdminResponse {
    let now = unix_now();
    let expires_at = match check(&new, now) {
        Ok(expires_at) => expires_at,
        Err(refusal) => return refusal,
    };
    let Ok(fresh) = new_key() else {
        return AdminResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_randomness",
            "the system's random source failed",
        );
    };
    let record = KeyRecord {
        id: fresh.id.clone(),
        prefix: fresh.prefix.clone(),
        subject: new.subject.trim().to_string(),
        claims: new.claims,
        name: new.name,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    if let Err(error) = plugin.store.create(&fresh.hash, &record).await {
        return store_error(&error);
    }
    let audit = format!(
        "created key {} ({}…) for `{}`",
        record.id, record.prefix, record.subject
    );
    let mut body = json!(record);
    body["key"] = Value::String(fresh.key);
    AdminResponse {
        status: StatusCode::CREATED,
        body,
        audit: None,
    }
    .with_audit(audit)
}

async fn list(plugin: &ApiKey, subject: Option<String>) -> AdminResponse {
    match plugin.store.list().await {
        Ok(records) => {
            let now = unix_now();
            let keys: Vec<Value> = records
                .into_iter()
                .filter(|r| subject.as_ref().is_none_or(|s| *s == r.subject))
                .map(|r| {
                    let valid = r.valid_at(now);
                    let mut entry = json!(r);
                    entry["valid"] = Value::Bool(valid);
                    entry
                })
                .collect();
            AdminResponse::ok(json!({ "keys": keys }))
        }
        Err(error) => store_error(&error),
    }
}

async fn revoke(plugin: &ApiKey, id: &str) -> AdminResponse {
    match plugin.store.revoke(id, unix_now()).await {
        Ok(Some(record)) => {
            let audit = format!("revoked key {} of `{}`", record.id, record.subject);
            AdminResponse::ok(json!(record)).with_audit(audit)
        }
        Ok(None) => AdminResponse::error(StatusCode::NOT_FOUND, "no_key", format!("no key `{id}`")),
        Err(error) => store_error(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> NewKeyRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn new_key_requests_are_checked() {
        let ok =
            request(json!({"subject": "alice", "claims": {"team": "eng"}, "expires_in": "2d"}));
        assert_eq!(check(&ok, 1000).unwrap(), Some(1000 + 172_800));
        for (body, why) in [
            (json!({"subject": " "}), "subject"),
            (json!({"subject": "a", "claims": {"sub": "root"}}), "`sub`"),
            (json!({"subject": "a", "expires_in": "soon"}), "expires_in"),
            (json!({"subject": "a", "expires_in": "0s"}), "at least"),
            (json!({"subject": "a".repeat(300)}), "subject"),
        ] {
            let refusal = check(&request(body.clone()), 0).unwrap_err();
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{body}");
            let message = refusal.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(why), "{body}: {message}");
        }
        assert!(
            serde_json::from_value::<NewKeyRequest>(json!({"subject": "a", "role": "x"})).is_err(),
            "unknown fields are refused"
        );
    }
}

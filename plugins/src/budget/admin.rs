//! `budget` on the admin API:
//!
//! - `GET spend[?key=K]`: each key's spending in the current period, its limit and what is left.
//! - `POST overrides` `{"key", "limit_usd"}`: a key's own limit, at once (on every replica with
//!   a Redis store); `DELETE overrides?key=K` gives it the configured limit again.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_plugin_api::{AdminRequest, AdminResponse};

use super::period::rfc3339;
use super::{dollars, micro, Budget};
use crate::api_key::record::unix_now;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    key: String,
    limit_usd: f64,
}

/// Answers an admin call of `budget`.
pub async fn answer(budget: &Budget, request: &AdminRequest) -> AdminResponse {
    match (&request.method, request.path.as_str()) {
        (&Method::GET, "spend") => spend(budget, request.query_param("key")).await,
        (&Method::POST, "overrides") => match request.json::<Override>() {
            Ok(change) => set(budget, change).await,
            Err(refusal) => refusal,
        },
        (&Method::DELETE, "overrides") => match request.query_param("key") {
            Some(key) if !key.is_empty() => clear(budget, &key).await,
            _ => invalid("give the key: `DELETE overrides?key=K`"),
        },
        _ => AdminResponse::not_found(),
    }
}

fn invalid(message: impl Into<String>) -> AdminResponse {
    AdminResponse::error(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn unavailable(error: &str) -> AdminResponse {
    AdminResponse::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the budget store is unavailable: {error}"),
    )
}

fn usd(micro: u64) -> f64 {
    micro as f64 / 1_000_000.0
}

async fn spend(budget: &Budget, only: Option<String>) -> AdminResponse {
    let window = budget.period.window(unix_now());
    let (spending, overrides) = match (
        budget.store.spending(&window.id).await,
        budget.store.overrides().await,
    ) {
        (Ok(spending), Ok(overrides)) => (spending, overrides),
        (Err(error), _) | (_, Err(error)) => return unavailable(&error),
    };
    let mut keys: Vec<Value> = spending
        .iter()
        .filter(|s| only.as_ref().is_none_or(|k| *k == s.key))
        .map(|s| {
            let limit = overrides.get(&s.key).copied().unwrap_or(budget.limit);
            json!({
                "key": s.key,
                "spent_usd": usd(s.spent),
                "limit_usd": usd(limit),
                "remaining_usd": usd(limit.saturating_sub(s.spent)),
                "override": overrides.contains_key(&s.key),
            })
        })
        .collect();
    // A key asked for by name that spent nothing yet still has a budget to show.
    if let Some(key) = only.filter(|k| !spending.iter().any(|s| s.key == *k)) {
        let limit = overrides.get(&key).copied().unwrap_or(budget.limit);
        keys.push(json!({
            "key": key,
            "spent_usd": 0.0,
            "limit_usd": usd(limit),
            "remaining_usd": usd(limit),
            "override": overrides.contains_key(&key),
        }));
    }
    AdminResponse::ok(json!({
        "budget": budget.name,
        "period": window.id,
        "resets_at": rfc3339(window.resets_at),
        "limit_usd": usd(budget.limit),
        "shadow": budget.shadow,
        "keys": keys,
    }))
}

async fn set(budget: &Budget, change: Override) -> AdminResponse {
    let key = change.key.trim();
    if key.is_empty() || key.len() > 256 {
        return invalid("`key` must be 1 to 256 characters");
    }
    if !(change.limit_usd.is_finite() && change.limit_usd >= 0.0 && change.limit_usd < 1e12) {
        return invalid("`limit_usd` must be a number of USD, 0 or more");
    }
    let limit = micro(change.limit_usd);
    match budget.store.set_override(key, Some(limit)).await {
        Ok(()) => {
            AdminResponse::ok(json!({"key": key, "limit_usd": usd(limit)})).with_audit(format!(
                "budget `{}`: limit of `{key}` set to {}",
                budget.name,
                dollars(limit)
            ))
        }
        Err(error) => unavailable(&error),
    }
}

async fn clear(budget: &Budget, key: &str) -> AdminResponse {
    match budget.store.set_override(key, None).await {
        Ok(()) => AdminResponse::ok(json!({"key": key, "limit_usd": usd(budget.limit)}))
            .with_audit(format!(
                "budget `{}`: limit of `{key}` back to the configured {}",
                budget.name,
                dollars(budget.limit)
            )),
        Err(error) => unavailable(&error),
    }
}

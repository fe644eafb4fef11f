//! `token-ratelimit`: token buckets per caller, counted in requests or in LLM tokens.
//!
//! In token units a request is admitted while the caller's bucket is positive and reserves an
//! estimate (the request's `max_tokens` plus its input size, bounded by what is left); when the
//! exchange ends the reservation is settled with the usage the provider reported — from the JSON
//! body or the SSE stream, also when the client left mid-stream — so over-use is charged and an
//! unused reservation refunded. See docs/limits.md.

pub mod bucket;
pub mod redis_store;

use std::sync::Arc;
use tollgate_plugin_api::config::FailureMode;
use tollgate_plugin_api::trace::{IoSpan, TraceCtx};

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::caller_key::KeySource;
use crate::per_instance;
use serde::Deserialize;

use bucket::{Admission, Limits, LocalBuckets};
use redis_store::RedisBuckets;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretString};
use tollgate_plugin_api::units::DurationStr;
use tollgate_plugin_api::RouteKind;
use tollgate_plugin_api::{
    Outcome, Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestBody, RequestCtx,
    ResponseHead, Verdict,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitConfig {
    #[serde(default)]
    unit: Unit,
    #[serde(default = "default_key")]
    key: String,
    max_tokens: u64,
    refill_tokens: u64,
    refill_interval: DurationStr,
    /// Tokens reserved for an LLM request that names no `max_tokens`.
    default_reservation: Option<u64>,
    /// `{ redis = "redis://..." }` to share buckets across replicas; in-process by default.
    store: Option<StoreConfig>,
    /// When the store is unreachable: `closed` (refuse, default) or `open` (let through).
    #[serde(default)]
    failure_mode: FailureMode,
    /// Longest wait for the store (default 250ms).
    store_timeout: Option<DurationStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    /// May hold a password (`redis://:pw@host`).
    redis: SecretString,
}

/// Where the buckets live.
#[derive(Debug)]
enum Store {
    Local(LocalBuckets),
    Redis(Box<RedisBuckets>),
}

impl Store {
    /// A span for a store round trip; only the shared store does I/O.
    fn span(&self, trace: &TraceCtx, name: &'static str) -> IoSpan {
        match self {
            Store::Local(_) => TraceCtx::default().io_span(name),
            Store::Redis(_) => {
                let mut span = trace.io_span(name);
                span.set_attribute("db.system.name", "redis");
                span
            }
        }
    }

    async fn reserve(&self, key: &str, want: f64) -> Result<Admission, String> {
        match self {
            Store::Local(buckets) => Ok(buckets.reserve(key, want)),
            Store::Redis(buckets) => buckets.reserve(key, want).await,
        }
    }

    async fn settle(&self, key: &str, reserved: f64, actual: f64) -> Result<(), String> {
        match self {
            Store::Local(buckets) => {
                buckets.settle(key, reserved, actual);
                Ok(())
            }
            Store::Redis(buckets) => buckets.settle(key, reserved, actual).await,
        }
    }
}

fn default_key() -> String {
    "jwt.sub".into()
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One per request.
    #[default]
    Requests,
    /// LLM tokens (input + output).
    Tokens,
}

/// The bucket key of a request: per route, so that one instance can serve several routes
/// separately; callers without the claim or header share `anonymous`.
fn bucket_key(source: &KeySource, cx: &RequestCtx) -> String {
    let value = source.value(cx);
    format!(
        "{}\u{0}{}",
        cx.route().name,
        value.as_deref().unwrap_or("anonymous")
    )
}

/// A reservation waiting to be settled.
#[derive(Debug, Clone)]
struct Reservation {
    key: String,
    reserved: f64,
    remaining: f64,
}

/// The `token-ratelimit` plugin instance.
#[derive(Debug)]
pub struct TokenRateLimit {
    name: String,
    unit: Unit,
    key: KeySource,
    store: Store,
    limits: Limits,
    failure_mode: FailureMode,
    /// Seconds since `created` of the last store-failure log line (rate-limits the logging).
    last_failure_log: AtomicU64,
    created: Instant,
    default_reservation: u64,
    remaining_header: HeaderName,
    reset_header: HeaderName,
}

/// Factory for `type = "token-ratelimit"`.
pub struct TokenRateLimitFactory;

impl PluginFactory for TokenRateLimitFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: RateLimitConfig = parse(table)?;
        let key = KeySource::parse(&cfg.key).map_err(|e| PluginConfigError::at("key", e))?;
        if cfg.max_tokens == 0 || cfg.refill_tokens == 0 || cfg.refill_interval.0.is_zero() {
            return Err(PluginConfigError::new(
                "max_tokens, refill_tokens and refill_interval must be positive",
            ));
        }
        let rate = cfg.refill_tokens as f64 / cfg.refill_interval.0.as_secs_f64();
        let (remaining, reset) = match cfg.unit {
            Unit::Requests => (
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ),
            Unit::Tokens => ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        };
        let limits = Limits {
            max: cfg.max_tokens as f64,
            rate,
        };
        let store = match &cfg.store {
            None => Store::Local(LocalBuckets::new(limits)),
            Some(store) => {
                let timeout = cfg
                    .store_timeout
                    .map_or(Duration::from_millis(250), |d| d.0);
                let buckets = RedisBuckets::new(store.redis.expose_secret(), name, limits, timeout)
                    .map_err(|e| PluginConfigError::at("store", e))?;
                Store::Redis(Box::new(buckets))
            }
        };
        Ok(Arc::new(TokenRateLimit {
            name: name.to_string(),
            unit: cfg.unit,
            key,
            store,
            limits,
            failure_mode: cfg.failure_mode,
            last_failure_log: AtomicU64::new(u64::MAX),
            created: Instant::now(),
            default_reservation: cfg.default_reservation.unwrap_or(1024),
            remaining_header: HeaderName::from_static(remaining),
            reset_header: HeaderName::from_static(reset),
        }))
    }
}

impl TokenRateLimit {
    async fn admit(&self, cx: &mut RequestCtx, want: f64) -> Verdict {
        let key = bucket_key(&self.key, cx);
        let mut span = self.store.span(cx.trace(), "redis reserve");
        let reserved = self.store.reserve(&key, want).await;
        if reserved.is_err() {
            span.fail("redis.unavailable");
        }
        drop(span);
        let admission = match reserved {
            Ok(admission) => admission,
            Err(error) => {
                if self.failure_mode == FailureMode::Open {
                    cx.warnings.push("ratelimit.store_unavailable");
                }
                return self.store_failed(&error);
            }
        };
        match admission {
            Admission::Admitted {
                reserved,
                remaining,
            } => {
                let reservation = Reservation {
                    key,
                    reserved,
                    remaining,
                };
                per_instance::keep(cx, &self.name, reservation);
                Verdict::Continue
            }
            Admission::Refused { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let message = format!(
                    "rate limit of `{}` exceeded; retry in {seconds} s",
                    self.name
                );
                let rejection =
                    Rejection::new(RejectKind::RateLimit, "ratelimit.exceeded", message)
                        .with_status(StatusCode::TOO_MANY_REQUESTS)
                        .with_header(http::header::RETRY_AFTER, HeaderValue::from(seconds))
                        .with_header(self.remaining_header.clone(), HeaderValue::from_static("0"))
                        .with_header(self.reset_header.clone(), HeaderValue::from(seconds));
                Verdict::Reject(rejection)
            }
        }
    }

    /// The store is unreachable: refuse or let through as configured; logged once a minute.
    fn store_failed(&self, error: &str) -> Verdict {
        let now = self.created.elapsed().as_secs();
        let last = self.last_failure_log.load(Ordering::Relaxed);
        if last == u64::MAX || now.saturating_sub(last) >= 60 {
            self.last_failure_log.store(now, Ordering::Relaxed);
            tracing::warn!(plugin = %self.name, %error, failure_mode = ?self.failure_mode, "rate-limit store unreachable");
        }
        match self.failure_mode {
            FailureMode::Open => Verdict::Continue,
            FailureMode::Closed => Verdict::Reject(
                Rejection::new(
                    RejectKind::Api,
                    "ratelimit.unavailable",
                    "the rate limit cannot be checked right now",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")),
            ),
        }
    }

    /// Tokens to reserve for an LLM request: its output ceiling plus a rough input size.
    fn estimate(&self, cx: &RequestCtx, body: &RequestBody) -> f64 {
        let output = cx
            .llm()
            .and_then(|l| l.max_tokens)
            .unwrap_or(self.default_reservation);
        let input = body.raw().len() as u64 / 4;
        // A client picks `max_tokens`: near u64::MAX, a plain sum wraps to a tiny reservation.
        output.saturating_add(input) as f64
    }

    fn mine<'a>(&self, cx: &'a RequestCtx) -> Option<&'a Reservation> {
        per_instance::kept(cx, &self.name)
    }
}

#[async_trait]
impl Plugin for TokenRateLimit {
    fn name(&self) -> &str {
        &self.name
    }

    fn survives_reload(&self) -> bool {
        true
    }

    async fn on_request(&self, cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
        // Plain routes have no body phase. On MCP and LLM routes requests are counted once the
        // body is parsed, so that a refusal can answer the JSON-RPC id (and tokens need
        // `max_tokens`).
        if cx.route().kind == RouteKind::Http {
            return Ok(self.admit(cx, 1.0).await);
        }
        Ok(Verdict::Continue)
    }

    async fn on_request_body(
        &self,
        cx: &mut RequestCtx,
        body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        let want = match (self.unit, cx.route().kind) {
            (Unit::Tokens, RouteKind::Llm) => self.estimate(cx, body),
            _ => 1.0,
        };
        Ok(self.admit(cx, want).await)
    }

    async fn on_response(
        &self,
        cx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<(), PluginError> {
        if let Some(reservation) = self.mine(cx) {
            let limits = self.limits;
            let remaining = reservation.remaining.max(0.0).floor() as u64;
            let reset = limits
                .seconds_for(limits.max - reservation.remaining)
                .ceil() as u64;
            resp.headers
                .insert(self.remaining_header.clone(), HeaderValue::from(remaining));
            resp.headers
                .insert(self.reset_header.clone(), HeaderValue::from(reset));
        }
        Ok(())
    }

    async fn on_complete(&self, cx: &RequestCtx, _outcome: &Outcome) {
        let Some(reservation) = self.mine(cx) else {
            return;
        };
        let actual = match self.unit {
            Unit::Requests => reservation.reserved,
            // No usage reported (refused later in the chain, upstream down): refund it all.
            Unit::Tokens if cx.usage().reported => {
                let usage = cx.usage();
                (usage.input_tokens + usage.output_tokens) as f64
            }
            Unit::Tokens => 0.0,
        };
        // Requests were charged in full at admission; only tokens need settling.
        if self.unit == Unit::Tokens {
            let mut span = self.store.span(cx.trace(), "redis settle");
            if let Err(error) = self
                .store
                .settle(&reservation.key, reservation.reserved, actual)
                .await
            {
                span.fail("redis.unavailable");
                tracing::debug!(plugin = %self.name, %error, "could not settle a reservation");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_redis_password() {
        let table: toml::Table = toml::from_str(
            "max_tokens = 10\nrefill_tokens = 1\nrefill_interval = \"1s\"\n\
             store = { redis = \"redis://:hunter2-secret@127.0.0.1:1\" }",
        )
        .unwrap();
        let cfg: RateLimitConfig = parse(&table).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

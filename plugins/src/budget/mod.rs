//! `budget`: spending in USD per budget key (`jwt.team`, `header:...`: the syntax of
//! `token-ratelimit`) over calendar periods (UTC day, week, month), from the usage the provider
//! reports and a price table per model. A request is admitted while its key has spent less than
//! its limit and reserves what it may cost (its `max_tokens` of output plus its prompt); the
//! reservation is settled on the real usage when the exchange ends. In Redis the check and the
//! reservation are one script, exact across replicas. See docs/spend.md.

pub mod admin;
mod gauges;
pub mod period;
pub mod prices;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::api_key::record::unix_now;
use crate::caller_key::KeySource;
use crate::per_instance;
use period::{rfc3339, Period, Window};
use prices::{Price, PriceBook, DEFAULT_FALLBACK};
use store::{Admission, SpendStore};
use tollgate_plugin_api::config::{parse, FailureMode, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretString};
use tollgate_plugin_api::units::DurationStr;
use tollgate_plugin_api::{
    AdminRequest, AdminResponse, Outcome, Plugin, PluginError, PluginFactory, RejectKind,
    Rejection, RequestBody, RequestCtx, RouteKind, Verdict,
};

/// The largest reservation, in millionths of a USD ($1,000,000): a client's absurd
/// `max_tokens` must not overflow the store's counters.
const MAX_RESERVATION: u64 = 1_000_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetConfig {
    #[serde(default = "default_key")]
    key: String,
    limit_usd: f64,
    period: Period,
    prices: Option<PricesConfig>,
    /// Count and alert, never refuse.
    #[serde(default)]
    shadow: bool,
    /// Shares of the limit that raise an alert, once per key and period.
    #[serde(default)]
    alerts: Vec<f64>,
    /// Called (POST, JSON) with each alert.
    alert_webhook: Option<String>,
    /// USD per million tokens for models no table names (default: the most expensive).
    fallback_price: Option<Price>,
    /// Output tokens reserved for a request without `max_tokens`.
    default_reservation: Option<u64>,
    store: Option<StoreConfig>,
    #[serde(default)]
    failure_mode: FailureMode,
    store_timeout: Option<DurationStr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesConfig {
    file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    /// May hold a password (`redis://:pw@host`).
    redis: SecretString,
}

fn default_key() -> String {
    "jwt.sub".into()
}

/// The `budget` plugin instance.
pub struct Budget {
    name: String,
    key: KeySource,
    limit: u64,
    period: Period,
    prices: PriceBook,
    price_file: Option<PathBuf>,
    shadow: bool,
    alerts: Vec<f64>,
    webhook: Option<(String, reqwest::Client)>,
    default_reservation: u64,
    store: SpendStore,
    failure_mode: FailureMode,
    /// What this replica last saw of each key's spending, for `/metrics`.
    seen: gauges::SeenSpend,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("period", &self.period)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Factory for `type = "budget"`.
pub struct BudgetFactory;

/// USD as millionths of a USD.
fn micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

/// Millionths of a USD as dollars and cents (`$12.34`).
pub fn dollars(micro: u64) -> String {
    format!("${:.2}", micro as f64 / 1_000_000.0)
}

impl PluginFactory for BudgetFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: BudgetConfig = parse(table)?;
        let key = KeySource::parse(&cfg.key).map_err(|e| PluginConfigError::at("key", e))?;
        if !(cfg.limit_usd.is_finite() && cfg.limit_usd > 0.0) {
            return Err(PluginConfigError::at(
                "limit_usd",
                "the limit must be a positive number of USD",
            ));
        }
        if let Some(bad) = cfg
            .alerts
            .iter()
            .find(|s| !(s.is_finite() && **s > 0.0 && **s <= 10.0))
        {
            return Err(PluginConfigError::at(
                "alerts",
                format!("{bad} is not a share of the limit (0 < share <= 10, e.g. 0.8)"),
            ));
        }
        let fallback = cfg.fallback_price.unwrap_or(DEFAULT_FALLBACK);
        let price_file = cfg.prices.as_ref().map(|p| PathBuf::from(&p.file));
        let prices = match &price_file {
            Some(path) => PriceBook::with_file(path, fallback)
                .map_err(|e| PluginConfigError::at("prices", e))?,
            None => PriceBook::shipped(fallback),
        };
        let store = match &cfg.store {
            None => SpendStore::local(name),
            Some(store) => {
                let timeout = cfg
                    .store_timeout
                    .map_or(Duration::from_millis(250), |d| d.0);
                SpendStore::Redis(Box::new(
                    store::RedisSpend::new(store.redis.expose_secret(), name, timeout)
                        .map_err(|e| PluginConfigError::at("store", e))?,
                ))
            }
        };
        let webhook = match &cfg.alert_webhook {
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(PluginConfigError::at(
                        "alert_webhook",
                        "an http(s) URL is required",
                    ));
                }
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| PluginConfigError::at("alert_webhook", e.to_string()))?;
                Some((url.clone(), client))
            }
            None => None,
        };
        let mut alerts = cfg.alerts;
        alerts.sort_by(f64::total_cmp);
        alerts.dedup();
        Ok(Arc::new(Budget {
            name: name.to_string(),
            key,
            limit: micro(cfg.limit_usd),
            period: cfg.period,
            prices,
            price_file,
            shadow: cfg.shadow,
            alerts,
            webhook,
            default_reservation: cfg.default_reservation.unwrap_or(4096),
            store,
            failure_mode: cfg.failure_mode,
            seen: gauges::SeenSpend::default(),
        }))
    }
}

/// A reservation waiting to be settled (one per budget instance of the chain).
#[derive(Debug, Clone)]
struct Reservation {
    window: String,
    key: String,
    reserved: u64,
}

impl Budget {
    /// The budget key of a request: callers without the claim or header share `anonymous`.
    fn budget_key(&self, cx: &RequestCtx) -> String {
        self.key.value(cx).unwrap_or_else(|| "anonymous".into())
    }

    /// The most the request may cost: its output ceiling and a rough prompt size, at the
    /// model's prices.
    fn estimate(&self, cx: &mut RequestCtx, body: &RequestBody) -> u64 {
        let llm = cx.llm();
        let model = llm.and_then(|l| l.model.clone()).unwrap_or_default();
        let output = llm
            .and_then(|l| l.max_tokens)
            .unwrap_or(self.default_reservation);
        let (price, known) = self.prices.price(&model);
        if !known {
            self.unknown_model(cx, &model);
        }
        let input = body.raw().len() as u64 / 4;
        price.ceiling(input, output).min(MAX_RESERVATION)
    }

    fn unknown_model(&self, cx: &mut RequestCtx, model: &str) {
        if !cx.warnings.contains(&"budget.unknown_model") {
            cx.warnings.push("budget.unknown_model");
            tracing::warn!(plugin = %self.name, %model, "budget: a model missing from the price table is charged at the fallback price");
        }
    }

    fn over_budget(&self, key: &str, spent: u64, limit: u64, window: &Window) -> Rejection {
        let seconds = window.resets_at.saturating_sub(unix_now()).max(1);
        let message = format!(
            "budget `{}` for `{key}` is used up: {} of {} spent {}; it resets at {}",
            self.name,
            dollars(spent),
            dollars(limit),
            self.period.this(),
            rfc3339(window.resets_at)
        );
        Rejection::new(RejectKind::RateLimit, "budget.exceeded", message)
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .with_header(http::header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    fn store_failed(&self, cx: &mut RequestCtx, error: &str) -> Verdict {
        tracing::warn!(plugin = %self.name, %error, failure_mode = ?self.failure_mode, "budget store unreachable");
        match self.failure_mode {
            FailureMode::Open => {
                cx.warnings.push("budget.store_unavailable");
                Verdict::Continue
            }
            FailureMode::Closed => Verdict::Reject(
                Rejection::new(
                    RejectKind::Api,
                    "budget.unavailable",
                    "the budget cannot be checked right now",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")),
            ),
        }
    }

    /// Raises the alerts whose share the key's spending has reached, each once per period.
    async fn alert(&self, cx: &mut RequestCtx, key: &str, spent: u64, limit: u64, window: &Window) {
        let share = spent as f64 / limit.max(1) as f64;
        for threshold in self.alerts.iter().filter(|t| share >= **t) {
            let label = format!("{threshold}");
            match self.store.first_alert(&window.id, key, &label).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::debug!(plugin = %self.name, %error, "could not record a budget alert");
                    continue;
                }
            }
            let percent = (threshold * 100.0).round();
            cx.warnings.push("budget.alert");
            cx.notes.push(format!(
                "budget `{}`: `{key}` reached {percent}% of {} {} ({} spent)",
                self.name,
                dollars(limit),
                self.period.this(),
                dollars(spent)
            ));
            tracing::warn!(plugin = %self.name, %key, share = %threshold, spent = %dollars(spent), limit = %dollars(limit), "budget alert");
            if let Some((url, client)) = &self.webhook {
                let body = json!({
                    "plugin": self.name,
                    "key": key,
                    "share": threshold,
                    "spent_usd": spent as f64 / 1_000_000.0,
                    "limit_usd": limit as f64 / 1_000_000.0,
                    "period": window.id,
                    "resets_at": rfc3339(window.resets_at),
                    "shadow": self.shadow,
                });
                let (url, client, plugin) = (url.clone(), client.clone(), self.name.clone());
                tokio::spawn(async move {
                    if let Err(error) = client.post(&url).json(&body).send().await {
                        tracing::warn!(%plugin, %error, "budget alert webhook failed");
                    }
                });
            }
        }
    }

    fn mine<'a>(&self, cx: &'a RequestCtx) -> Option<&'a Reservation> {
        per_instance::kept(cx, &self.name)
    }
}

#[async_trait]
impl Plugin for Budget {
    fn name(&self) -> &str {
        &self.name
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        self.price_file.iter().cloned().collect()
    }

    async fn on_request_body(
        &self,
        cx: &mut RequestCtx,
        body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        // Only model calls cost money.
        if cx.route().kind != RouteKind::Llm {
            return Ok(Verdict::Continue);
        }
        let key = self.budget_key(cx);
        let estimate = self.estimate(cx, body);
        let window = self.period.window(unix_now());
        let expires_in = window.resets_at.saturating_sub(unix_now()) + 40 * 86_400;
        let mut span = cx.trace().io_span("budget reserve");
        let admission = self
            .store
            .reserve(
                &window.id,
                &key,
                estimate,
                self.limit,
                self.shadow,
                expires_in,
            )
            .await;
        if admission.is_err() {
            span.fail("budget.unavailable");
        }
        drop(span);
        let (spent, limit) = match admission {
            Err(error) => return Ok(self.store_failed(cx, &error)),
            Ok(Admission::Refused { spent, limit }) => {
                return Ok(Verdict::Reject(
                    self.over_budget(&key, spent, limit, &window),
                ));
            }
            Ok(Admission::Admitted { spent, limit }) => (spent, limit),
        };
        if self.shadow && spent >= limit {
            cx.warnings.push("budget.exceeded_shadow");
        }
        self.seen
            .saw(&window.id, &key, spent.saturating_add(estimate), limit);
        self.alert(cx, &key, spent, limit, &window).await;
        let reservation = Reservation {
            window: window.id,
            key,
            reserved: estimate,
        };
        per_instance::keep(cx, &self.name, reservation);
        Ok(Verdict::Continue)
    }

    async fn on_complete(&self, cx: &RequestCtx, _outcome: &Outcome) {
        let Some(reservation) = self.mine(cx) else {
            return;
        };
        // The model that answered decides the price (the one asked for if it said none).
        let model = cx
            .response_model()
            .or_else(|| cx.llm().and_then(|l| l.model.as_deref()))
            .unwrap_or_default();
        let usage = cx.usage();
        // No usage reported (refused later in the chain, upstream down): refund it all.
        let actual = if usage.reported {
            self.prices.price(model).0.cost(&usage).min(MAX_RESERVATION)
        } else {
            0
        };
        let delta = i64::try_from(actual).unwrap_or(i64::MAX)
            - i64::try_from(reservation.reserved).unwrap_or(i64::MAX);
        let mut span = cx.trace().io_span("budget settle");
        if let Err(error) = self
            .store
            .settle(&reservation.window, &reservation.key, delta)
            .await
        {
            span.fail("budget.unavailable");
            tracing::warn!(plugin = %self.name, %error, "could not settle a budget reservation");
            return;
        }
        self.seen
            .settled(&reservation.window, &reservation.key, delta);
    }

    fn gauges(&self) -> Vec<tollgate_plugin_api::Gauge> {
        let window = self.period.window(unix_now());
        self.seen.gauges(&self.name, &window.id)
    }

    async fn admin(&self, request: &AdminRequest) -> AdminResponse {
        admin::answer(self, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tollgate_plugin_api::testing::{
        allowed, build_plugin, identity, json_body, TestExchange, TestRequest,
    };
    use tollgate_plugin_api::LlmRequest;

    fn request(team: &str, max_tokens: u64) -> TestRequest {
        TestRequest::llm("/v1/messages")
            .identity(identity("u", serde_json::json!({"team": team})))
            .llm_request(LlmRequest {
                model: Some("claude-sonnet-4-5".into()),
                stream: false,
                max_tokens: Some(max_tokens),
                message_count: 1,
            })
    }

    /// One exchange: admitted or refused, settled with `output` tokens when admitted.
    async fn exchange(plugin: &Arc<dyn Plugin>, team: &str, output: u64) -> Verdict {
        let mut exchange = TestExchange::new(plugin.clone(), request(team, 1_000));
        let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 1_000});
        let verdict = exchange
            .on_request_body(&mut json_body(&body))
            .await
            .unwrap();
        if verdict.rejection().is_none() {
            exchange.set_usage(0, output);
            exchange.on_complete(&allowed(200)).await;
        }
        verdict
    }

    #[tokio::test]
    async fn spending_is_settled_on_usage_and_refused_past_the_limit() {
        // $0.05 a team; each answer of 1,000 output tokens at $15/M costs $0.015.
        let plugin = build_plugin(
            &BudgetFactory,
            "unit-spend",
            "key = \"jwt.team\"\nlimit_usd = 0.05\nperiod = \"month\"\nalerts = [0.5]",
        )
        .unwrap();
        for _ in 0..4 {
            assert!(exchange(&plugin, "eng", 1_000).await.rejection().is_none());
        }
        // $0.06 spent: refused, in the caller's protocol, saying which budget and when.
        let refused = exchange(&plugin, "eng", 1_000).await;
        let rejection = refused.rejection().expect("over budget");
        assert_eq!(rejection.reason, "budget.exceeded");
        assert_eq!(rejection.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            rejection.message.contains("$0.06 of $0.05"),
            "{}",
            rejection.message
        );
        assert!(
            rejection.message.contains("resets at"),
            "{}",
            rejection.message
        );
        // Another team has its own budget.
        assert!(exchange(&plugin, "ops", 1_000).await.rejection().is_none());
        // The admin API shows both.
        let spend = plugin
            .admin(&AdminRequest {
                method: http::Method::GET,
                path: "spend".into(),
                query: None,
                body: Default::default(),
            })
            .await;
        let keys = spend.body["keys"].as_array().unwrap();
        let eng = keys.iter().find(|k| k["key"] == "eng").unwrap();
        assert_eq!(eng["spent_usd"], Value::from(0.06));
        assert_eq!(eng["remaining_usd"], Value::from(0.0));
    }

    #[tokio::test]
    async fn a_request_that_gets_no_answer_is_refunded_and_alerts_fire_once() {
        let plugin = build_plugin(
            &BudgetFactory,
            "unit-refund",
            "key = \"jwt.team\"\nlimit_usd = 1.0\nperiod = \"day\"\nalerts = [0.01]",
        )
        .unwrap();
        let mut first = TestExchange::new(plugin.clone(), request("eng", 100_000));
        let verdict = first
            .on_request_body(&mut json_body(&serde_json::json!({})))
            .await
            .unwrap();
        assert!(verdict.rejection().is_none());
        // No usage reported (the upstream failed): the $1.50 reservation comes back.
        first.on_complete(&allowed(502)).await;
        let mut second = TestExchange::new(plugin.clone(), request("eng", 1_000));
        second
            .on_request_body(&mut json_body(&serde_json::json!({})))
            .await
            .unwrap();
        assert!(
            second.cx().warnings.is_empty(),
            "nothing spent yet: no alert"
        );
        second.set_usage(0, 1_000);
        second.on_complete(&allowed(200)).await;
        let mut alerts = 0;
        for _ in 0..3 {
            let mut next = TestExchange::new(plugin.clone(), request("eng", 10));
            next.on_request_body(&mut json_body(&serde_json::json!({})))
                .await
                .unwrap();
            alerts += next
                .cx()
                .warnings
                .iter()
                .filter(|w| **w == "budget.alert")
                .count();
            next.on_complete(&allowed(200)).await;
        }
        assert_eq!(alerts, 1, "the 1% alert fires once");
    }

    #[test]
    fn bad_settings_are_located() {
        for (table, key) in [
            ("limit_usd = 0\nperiod = \"day\"", "limit_usd"),
            ("limit_usd = 1\nperiod = \"year\"", "`week`"),
            (
                "limit_usd = 1\nperiod = \"day\"\nalerts = [1.5, -1]",
                "alerts",
            ),
            ("limit_usd = 1\nperiod = \"day\"\nkey = \"who\"", "key"),
            (
                "limit_usd = 1\nperiod = \"day\"\nalert_webhook = \"ftp://x\"",
                "alert_webhook",
            ),
        ] {
            let error = build_plugin(&BudgetFactory, "bad", table).unwrap_err();
            assert!(format!("{error:?}").contains(key), "{table}: {error:?}");
        }
    }
}

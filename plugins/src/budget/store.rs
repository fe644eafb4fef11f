//! Where spending is counted, in millionths of a USD per budget key and period: in the process
//! (kept across configuration reloads by instance name), or in Redis, exact across replicas
//! (admission and reservation in one script).
//!
//! Redis keys of instance `<p>`: `tollgate:budget:<p>:spend:<period>` (a hash, key → spent),
//! `tollgate:budget:<p>:overrides` (key → limit), `tollgate:budget:<p>:alerts:<period>` (the
//! alerts raised, so that each fires once across replicas).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;

use crate::redis_link::RedisLink;

/// What the store decided about a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Reserved; `spent` is what was spent before it.
    Admitted {
        /// Spent before this reservation.
        spent: u64,
        /// The key's limit.
        limit: u64,
    },
    /// The key's budget is used up.
    Refused {
        /// Spent.
        spent: u64,
        /// The key's limit.
        limit: u64,
    },
}

/// One key's spending in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpend {
    /// The budget key.
    pub key: String,
    /// Spent (with reservations in flight).
    pub spent: u64,
}

/// The spending of one plugin instance.
pub enum SpendStore {
    /// In this process.
    Local(Arc<LocalSpend>),
    /// In Redis, shared by replicas.
    Redis(Box<RedisSpend>),
}

impl std::fmt::Debug for SpendStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("Local"),
            // The URL may hold a password.
            Self::Redis(redis) => f.debug_tuple("Redis").field(&redis.prefix).finish(),
        }
    }
}

/// Process-wide local spending by instance name: a reload rebuilds the instance (a changed
/// price file, a changed limit) but keeps what was spent.
static LOCAL: LazyLock<Mutex<HashMap<String, Arc<LocalSpend>>>> = LazyLock::new(Default::default);

impl SpendStore {
    /// The local spending of instance `plugin`.
    pub fn local(plugin: &str) -> Self {
        let mut all = LOCAL.lock().unwrap_or_else(PoisonError::into_inner);
        Self::Local(all.entry(plugin.to_string()).or_default().clone())
    }

    /// Admits a request of `key` in `period` while it has spent less than its limit (its
    /// override, else `limit`), reserving `estimate`; `shadow` reserves whatever was spent.
    pub async fn reserve(
        &self,
        period: &str,
        key: &str,
        estimate: u64,
        limit: u64,
        shadow: bool,
        expires_in: u64,
    ) -> Result<Admission, String> {
        match self {
            Self::Local(local) => Ok(local.reserve(period, key, estimate, limit, shadow)),
            Self::Redis(redis) => {
                redis
                    .reserve(period, key, estimate, limit, shadow, expires_in)
                    .await
            }
        }
    }

    /// Adds `delta` (the real cost minus the reservation) to `key`'s spending in `period`.
    pub async fn settle(&self, period: &str, key: &str, delta: i64) -> Result<(), String> {
        match self {
            Self::Local(local) => {
                local.settle(period, key, delta);
                Ok(())
            }
            Self::Redis(redis) => redis.settle(period, key, delta).await,
        }
    }

    /// Whether alert `share` of `key` in `period` is raised for the first time (marks it).
    pub async fn first_alert(&self, period: &str, key: &str, share: &str) -> Result<bool, String> {
        match self {
            Self::Local(local) => Ok(local.first_alert(period, key, share)),
            Self::Redis(redis) => redis.first_alert(period, key, share).await,
        }
    }

    /// Every key's spending in `period`.
    pub async fn spending(&self, period: &str) -> Result<Vec<KeySpend>, String> {
        let mut all = match self {
            Self::Local(local) => local.spending(period),
            Self::Redis(redis) => redis.spending(period).await?,
        };
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// The per-key limits set at run time.
    pub async fn overrides(&self) -> Result<HashMap<String, u64>, String> {
        match self {
            Self::Local(local) => Ok(lock(&local.overrides).clone()),
            Self::Redis(redis) => redis.overrides().await,
        }
    }

    /// Sets (`Some`) or clears `key`'s limit.
    pub async fn set_override(&self, key: &str, limit: Option<u64>) -> Result<(), String> {
        match self {
            Self::Local(local) => {
                let mut overrides = lock(&local.overrides);
                match limit {
                    Some(limit) => overrides.insert(key.to_string(), limit),
                    None => overrides.remove(key),
                };
                Ok(())
            }
            Self::Redis(redis) => redis.set_override(key, limit).await,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spending kept in this process.
#[derive(Debug, Default)]
pub struct LocalSpend {
    /// (period, key) → spent.
    spent: Mutex<HashMap<(String, String), u64>>,
    overrides: Mutex<HashMap<String, u64>>,
    alerts: Mutex<HashSet<(String, String, String)>>,
}

impl LocalSpend {
    fn reserve(
        &self,
        period: &str,
        key: &str,
        estimate: u64,
        limit: u64,
        shadow: bool,
    ) -> Admission {
        let limit = lock(&self.overrides).get(key).copied().unwrap_or(limit);
        let mut spent = lock(&self.spent);
        // Periods past are dropped as the next one starts.
        spent.retain(|(p, _), _| p == period);
        let entry = spent
            .entry((period.to_string(), key.to_string()))
            .or_insert(0);
        let before = *entry;
        if before >= limit && !shadow {
            return Admission::Refused {
                spent: before,
                limit,
            };
        }
        *entry = before.saturating_add(estimate);
        Admission::Admitted {
            spent: before,
            limit,
        }
    }

    fn settle(&self, period: &str, key: &str, delta: i64) {
        let mut spent = lock(&self.spent);
        if let Some(entry) = spent.get_mut(&(period.to_string(), key.to_string())) {
            *entry = entry.saturating_add_signed(delta);
        }
    }

    fn first_alert(&self, period: &str, key: &str, share: &str) -> bool {
        let mut alerts = lock(&self.alerts);
        alerts.retain(|(p, _, _)| p == period);
        alerts.insert((period.to_string(), key.to_string(), share.to_string()))
    }

    fn spending(&self, period: &str) -> Vec<KeySpend> {
        lock(&self.spent)
            .iter()
            .filter(|((p, _), _)| p == period)
            .map(|((_, key), spent)| KeySpend {
                key: key.clone(),
                spent: *spent,
            })
            .collect()
    }
}

/// Reserve: admits while the key's spending is under its limit (its override, else the
/// default), then adds the estimate; answers admitted, spent before, limit.
const RESERVE: &str = r"
local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local limit = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
if spent >= limit and ARGV[4] == '0' then
  return {0, tostring(spent), tostring(limit)}
end
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, tostring(spent), tostring(limit)}
";

/// The Redis spending of one plugin instance.
pub struct RedisSpend {
    link: RedisLink,
    prefix: String,
    reserve: redis::Script,
}

impl RedisSpend {
    /// The spending of instance `plugin` at `url`; each call gives up after `timeout`.
    pub fn new(url: &str, plugin: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            link: RedisLink::new(url, timeout)?,
            prefix: format!("tollgate:budget:{plugin}"),
            reserve: redis::Script::new(RESERVE),
        })
    }

    fn spend_key(&self, period: &str) -> String {
        format!("{}:spend:{period}", self.prefix)
    }

    fn overrides_key(&self) -> String {
        format!("{}:overrides", self.prefix)
    }

    async fn reserve(
        &self,
        period: &str,
        key: &str,
        estimate: u64,
        limit: u64,
        shadow: bool,
        expires_in: u64,
    ) -> Result<Admission, String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                let (admitted, spent, limit): (i64, String, String) = self
                    .reserve
                    .key(self.spend_key(period))
                    .key(self.overrides_key())
                    .arg(key)
                    .arg(limit)
                    .arg(estimate)
                    .arg(if shadow { "1" } else { "0" })
                    .arg(expires_in.max(1))
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|e| e.to_string())?;
                let number = |text: &str| text.parse::<f64>().map_or(0, |n| n.max(0.0) as u64);
                let (spent, limit) = (number(&spent), number(&limit));
                Ok(if admitted == 1 {
                    Admission::Admitted { spent, limit }
                } else {
                    Admission::Refused { spent, limit }
                })
            })
            .await
    }

    async fn settle(&self, period: &str, key: &str, delta: i64) -> Result<(), String> {
        if delta == 0 {
            return Ok(());
        }
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                connection
                    .hincr::<_, _, _, ()>(self.spend_key(period), key, delta)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
    }

    async fn first_alert(&self, period: &str, key: &str, share: &str) -> Result<bool, String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                let alerts = format!("{}:alerts:{period}", self.prefix);
                let added: i64 = connection
                    .sadd(&alerts, format!("{key}\u{0}{share}"))
                    .await
                    .map_err(|e| e.to_string())?;
                connection
                    .expire::<_, ()>(&alerts, 40 * 86_400)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(added == 1)
            })
            .await
    }

    async fn spending(&self, period: &str) -> Result<Vec<KeySpend>, String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                let all: HashMap<String, i64> = connection
                    .hgetall(self.spend_key(period))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(all
                    .into_iter()
                    .map(|(key, spent)| KeySpend {
                        key,
                        spent: u64::try_from(spent).unwrap_or(0),
                    })
                    .collect())
            })
            .await
    }

    async fn overrides(&self) -> Result<HashMap<String, u64>, String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                connection
                    .hgetall(self.overrides_key())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
    }

    async fn set_override(&self, key: &str, limit: Option<u64>) -> Result<(), String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                match limit {
                    Some(limit) => {
                        connection
                            .hset::<_, _, _, ()>(self.overrides_key(), key, limit)
                            .await
                    }
                    None => connection.hdel::<_, _, ()>(self.overrides_key(), key).await,
                }
                .map_err(|e| e.to_string())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_spending_admits_under_the_limit_and_settles() {
        let local = LocalSpend::default();
        assert_eq!(
            local.reserve("2026-12", "eng", 700, 1_000, false),
            Admission::Admitted {
                spent: 0,
                limit: 1_000
            }
        );
        local.settle("2026-12", "eng", -200);
        assert_eq!(
            local.reserve("2026-12", "eng", 600, 1_000, false),
            Admission::Admitted {
                spent: 500,
                limit: 1_000
            }
        );
        assert_eq!(
            local.reserve("2026-12", "eng", 1, 1_000, false),
            Admission::Refused {
                spent: 1_100,
                limit: 1_000
            }
        );
        assert!(matches!(
            local.reserve("2026-12", "eng", 1, 1_000, true),
            Admission::Admitted { .. }
        ));
        assert!(
            matches!(
                local.reserve("2027-01", "eng", 1, 1_000, false),
                Admission::Admitted { spent: 0, .. }
            ),
            "a new period starts at zero"
        );
        lock(&local.overrides).insert("ops".into(), 5);
        assert_eq!(
            local.reserve("2027-01", "ops", 10, 1_000, false),
            Admission::Admitted { spent: 0, limit: 5 }
        );
        assert!(local.first_alert("2027-01", "ops", "0.8"));
        assert!(
            !local.first_alert("2027-01", "ops", "0.8"),
            "once per period"
        );
    }
}

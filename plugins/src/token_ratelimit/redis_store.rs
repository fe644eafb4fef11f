//! Buckets in Redis, shared by every gateway replica: reserve and settle are server-side scripts
//! (atomic, timed by the Redis clock), so N replicas enforce one limit, not N times the limit.
//! Keys expire once their bucket would have refilled, so idle callers cost no memory.

use std::time::Duration;

use redis::Script;

use super::bucket::{Admission, Limits};
use crate::redis_link::RedisLink;

/// Refill, then take `min(want, level)` if the bucket is positive. Returns {admitted, reserved,
/// level} as strings (Lua numbers would be truncated to integers on the way out).
const RESERVE: &str = r#"
local max, rate, want, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(b[1]) or max
local ts = tonumber(b[2]) or now
level = math.min(max, level + (now - ts) * rate)
local admitted, reserved = 0, 0
if level > 0 and not (want >= 1 and level < 1) then
  admitted = 1
  reserved = math.min(want, level)
  level = level - reserved
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {tostring(admitted), tostring(reserved), tostring(level)}
"#;

/// Refill, then give back the reservation and charge the real cost.
const SETTLE: &str = r#"
local max, rate, reserved, actual, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(b[1]) or max
local ts = tonumber(b[2]) or now
level = math.min(max, level + (now - ts) * rate + reserved - actual)
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return tostring(level)
"#;

/// The Redis store of one plugin instance.
pub struct RedisBuckets {
    link: RedisLink,
    limits: Limits,
    prefix: String,
    reserve: Script,
    settle: Script,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show the key prefix only.
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// A store at `url` for the instance `plugin`; each call gives up after `timeout`.
    pub fn new(url: &str, plugin: &str, limits: Limits, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            link: RedisLink::new(url, timeout)?,
            limits,
            prefix: format!("tollgate:ratelimit:{plugin}:"),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
        })
    }

    /// Milliseconds after which an untouched bucket is full again (plus a minute), as key TTL.
    fn ttl_ms(&self) -> u64 {
        (self.limits.max / self.limits.rate * 1000.0) as u64 + 60_000
    }

    fn rate_per_ms(&self) -> f64 {
        self.limits.rate / 1000.0
    }

    /// Reserves `want` units for `key`.
    pub async fn reserve(&self, key: &str, want: f64) -> Result<Admission, String> {
        let work = async {
            let mut connection = self.link.connection().await?;
            let reply: Vec<String> = self
                .reserve
                .key(format!("{}{key}", self.prefix))
                .arg(self.limits.max)
                .arg(self.rate_per_ms())
                .arg(want)
                .arg(self.ttl_ms())
                .invoke_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            let number = |i: usize| {
                reply
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            Ok(if number(0) >= 1.0 {
                Admission::Admitted {
                    reserved: number(1),
                    remaining: number(2),
                }
            } else {
                let retry = self.limits.seconds_for(1.0 - number(2)).max(0.001);
                Admission::Refused {
                    retry_after: Duration::from_secs_f64(retry),
                }
            })
        };
        self.link.within(work).await
    }

    /// Settles a reservation for `key` with the real cost.
    pub async fn settle(&self, key: &str, reserved: f64, actual: f64) -> Result<(), String> {
        let work = async {
            let mut connection = self.link.connection().await?;
            let _: String = self
                .settle
                .key(format!("{}{key}", self.prefix))
                .arg(self.limits.max)
                .arg(self.rate_per_ms())
                .arg(reserved)
                .arg(actual)
                .arg(self.ttl_ms())
                .invoke_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        };
        self.link.within(work).await
    }
}

//! Pins in Redis, shared by every replica: one hash per route (`tollgate:pins:<plugin>:<route>`,
//! a field per tool holding the pin as JSON). A first pin is written with `HSETNX`, so the first
//! replica to list a tool decides its pin; the last listing that differed is updated in place.
//! Decisions are taken on memory refreshed from Redis before each list or call is forwarded.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;

use crate::redis_link::RedisLink;

use super::store::Pin;

/// The Redis pins of one plugin instance.
pub struct RedisPins {
    link: RedisLink,
    prefix: String,
}

impl std::fmt::Debug for RedisPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show the key prefix only.
        f.debug_struct("RedisPins")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisPins {
    /// The pins at `url` of the instance `plugin`; each call gives up after `timeout`.
    pub fn new(url: &str, plugin: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            link: RedisLink::new(url, timeout)?,
            prefix: format!("tollgate:pins:{plugin}:"),
        })
    }

    /// Every pin of `route`.
    pub async fn load(&self, route: &str) -> Result<BTreeMap<String, Pin>, String> {
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                let fields: BTreeMap<String, String> = connection
                    .hgetall(format!("{}{route}", self.prefix))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(fields
                    .into_iter()
                    .filter_map(|(tool, json)| Some((tool, serde_json::from_str(&json).ok()?)))
                    .collect())
            })
            .await
    }

    /// Pins `pin` for `tool` unless a pin is there; whether it was written.
    pub async fn put_new(&self, route: &str, tool: &str, pin: &Pin) -> Result<bool, String> {
        let json = serde_json::to_string(pin).map_err(|e| e.to_string())?;
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                connection
                    .hset_nx(format!("{}{route}", self.prefix), tool, json)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Writes `pin` for `tool` (its last differing listing changed, or an operator approved it).
    pub async fn put(&self, route: &str, tool: &str, pin: &Pin) -> Result<(), String> {
        let json = serde_json::to_string(pin).map_err(|e| e.to_string())?;
        self.link
            .within(async {
                let mut connection = self.link.connection().await?;
                let _: i64 = connection
                    .hset(format!("{}{route}", self.prefix), tool, json)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
            .await
    }
}

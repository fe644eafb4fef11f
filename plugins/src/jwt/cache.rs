//! Recently verified tokens. An agent sends the same bearer token with every request for hours,
//! and an RS256 or ES256 signature check costs far more than the rest of the request's work in
//! the gateway; so a token verified once is trusted again — until it expires (the same leeway
//! as verification), the key set it was verified against is replaced, or a minute has passed.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

const SHARDS: usize = 16;
const PER_SHARD: usize = 1024;
/// Longest a verification is reused, whatever the token's own lifetime.
const MAX_AGE: Duration = Duration::from_secs(60);

struct Entry<K> {
    claims: Arc<Map<String, Value>>,
    /// `exp + leeway` in Unix seconds, if the token expires.
    valid_until: Option<u64>,
    /// The key set that verified it (held, so its address cannot be reused by a new set).
    keys: Arc<K>,
    cached_at: Instant,
}

/// Verified tokens by token text (kept in memory only; never logged or printed).
pub struct VerifiedTokens<K> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Box<str>, Entry<K>>>>,
    leeway_secs: u64,
}

impl<K> std::fmt::Debug for VerifiedTokens<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<K> VerifiedTokens<K> {
    /// An empty cache honouring `leeway_secs` past `exp`.
    pub fn new(leeway_secs: u64) -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            leeway_secs,
        }
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<Box<str>, Entry<K>>> {
        // The shard only spreads lock contention (the map inside hashes the whole token with its
        // own keyed hasher): a keyed hash of the token's last 8 bytes, its signature's base64,
        // spreads the tokens an issuer signs as well, and costs far less than hashing a token of
        // a kilobyte or more twice. Keyed, so that no one can send tokens that all land on one
        // shard.
        let tail = token.as_bytes().rchunks(8).next().unwrap_or_default();
        &self.shards[self.hasher.hash_one(tail) as usize % SHARDS]
    }

    /// The claims of `token` if it was verified against the key set `keys` and is still valid.
    pub fn get(&self, token: &str, keys: &Arc<K>) -> Option<Arc<Map<String, Value>>> {
        let mut shard = self.shard(token).lock().ok()?;
        let entry = shard.get(token)?;
        let fresh = Arc::ptr_eq(&entry.keys, keys)
            && entry.cached_at.elapsed() < MAX_AGE
            && entry.valid_until.is_none_or(|until| unix_now() <= until);
        if fresh {
            Some(entry.claims.clone())
        } else {
            shard.remove(token);
            None
        }
    }

    /// Remembers that `token` verified against `keys` with `claims`.
    pub fn insert(&self, token: &str, keys: &Arc<K>, claims: Arc<Map<String, Value>>) {
        let valid_until = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| exp.saturating_add(self.leeway_secs));
        let Ok(mut shard) = self.shard(token).lock() else {
            return;
        };
        if shard.len() >= PER_SHARD {
            let now = unix_now();
            shard.retain(|_, e| {
                e.cached_at.elapsed() < MAX_AGE && e.valid_until.is_none_or(|u| now <= u)
            });
            if shard.len() >= PER_SHARD {
                shard.clear();
            }
        }
        shard.insert(
            token.into(),
            Entry {
                claims,
                valid_until,
                keys: keys.clone(),
                cached_at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: Option<u64>) -> Arc<Map<String, Value>> {
        let mut map = Map::new();
        map.insert("sub".into(), "alice".into());
        if let Some(exp) = exp {
            map.insert("exp".into(), exp.into());
        }
        Arc::new(map)
    }

    #[test]
    fn hit_only_for_the_same_key_set_and_before_expiry() {
        let (one, two) = (Arc::new(1), Arc::new(2));
        let cache = VerifiedTokens::new(0);
        cache.insert("t1", &one, claims(Some(unix_now() + 300)));
        assert!(cache.get("t1", &one).is_some());
        assert!(cache.get("t1", &two).is_none(), "another key set");
        assert!(
            cache.get("t1", &one).is_none(),
            "a miss evicts the stale entry"
        );
        cache.insert("t2", &one, claims(Some(unix_now() - 5)));
        assert!(cache.get("t2", &one).is_none(), "expired");
        let lenient = VerifiedTokens::new(60);
        lenient.insert("t3", &one, claims(Some(unix_now() - 5)));
        assert!(lenient.get("t3", &one).is_some(), "within the leeway");
        assert!(cache.get("unknown", &one).is_none());
    }

    #[test]
    fn full_shards_make_room() {
        let keys = Arc::new(());
        let cache = VerifiedTokens::new(0);
        for i in 0..(SHARDS * PER_SHARD * 2) {
            cache.insert(&format!("token-{i}"), &keys, claims(None));
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * PER_SHARD);
        let last = format!("token-{}", SHARDS * PER_SHARD * 2 - 1);
        assert!(cache.get(&last, &keys).is_some());
    }

    #[test]
    fn tokens_spread_over_the_shards_by_their_signature() {
        let keys = Arc::new(());
        let cache = VerifiedTokens::new(0);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut below = crate::test_rng::xorshift(7);
        for _ in 0..256 {
            let signature: String = (0..43)
                .map(|_| char::from(alphabet[below(alphabet.len() as u64) as usize]))
                .collect();
            cache.insert(
                &format!("eyJhbGciOi.eyJzdWIi.{signature}"),
                &keys,
                claims(None),
            );
        }
        let sizes: Vec<usize> = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().len())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 256);
        assert!(sizes.iter().all(|&n| (4..=40).contains(&n)), "{sizes:?}");
    }
}

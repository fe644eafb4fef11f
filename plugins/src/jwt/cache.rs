//! Recently verified tokens. An agent sends the same bearer token with every request for hours,
//! and an RS256 or ES256 signature check costs far more than the rest of the request's work in
//! the gateway; so a token verified once is trusted again — until it expires (the same leeway
//! as verification), the key set it was verified against is replaced, or a minute has passed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;
use serde_json::{Map, Value};

/// Most tokens remembered at once.
const CAPACITY: u64 = 16 * 1024;
/// Longest a verification is reused, whatever the token's own lifetime.
const MAX_AGE: Duration = Duration::from_secs(60);

struct Entry<K> {
    claims: Arc<Map<String, Value>>,
    /// `exp + leeway` in Unix seconds, if the token expires.
    valid_until: Option<u64>,
    /// The key set that verified it (held, so its address cannot be reused by a new set).
    keys: Arc<K>,
}

/// An entry lives until the token expires or `MAX_AGE` has passed, whichever comes first.
struct UntilExpiry;

impl UntilExpiry {
    fn lifetime<K>(entry: &Entry<K>) -> Duration {
        // Whole seconds: `get` checks `exp` to the second, this only bounds memory.
        entry.valid_until.map_or(MAX_AGE, |until| {
            let left = until.saturating_add(1).saturating_sub(unix_now());
            MAX_AGE.min(Duration::from_secs(left))
        })
    }
}

impl<K> Expiry<Box<str>, Arc<Entry<K>>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &Box<str>,
        entry: &Arc<Entry<K>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Self::lifetime(entry))
    }

    fn expire_after_update(
        &self,
        _token: &Box<str>,
        entry: &Arc<Entry<K>>,
        _updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        // A token verified again (e.g. against a new key set) starts afresh.
        Some(Self::lifetime(entry))
    }
}

/// Verified tokens by token text (kept in memory only; never logged or printed).
pub struct VerifiedTokens<K> {
    // Keyed by the whole token and hashed with a per-process random key (moka's default
    // hasher), so that no one can send tokens that collide. Least recently used tokens make
    // room: a newly verified token is always remembered, as an agent's next request needs it.
    tokens: Cache<Box<str>, Arc<Entry<K>>>,
    leeway_secs: u64,
}

// Hand-written: the cache's own `Debug` lists its entries, tokens included.
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

impl<K: Send + Sync + 'static> VerifiedTokens<K> {
    /// An empty cache honouring `leeway_secs` past `exp`.
    pub fn new(leeway_secs: u64) -> Self {
        Self::with_capacity(leeway_secs, CAPACITY)
    }

    fn with_capacity(leeway_secs: u64, capacity: u64) -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(UntilExpiry)
                .build(),
            leeway_secs,
        }
    }

    /// The claims of `token` if it was verified against the key set `keys` and is still valid.
    pub fn get(&self, token: &str, keys: &Arc<K>) -> Option<Arc<Map<String, Value>>> {
        let entry = self.tokens.get(token)?;
        // The expiry policy evicts by whole seconds; `exp` itself is checked here.
        let fresh = Arc::ptr_eq(&entry.keys, keys)
            && entry.valid_until.is_none_or(|until| unix_now() <= until);
        if fresh {
            Some(entry.claims.clone())
        } else {
            self.tokens.invalidate(token);
            None
        }
    }

    /// Remembers that `token` verified against `keys` with `claims`.
    pub fn insert(&self, token: &str, keys: &Arc<K>, claims: Arc<Map<String, Value>>) {
        let valid_until = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| exp.saturating_add(self.leeway_secs));
        self.tokens.insert(
            token.into(),
            Arc::new(Entry {
                claims,
                valid_until,
                keys: keys.clone(),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn lifetime_is_the_token_s_or_a_minute() {
        let keys = Arc::new(());
        let entry = |valid_until| Entry {
            claims: claims(None),
            valid_until,
            keys: keys.clone(),
        };
        assert_eq!(UntilExpiry::lifetime(&entry(None)), MAX_AGE);
        assert_eq!(
            UntilExpiry::lifetime(&entry(Some(unix_now() + 3600))),
            MAX_AGE
        );
        let soon = UntilExpiry::lifetime(&entry(Some(unix_now() + 10)));
        assert!((Duration::from_secs(10)..=Duration::from_secs(11)).contains(&soon));
        assert_eq!(
            UntilExpiry::lifetime(&entry(Some(unix_now() - 5))),
            Duration::ZERO
        );
    }

    #[test]
    fn a_full_cache_makes_room_for_the_newest() {
        let keys = Arc::new(());
        let cache = VerifiedTokens::with_capacity(0, 64);
        for i in 0..256 {
            cache.insert(&format!("token-{i}"), &keys, claims(None));
        }
        cache.tokens.run_pending_tasks();
        assert!(cache.tokens.entry_count() <= 64);
        assert!(cache.get("token-255", &keys).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn every_token_finds_its_own_claims(
            signatures in prop::collection::hash_set("[A-Za-z0-9_-]{43}", 1..64),
        ) {
            let keys = Arc::new(());
            let cache = VerifiedTokens::with_capacity(0, 128);
            let tokens: Vec<String> = signatures
                .iter()
                .map(|s| format!("eyJhbGciOi.eyJzdWIi.{s}"))
                .collect();
            for token in &tokens {
                let mut map = Map::new();
                map.insert("token".into(), token.as_str().into());
                cache.insert(token, &keys, Arc::new(map));
            }
            for token in &tokens {
                let claims = cache.get(token, &keys);
                prop_assert_eq!(
                    claims.as_ref().and_then(|c| c.get("token")).and_then(Value::as_str),
                    Some(token.as_str())
                );
            }
        }
    }
}

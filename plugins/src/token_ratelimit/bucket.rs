//! Token buckets per key, in process: sharded maps (no lock shared by all cores), continuous
//! refill, and bounded memory (idle keys, whose buckets have refilled, are evicted).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 32;
/// Keys per shard before idle ones are swept.
const SWEEP_AT: usize = 4096;

/// Bucket parameters.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Capacity.
    pub max: f64,
    /// Refill per second.
    pub rate: f64,
}

impl Limits {
    /// Seconds until `deficit` more units are refilled.
    pub fn seconds_for(&self, deficit: f64) -> f64 {
        if deficit <= 0.0 {
            0.0
        } else {
            deficit / self.rate
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, limits: Limits, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * limits.rate).min(limits.max);
        self.updated = now;
    }
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Admitted: `reserved` units taken, `remaining` left.
    Admitted {
        /// Units taken now (settled later).
        reserved: f64,
        /// Level after the reservation.
        remaining: f64,
    },
    /// Refused: nothing left; retry after this long.
    Refused {
        /// Time until the bucket is positive again.
        retry_after: Duration,
    },
}

/// The in-process store of one plugin instance.
#[derive(Debug)]
pub struct LocalBuckets {
    limits: Limits,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
    hasher: RandomState,
}

impl LocalBuckets {
    /// Buckets with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn with_bucket<T>(&self, key: &str, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let now = Instant::now();
        let mut map = match shard.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            let limits = self.limits;
            map.retain(|_, b| {
                b.refill(limits, now);
                b.level < limits.max
            });
        }
        let bucket = map.entry(key.to_string()).or_insert(Bucket {
            level: self.limits.max,
            updated: now,
        });
        bucket.refill(self.limits, now);
        f(bucket)
    }

    /// Admits when the bucket is positive and takes `want` units, at most what is left.
    pub fn reserve(&self, key: &str, want: f64) -> Admission {
        let limits = self.limits;
        self.with_bucket(key, |bucket| {
            if bucket.level <= 0.0 || (want >= 1.0 && bucket.level < 1.0) {
                let retry = limits.seconds_for(1.0 - bucket.level);
                return Admission::Refused {
                    retry_after: Duration::from_secs_f64(retry.max(0.001)),
                };
            }
            let reserved = want.min(bucket.level);
            bucket.level -= reserved;
            Admission::Admitted {
                reserved,
                remaining: bucket.level,
            }
        })
    }

    /// Settles a reservation with the real cost: over-use is charged (the level may go below
    /// zero), an unused reservation is refunded. Returns the new level.
    pub fn settle(&self, key: &str, reserved: f64, actual: f64) -> f64 {
        let limits = self.limits;
        self.with_bucket(key, |bucket| {
            bucket.level = (bucket.level + reserved - actual).min(limits.max);
            bucket.level
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_settle_and_refuse() {
        let buckets = LocalBuckets::new(Limits {
            max: 100.0,
            rate: 1.0,
        });
        let Admission::Admitted {
            reserved,
            remaining,
        } = buckets.reserve("u", 60.0)
        else {
            panic!()
        };
        assert_eq!((reserved, remaining.round()), (60.0, 40.0));
        // Real use was 90: 30 more are charged.
        assert_eq!(buckets.settle("u", reserved, 90.0).round(), 10.0);
        let Admission::Admitted { reserved, .. } = buckets.reserve("u", 60.0) else {
            panic!()
        };
        assert!(reserved <= 10.1, "bounded by the bucket");
        buckets.settle("u", reserved, 40.0);
        assert!(
            matches!(buckets.reserve("u", 1.0), Admission::Refused { .. }),
            "over-use leaves the bucket negative"
        );
        assert!(
            matches!(buckets.reserve("other", 1.0), Admission::Admitted { .. }),
            "keys are independent"
        );
    }
}

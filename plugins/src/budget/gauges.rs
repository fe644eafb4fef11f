//! What a replica last saw of each key's spending, reported on `/metrics` as
//! `tollgate_budget_spent_usd` and `tollgate_budget_remaining_usd` (labels `budget`, `key`).
//! With Redis the figures are those of this replica's last request of the key (other replicas'
//! spending shows from the next one); the admin API reads the store itself. At most
//! [`MAX_KEYS`] keys are kept, the least recently seen leaving first, so labels stay bounded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tollgate_plugin_api::Gauge;

/// Keys reported at most per budget.
pub const MAX_KEYS: usize = 100;

#[derive(Debug)]
struct Seen {
    window: String,
    spent: u64,
    limit: u64,
    at: Instant,
}

/// Spending seen by this replica, per key.
#[derive(Debug, Default)]
pub struct SeenSpend(Mutex<HashMap<String, Seen>>);

impl SeenSpend {
    /// `key` has spent `spent` (reservations included) of `limit` in `window`.
    pub fn saw(&self, window: &str, key: &str, spent: u64, limit: u64) {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.contains_key(key) && seen.len() >= MAX_KEYS {
            let oldest = seen
                .iter()
                .min_by_key(|(_, s)| s.at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                seen.remove(&oldest);
            }
        }
        seen.insert(
            key.to_string(),
            Seen {
                window: window.to_string(),
                spent,
                limit,
                at: Instant::now(),
            },
        );
    }

    /// A reservation of `key` in `window` was settled with `delta`.
    pub fn settled(&self, window: &str, key: &str, delta: i64) {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = seen.get_mut(key).filter(|s| s.window == window) {
            entry.spent = entry.spent.saturating_add_signed(delta);
        }
    }

    /// The gauges of budget `budget` in the current `window` (keys of past periods are left
    /// out: their budget started again).
    pub fn gauges(&self, budget: &str, window: &str) -> Vec<Gauge> {
        let seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let usd = |micro: u64| micro as f64 / 1_000_000.0;
        seen.iter()
            .filter(|(_, s)| s.window == window)
            .flat_map(|(key, s)| {
                let labels = vec![("budget", budget.to_string()), ("key", key.clone())];
                [
                    Gauge {
                        name: "budget_spent_usd",
                        help: "Spending of a budget key in the current period (USD, as this replica last saw it)",
                        labels: labels.clone(),
                        value: usd(s.spent),
                    },
                    Gauge {
                        name: "budget_remaining_usd",
                        help: "What a budget key may still spend in the current period (USD)",
                        labels,
                        value: usd(s.limit.saturating_sub(s.spent)),
                    },
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_past_periods_left_out() {
        let seen = SeenSpend::default();
        for i in 0..(MAX_KEYS + 10) {
            seen.saw("2026-12", &format!("k{i}"), 1, 10);
        }
        assert_eq!(seen.gauges("b", "2026-12").len(), MAX_KEYS * 2);
        seen.saw("2026-12", "eng", 3_000_000, 5_000_000);
        seen.settled("2026-12", "eng", -1_000_000);
        let gauges = seen.gauges("b", "2026-12");
        let eng: Vec<f64> = gauges
            .iter()
            .filter(|g| g.labels[1].1 == "eng")
            .map(|g| g.value)
            .collect();
        assert_eq!(eng, [2.0, 3.0]);
        assert!(seen.gauges("b", "2027-01").is_empty());
    }
}

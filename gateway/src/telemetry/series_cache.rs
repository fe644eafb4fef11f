//! Labelled series a route keeps once it has used them, found again without a lock: looking a
//! labelled series up takes the metric's lock (one lock word for every worker thread) and hashes
//! its labels, and an exchange needs one to three of them (a model's tokens and time to first
//! token; an MCP call's method, tool and outcome).

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter};

/// Distinct models a route keeps series for; an exchange with another model looks its series
/// up as before.
pub const CACHED_MODELS: usize = 16;

/// Distinct (method, tool, outcome) a route keeps the MCP request counter of.
pub const CACHED_CALLS: usize = 64;

/// One model's series on one route (a clone is the same series: metric handles are shared).
#[derive(Debug, Clone)]
pub struct ModelSeries {
    /// `tokens_total` with direction `input`.
    pub input_tokens: IntCounter,
    /// `tokens_total` with direction `output`.
    pub output_tokens: IntCounter,
    /// `time_to_first_token_seconds`.
    pub time_to_first_token: Histogram,
}

/// The key of an MCP request counter: method label, tool name as the request gave it, outcome,
/// and the federated route's server that answered.
pub type CallKey = (
    Box<str>,
    Box<str>,
    &'static str,
    Option<std::sync::Arc<str>>,
);

/// Series by key, at most `cap` of them.
#[derive(Debug)]
pub struct SeriesCache<K, S> {
    /// Read without a lock (`arc_swap`'s loads touch no memory another thread writes); replaced
    /// whole when an entry is added, which happens at most `cap` times.
    seen: ArcSwap<Vec<(K, S)>>,
    cap: usize,
}

impl<K: Clone, S: Clone> SeriesCache<K, S> {
    /// An empty cache keeping at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Self {
            seen: ArcSwap::from_pointee(Vec::new()),
            cap,
        }
    }

    /// Calls `record` with the series whose key `is` accepts. Series not kept yet come from
    /// `make`, with the key to keep them under, if they may be kept: only series of label values
    /// kept as themselves (not `other`, which an unbounded number of names share).
    pub fn with(
        &self,
        is: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (S, Option<K>),
        record: impl FnOnce(&S),
    ) {
        if let Some((_, series)) = self.seen.load().iter().find(|(key, _)| is(key)) {
            record(series);
            return;
        }
        let (series, key) = make();
        record(&series);
        let Some(key) = key else {
            return;
        };
        self.seen.rcu(|seen| {
            let mut grown = Vec::clone(seen);
            if grown.len() < self.cap && !grown.iter().any(|(kept, _)| is(kept)) {
                grown.push((key.clone(), series.clone()));
            }
            grown
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounter {
        IntCounter::new("c", "c").unwrap()
    }

    #[test]
    fn a_kept_series_is_made_once_and_keeps_counting() {
        let cache = SeriesCache::<Box<str>, IntCounter>::new(4);
        let mut made = 0;
        for _ in 0..3 {
            cache.with(
                |key| &**key == "claude",
                || {
                    made += 1;
                    (counter(), Some("claude".into()))
                },
                |c| c.inc_by(2),
            );
        }
        assert_eq!(made, 1);
        cache.with(
            |key| &**key == "claude",
            || unreachable!(),
            |c| assert_eq!(c.get(), 6),
        );
    }

    #[test]
    fn unkept_series_and_series_past_the_cap_are_made_each_time() {
        let cache = SeriesCache::<Box<str>, IntCounter>::new(4);
        let mut made = 0;
        for _ in 0..2 {
            cache.with(
                |key| &**key == "junk",
                || (made += 1, (counter(), None)).1,
                |_| {},
            );
        }
        assert_eq!(made, 2);
        for i in 0..5 {
            let name = format!("m{i}");
            cache.with(
                |key| **key == *name,
                || (counter(), Some(name.clone().into())),
                |_| {},
            );
        }
        assert_eq!(cache.seen.load().len(), 4);
        let mut made = 0;
        for _ in 0..2 {
            cache.with(
                |key| &**key == "m4",
                || (made += 1, (counter(), Some("m4".into()))).1,
                |_| {},
            );
        }
        assert_eq!(made, 2);
    }
}

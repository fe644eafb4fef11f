//! The token and time-to-first-token series of the models answering on one route, found
//! without a lock once the route has seen the model: looking a labelled series up takes the
//! metric's lock (one lock word for every worker thread) and hashes its labels, and an LLM
//! exchange needs three of them.

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter};

/// Distinct models a route keeps series for; an exchange with another model looks its series
/// up as before.
pub const CACHED_MODELS: usize = 16;

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

/// The series of the models a route has seen, by the model name the exchange reported.
#[derive(Debug, Default)]
pub struct ModelSeriesCache {
    /// Read without a lock (`arc_swap`'s loads touch no memory another thread writes); replaced
    /// whole when a model is added, which happens at most [`CACHED_MODELS`] times.
    seen: ArcSwap<Vec<(Box<str>, ModelSeries)>>,
}

impl ModelSeriesCache {
    /// Calls `record` with the series of `model`. A model not seen yet gets its series from
    /// `make`, which also says whether they may be kept: only for a model kept as its own label
    /// (not `other`, which an unbounded number of names share).
    pub fn with(
        &self,
        model: &str,
        make: impl FnOnce() -> (ModelSeries, bool),
        record: impl FnOnce(&ModelSeries),
    ) {
        if let Some((_, series)) = self.seen.load().iter().find(|(m, _)| &**m == model) {
            record(series);
            return;
        }
        let (series, keep) = make();
        record(&series);
        if !keep {
            return;
        }
        self.seen.rcu(|seen| {
            let mut grown = Vec::clone(seen);
            if grown.len() < CACHED_MODELS && !grown.iter().any(|(m, _)| &**m == model) {
                grown.push((model.into(), series.clone()));
            }
            grown
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::HistogramOpts;

    fn series() -> ModelSeries {
        ModelSeries {
            input_tokens: IntCounter::new("i", "i").unwrap(),
            output_tokens: IntCounter::new("o", "o").unwrap(),
            time_to_first_token: Histogram::with_opts(HistogramOpts::new("t", "t")).unwrap(),
        }
    }

    #[test]
    fn a_kept_model_is_made_once_and_its_series_keep_counting() {
        let cache = ModelSeriesCache::default();
        let mut made = 0;
        for _ in 0..3 {
            cache.with(
                "claude",
                || {
                    made += 1;
                    (series(), true)
                },
                |s| s.output_tokens.inc_by(2),
            );
        }
        assert_eq!(made, 1);
        cache.with(
            "claude",
            || unreachable!(),
            |s| assert_eq!(s.output_tokens.get(), 6),
        );
    }

    #[test]
    fn unkept_models_and_models_past_the_bound_are_made_each_time() {
        let cache = ModelSeriesCache::default();
        let mut made = 0;
        for _ in 0..2 {
            cache.with("junk", || (made += 1, (series(), false)).1, |_| {});
        }
        assert_eq!(made, 2);
        for i in 0..CACHED_MODELS + 1 {
            cache.with(&format!("m{i}"), || (series(), true), |_| {});
        }
        assert_eq!(cache.seen.load().len(), CACHED_MODELS);
        let mut made = 0;
        for _ in 0..2 {
            let last = format!("m{CACHED_MODELS}");
            cache.with(&last, || (made += 1, (series(), true)).1, |_| {});
        }
        assert_eq!(made, 2);
    }
}

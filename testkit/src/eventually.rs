//! Polling an asynchronous condition until it holds, or failing the test at a deadline with what
//! was last seen: the gateway records metrics, audit lines and reloads after the answer, so tests
//! wait for them rather than sleep a fixed time.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Pause between two polls.
const EVERY: Duration = Duration::from_millis(50);

/// What one poll of a condition answers.
pub trait Probe {
    /// What the condition yields once it holds.
    type Value;

    /// `Ok` once the condition holds; otherwise what this poll saw, when there is something to
    /// show in the failure message.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Probe for bool {
    type Value = ();

    fn outcome(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Probe for Option<T> {
    type Value = T;

    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Probe for Result<T, E> {
    type Value = T;

    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `probe` until it holds (`true`, `Some`, `Ok`) and returns its value. Once `within` has
/// passed, the test fails naming `what` was awaited and, for an `Err`, what the last poll saw.
/// The probe runs at least once, however short `within` is.
pub async fn eventually<P: Probe>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> P,
) -> P::Value {
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().await.outcome() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            match seen {
                Some(seen) => panic!("not within {within:?}: {what}; last seen:\n{seen}"),
                None => panic!("not within {within:?}: {what}"),
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut polls = 0;
        let value = eventually("the third poll", Duration::from_secs(5), async || {
            polls += 1;
            (polls == 3).then_some(polls)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "not within 100ms: a miracle; last seen:\nnothing yet")]
    async fn fails_with_what_was_awaited_and_last_seen() {
        eventually("a miracle", Duration::from_millis(100), async || {
            Err::<(), _>("nothing yet")
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "not within 0ns: a condition that never holds")]
    async fn a_false_condition_fails_at_the_deadline() {
        eventually("a condition that never holds", Duration::ZERO, async || {
            false
        })
        .await;
    }
}

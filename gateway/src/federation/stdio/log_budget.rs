//! How many lines of a process's output are logged: a burst, then a steady rate; what is over
//! budget is counted and reported as a number.

use std::time::{Duration, Instant};

/// Lines logged per window.
const LINES_PER_WINDOW: u32 = 50;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// One stream's logging budget.
#[derive(Debug)]
pub(super) struct LogBudget {
    window_start: Instant,
    used: u32,
    dropped: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            window_start: Instant::now(),
            used: 0,
            dropped: 0,
        }
    }
}

impl LogBudget {
    /// Whether one more line may be logged now (if not, it is counted as dropped).
    pub(super) fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.used = 0;
        }
        if self.used < LINES_PER_WINDOW {
            self.used += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// The lines dropped since last asked, once a new window has begun (so that the count is
    /// logged once per window, not once per line).
    pub(super) fn take_dropped(&mut self) -> Option<u64> {
        let due = self.dropped > 0 && self.window_start.elapsed() >= WINDOW;
        due.then(|| std::mem::take(&mut self.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_lines_are_counted_until_the_next_window() {
        let mut budget = LogBudget::default();
        let start = budget.window_start;
        let allowed = (0..80).filter(|_| budget.allow_at(start)).count();
        assert_eq!(allowed, LINES_PER_WINDOW as usize);
        assert_eq!(budget.dropped, 30);
        assert!(budget.allow_at(start + WINDOW));
    }
}

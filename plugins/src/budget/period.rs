//! Budget periods: calendar days, weeks (ISO, from Monday) and months, in UTC.

use serde::Deserialize;
use time::{Date, Duration, Month, OffsetDateTime, Time};

/// How long a budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A calendar day (UTC).
    Day,
    /// An ISO week, Monday to Sunday (UTC).
    Week,
    /// A calendar month (UTC).
    Month,
}

/// The period a moment falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Its name: `2026-12-04`, `2026-W49`, `2026-12`.
    pub id: String,
    /// When the next one starts (Unix seconds).
    pub resets_at: u64,
}

impl Period {
    /// Its name in messages: `today`, `this week`, `this month`.
    pub fn this(self) -> &'static str {
        match self {
            Period::Day => "today",
            Period::Week => "this week",
            Period::Month => "this month",
        }
    }

    /// The window `now` (Unix seconds) falls in.
    pub fn window(self, now: u64) -> Window {
        let now = i64::try_from(now)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let date = now.date();
        let (id, next) = match self {
            Period::Day => (format!("{}", date), date.next_day().unwrap_or(date)),
            Period::Week => {
                let (year, week, _) = date.to_iso_week_date();
                let monday =
                    date - Duration::days(i64::from(date.weekday().number_days_from_monday()));
                (format!("{year}-W{week:02}"), monday + Duration::days(7))
            }
            Period::Month => {
                let (year, month) = (date.year(), date.month());
                let (next_year, next_month) = match month {
                    Month::December => (year + 1, Month::January),
                    other => (year, other.next()),
                };
                (
                    format!("{year}-{:02}", u8::from(month)),
                    Date::from_calendar_date(next_year, next_month, 1).unwrap_or(date),
                )
            }
        };
        let resets_at = next.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
        Window {
            id,
            resets_at: u64::try_from(resets_at).unwrap_or(0),
        }
    }
}

/// `at` (Unix seconds) as RFC 3339 (`2027-01-01T00:00:00Z`).
pub fn rfc3339(at: u64) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-31T23:59:59Z, a Thursday.
    const NEW_YEARS_EVE: u64 = 1_798_761_599;

    #[test]
    fn windows_are_calendar_periods_in_utc() {
        let day = Period::Day.window(NEW_YEARS_EVE);
        assert_eq!(day.id, "2026-12-31");
        assert_eq!(rfc3339(day.resets_at), "2027-01-01T00:00:00Z");
        let month = Period::Month.window(NEW_YEARS_EVE);
        assert_eq!(month.id, "2026-12");
        assert_eq!(month.resets_at, day.resets_at);
        let week = Period::Week.window(NEW_YEARS_EVE);
        assert_eq!(week.id, "2026-W53");
        assert_eq!(
            rfc3339(week.resets_at),
            "2027-01-04T00:00:00Z",
            "the next Monday"
        );
        assert_eq!(Period::Month.window(NEW_YEARS_EVE + 1).id, "2027-01");
        assert_eq!(Period::Month.window(1_800_000_000).id, "2027-01");
    }
}

//! UTC calendar periods for quotas (API.md §4.2): days and months, as Unix seconds.

use time::{Date, Month, OffsetDateTime, Time};

const DAY: i64 = 86_400;

fn date_of(unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH).date()
}

fn midnight(date: Date) -> i64 {
    date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

/// 00:00:00Z of the day containing `unix`.
pub fn day_start(unix: i64) -> i64 {
    unix.div_euclid(DAY) * DAY
}

pub fn next_day_start(unix: i64) -> i64 {
    day_start(unix) + DAY
}

/// 00:00:00Z on the 1st of the month containing `unix`.
pub fn month_start(unix: i64) -> i64 {
    let date = date_of(unix);
    Date::from_calendar_date(date.year(), date.month(), 1).map(midnight).unwrap_or(0)
}

/// 00:00:00Z on the 1st of the following month.
pub fn next_month_start(unix: i64) -> i64 {
    let date = date_of(unix);
    let (year, month) = match date.month() {
        Month::December => (date.year() + 1, Month::January),
        other => (date.year(), other.next()),
    };
    Date::from_calendar_date(year, month, 1).map(midnight).unwrap_or(unix)
}

/// `YYYY-MM-DD` of a day start.
pub fn date_label(day_start: i64) -> String {
    let d = date_of(day_start);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_calendar_months() {
        let t = 1_773_411_720; // 2026-03-13T14:22:00Z
        assert_eq!(crate::clock::rfc3339(day_start(t)), "2026-03-13T00:00:00Z");
        assert_eq!(crate::clock::rfc3339(next_day_start(t)), "2026-03-14T00:00:00Z");
        assert_eq!(crate::clock::rfc3339(month_start(t)), "2026-03-01T00:00:00Z");
        assert_eq!(crate::clock::rfc3339(next_month_start(t)), "2026-04-01T00:00:00Z");
        let december = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(crate::clock::rfc3339(next_month_start(december)), "2027-01-01T00:00:00Z");
        assert_eq!(month_start(december), december);
        assert_eq!(date_label(day_start(t)), "2026-03-13");
    }
}

//! Wall-clock time in the two shapes the API uses: Unix seconds in storage, RFC 3339 on the
//! wire (API.md §0.4).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch, UTC.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `2026-03-13T14:22:00Z`: whole seconds, `Z` suffix. Out-of-range values render as the epoch
/// rather than failing a response.
pub fn rfc3339(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// RFC 3339 with nanoseconds and `+00:00`, as `/health/detailed` reports its timestamp.
pub fn rfc3339_precise_now() -> String {
    let now = OffsetDateTime::now_utc();
    let base = now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]+00:00"
    ));
    base.unwrap_or_else(|_| rfc3339(now.unix_timestamp()))
}

/// `2026-03-13T14:22:00.123Z`: milliseconds, for records that keep them (the request log).
pub fn rfc3339_millis(unix_millis: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_else(|_| rfc3339(unix_millis.div_euclid(1000)))
}

/// Unix milliseconds of an RFC 3339 time (`2026-03-13T14:22:00Z`) or of Unix seconds (`1773411720`).
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

//! Wall-clock time and the device's local calendar day.

use chrono::{Local, Offset, TimeZone, Utc};

/// UTC milliseconds now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The device's current offset from UTC, in minutes.
pub fn local_offset_min() -> i32 {
    Local::now().offset().fix().local_minus_utc() / 60
}

/// The calendar day (YYYY-MM-DD) at UTC milliseconds `at` seen at `offset_min` from UTC.
pub fn local_date(at: i64, offset_min: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap_or_else(|| Utc.fix());
    match offset.timestamp_millis_opt(at).single() {
        Some(time) => time.format("%Y-%m-%d").to_string(),
        None => String::from("1970-01-01"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_date_follows_the_offset() {
        // 2026-03-01 23:30 in UTC-05:00 is 2026-03-02 04:30 UTC.
        let at = Utc
            .with_ymd_and_hms(2026, 3, 2, 4, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(local_date(at, -300), "2026-03-01");
        assert_eq!(local_date(at, 0), "2026-03-02");
        assert_eq!(local_date(at, 60), "2026-03-02");
    }
}

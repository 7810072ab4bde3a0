//! Store-local dates and times for receipts, from UTC milliseconds and a fixed
//! offset.
//!
//! Caja keeps every timestamp in UTC milliseconds; a receipt shows the store's
//! local time. The default store zone, `America/Santo_Domingo`, is UTC−4 all year
//! (no daylight saving), so a fixed [`UtcOffset`] passed in by the caller is enough
//! and no time-zone database is needed. A store in a zone with daylight saving
//! would pass the offset in force at the sale's instant.
//!
//! **Architecture invariant: pure integer calendar arithmetic** (Howard Hinnant's
//! `civil_from_days`), no clock read, no floats.

use std::fmt;

/// A fixed offset from UTC, in minutes (−240 for Santo Domingo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtcOffset {
    minutes: i32,
}

/// The largest offset accepted, ±18 h (as ISO 8601 and chrono allow).
const MAX_OFFSET_MINUTES: i32 = 18 * 60;

impl UtcOffset {
    /// `America/Santo_Domingo`: UTC−4, no daylight saving.
    pub const SANTO_DOMINGO: UtcOffset = UtcOffset { minutes: -240 };
    /// UTC itself.
    pub const UTC: UtcOffset = UtcOffset { minutes: 0 };

    /// An offset of `minutes` east of UTC (negative west); `None` beyond ±18 h.
    pub const fn from_minutes(minutes: i32) -> Option<UtcOffset> {
        if minutes.abs() > MAX_OFFSET_MINUTES {
            None
        } else {
            Some(UtcOffset { minutes })
        }
    }

    /// Minutes east of UTC.
    pub const fn minutes(self) -> i32 {
        self.minutes
    }
}

impl Default for UtcOffset {
    /// The default store zone, Santo Domingo.
    fn default() -> Self {
        UtcOffset::SANTO_DOMINGO
    }
}

/// A calendar date in the store's zone, printed `dd/mm/yyyy` (the Dominican order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDate {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
}

impl LocalDate {
    /// The date, if it exists in the calendar.
    pub fn new(year: i64, month: u8, day: u8) -> Option<LocalDate> {
        let ok = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        ok.then_some(LocalDate { year, month, day })
    }

    /// The local date of a UTC instant.
    pub fn from_utc_ms(utc_ms: i64, offset: UtcOffset) -> LocalDate {
        LocalDateTime::from_utc_ms(utc_ms, offset).date()
    }

    /// The date written the ISO way, `yyyy-mm-dd`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for LocalDate {
    /// `31/12/2026`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}/{:04}", self.day, self.month, self.year)
    }
}

/// A date and time in the store's zone, to the second, printed `dd/mm/yyyy hh:mm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDateTime {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
}

const MS_PER_DAY: i64 = 86_400_000;

impl LocalDateTime {
    /// The local date and time of a UTC instant (milliseconds since the Unix epoch).
    /// Total for every `i64`: the arithmetic is done in `i128`.
    pub fn from_utc_ms(utc_ms: i64, offset: UtcOffset) -> LocalDateTime {
        let local_ms = i128::from(utc_ms) + i128::from(offset.minutes) * 60_000;
        let days = local_ms.div_euclid(i128::from(MS_PER_DAY));
        let ms_of_day = local_ms.rem_euclid(i128::from(MS_PER_DAY));
        let secs = ms_of_day / 1000;
        let (year, month, day) = civil_from_days(days);
        LocalDateTime {
            year,
            month,
            day,
            hour: small(secs / 3600),
            minute: small(secs / 60 % 60),
            second: small(secs % 60),
        }
    }

    /// The date part.
    pub fn date(&self) -> LocalDate {
        LocalDate {
            year: self.year,
            month: self.month,
            day: self.day,
        }
    }
}

impl fmt::Display for LocalDateTime {
    /// `23/11/2026 07:30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:02}:{:02}", self.date(), self.hour, self.minute)
    }
}

impl LocalDate {
    /// Parses `yyyy-mm-dd` (the form head office types and reports use).
    pub fn parse_iso(s: &str) -> Option<LocalDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let year = num(0..4)?;
        let month = u8::try_from(num(5..7)?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        LocalDate::new(year, month, day)
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// The first millisecond (UTC) of this date in a zone at `offset`.
    pub fn start_utc_ms(&self, offset: UtcOffset) -> i64 {
        self.days_since_epoch()
            .saturating_mul(MS_PER_DAY)
            .saturating_sub(i64::from(offset.minutes()) * 60_000)
    }

    /// The last millisecond (UTC) of this date in a zone at `offset`: a series
    /// "valid until" a date is usable through the end of that local day.
    pub fn end_utc_ms(&self, offset: UtcOffset) -> i64 {
        self.start_utc_ms(offset)
            .saturating_add(MS_PER_DAY)
            .saturating_sub(1)
    }

    /// The first day of the next month.
    pub fn first_of_next_month(&self) -> LocalDate {
        if self.month == 12 {
            LocalDate {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        } else {
            LocalDate {
                year: self.year,
                month: self.month + 1,
                day: 1,
            }
        }
    }
}

/// The fixed UTC offset of a store's IANA time zone, for the zones Caja knows
/// (those without daylight saving; DESIGN's default is
/// `America/Santo_Domingo`). `None` for any other name: a store in a zone with
/// daylight saving needs a time-zone database, which Caja does not carry.
pub fn zone_offset(name: &str) -> Option<UtcOffset> {
    let minutes = match name {
        "America/Santo_Domingo"
        | "America/Puerto_Rico"
        | "America/Caracas"
        | "America/La_Paz"
        | "America/Manaus" => -240,
        "America/Bogota" | "America/Lima" | "America/Panama" | "America/Cancun" => -300,
        "America/Guatemala"
        | "America/Costa_Rica"
        | "America/El_Salvador"
        | "America/Tegucigalpa"
        | "America/Managua" => -360,
        "UTC" | "Etc/UTC" => 0,
        _ => return None,
    };
    UtcOffset::from_minutes(minutes)
}

/// (year, month, day) → days since 1970-01-01 (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// A value known to be below 256 (hours, minutes, seconds, days, months).
fn small(v: i128) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i128) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i128::from(month <= 2);
    (
        i64::try_from(year).unwrap_or(i64::MAX),
        small(month),
        small(day),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn santo_domingo_is_four_hours_behind() {
        // 2026-11-23T11:30:00Z is 07:30 in Santo Domingo.
        let t = LocalDateTime::from_utc_ms(1_795_433_400_000, UtcOffset::SANTO_DOMINGO);
        assert_eq!(t.to_string(), "23/11/2026 07:30");
        // Just after UTC midnight it is still the previous day locally.
        let t = LocalDateTime::from_utc_ms(1_767_225_600_000 + 1000, UtcOffset::SANTO_DOMINGO);
        assert_eq!(t.to_string(), "31/12/2025 20:00");
        assert_eq!(t.second, 1);
    }

    #[test]
    fn epoch_leap_day_and_before_epoch() {
        assert_eq!(
            LocalDateTime::from_utc_ms(0, UtcOffset::UTC).to_string(),
            "01/01/1970 00:00"
        );
        // 2024-02-29T12:00:00Z
        assert_eq!(
            LocalDate::from_utc_ms(1_709_208_000_000, UtcOffset::UTC).to_string(),
            "29/02/2024"
        );
        assert_eq!(
            LocalDateTime::from_utc_ms(-1, UtcOffset::UTC).to_string(),
            "31/12/1969 23:59"
        );
    }

    #[test]
    fn offsets_and_dates_are_validated() {
        assert!(UtcOffset::from_minutes(-240).is_some());
        assert!(UtcOffset::from_minutes(19 * 60).is_none());
        assert!(LocalDate::new(2025, 2, 29).is_none());
        assert!(LocalDate::new(2024, 2, 29).is_some());
        assert!(LocalDate::new(2024, 13, 1).is_none());
        assert_eq!(
            LocalDate::new(2026, 12, 31).map(|d| d.iso()),
            Some("2026-12-31".to_string())
        );
    }

    #[test]
    fn iso_dates_parse_and_bound_the_local_day() {
        let d = LocalDate::parse_iso("2026-12-31").unwrap();
        assert_eq!(d.iso(), "2026-12-31");
        let sd = UtcOffset::SANTO_DOMINGO;
        // 2026-12-31 00:00 in Santo Domingo is 04:00 UTC.
        assert_eq!(d.start_utc_ms(sd), 1_798_689_600_000);
        assert_eq!(d.end_utc_ms(sd), 1_798_689_600_000 + 86_400_000 - 1);
        assert_eq!(LocalDate::from_utc_ms(d.end_utc_ms(sd), sd), d);
        assert_eq!(d.first_of_next_month().iso(), "2027-01-01");
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "26-01-01",
            "2026/01/01",
            "2026-1-011",
            "+026-01-01",
        ] {
            assert_eq!(LocalDate::parse_iso(bad), None, "{bad}");
        }
        assert_eq!(zone_offset("America/Santo_Domingo"), Some(sd));
        assert_eq!(zone_offset("Europe/Madrid"), None);
    }

    proptest! {
        #[test]
        fn fields_are_always_in_range(ms in any::<i64>(), off in -1080i32..=1080) {
            let offset = UtcOffset::from_minutes(off).unwrap();
            let t = LocalDateTime::from_utc_ms(ms, offset);
            prop_assert!(LocalDate::new(t.year, t.month, t.day).is_some());
            prop_assert!(t.hour < 24 && t.minute < 60 && t.second < 60);
        }

        #[test]
        fn days_round_trip(day in -1_000_000i64..1_000_000) {
            let d = LocalDate::from_utc_ms(day * MS_PER_DAY, UtcOffset::UTC);
            prop_assert_eq!(d.days_since_epoch(), day);
        }

        #[test]
        fn consecutive_days_follow_each_other(day in -1_000_000i64..1_000_000) {
            let a = LocalDate::from_utc_ms(day * MS_PER_DAY, UtcOffset::UTC);
            let b = LocalDate::from_utc_ms((day + 1) * MS_PER_DAY, UtcOffset::UTC);
            let next = LocalDate::new(a.year, a.month, a.day + 1)
                .or_else(|| LocalDate::new(a.year, a.month + 1, 1))
                .or_else(|| LocalDate::new(a.year + 1, 1, 1));
            prop_assert_eq!(Some(b), next);
        }
    }
}

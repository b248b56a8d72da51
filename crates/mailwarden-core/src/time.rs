//! Timestamps as mail logs write them, and the context needed to read the ones
//! that leave out the year or the zone.
//!
//! Log lines carry time in half a dozen shapes (RFC 3339 with or without a
//! fraction, RFC 3164's year-less `Mmm dd HH:MM:SS`, Unix seconds, journald's
//! microseconds). They are all reduced to one [`Timestamp`]: an instant in UTC
//! microseconds plus the UTC offset of the wall clock that wrote it, so that
//! per-day and per-hour reports use the log's own local time, as pflogsumm does.
//!
//! The core reads no clock: the reference time used to guess the year of an
//! RFC 3164 stamp and the zone used to place a zone-less stamp come in as a
//! [`TimeContext`] from the caller.
//!
//! The fixed-layout parsers here are written by hand because they sit on the hot
//! path (one call per log line) and general-purpose parsers cost several times
//! more per line than the whole rest of the pipeline's budget.

use std::fmt;

use serde::{Serialize, Serializer};

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// An instant with the UTC offset of the clock that logged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub unix_micros: i64,
    /// Offset of the logging clock from UTC, in seconds (east positive).
    pub offset_secs: i32,
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    /// Orders by instant only; the offset is presentation.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.unix_micros.cmp(&other.unix_micros)
    }
}

/// A calendar date and wall-clock time, as read from a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDateTime {
    /// Full year, e.g. 2023.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60 (a leap second is clamped to 59 when converted).
    pub second: u8,
    /// 0..=999_999.
    pub micros: u32,
}

impl CivilDateTime {
    /// Checks the ranges of every field, including the day against the month's length.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60
            && self.micros < 1_000_000
    }

    /// Seconds since the epoch if this wall time were UTC.
    fn as_utc_seconds(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second.min(59))
    }

    /// The instant this wall time denotes in a time zone (its offset at that
    /// moment, DST included). Fails for times skipped by a DST change.
    pub fn in_zone(&self, zone: &jiff::tz::TimeZone) -> Result<Timestamp, TimeError> {
        let dt = jiff::civil::DateTime::new(
            self.year as i16,
            self.month as i8,
            self.day as i8,
            self.hour as i8,
            self.minute as i8,
            self.second.min(59) as i8,
            0,
        )
        .map_err(|_| TimeError::Range)?;
        let ts = zone.to_timestamp(dt).map_err(|_| TimeError::Zone)?;
        Ok(Timestamp {
            unix_micros: ts.as_microsecond() + i64::from(self.micros),
            offset_secs: zone.to_offset(ts).seconds(),
        })
    }

    /// The instant this wall time denotes at a fixed UTC offset.
    pub fn at_offset(&self, offset_secs: i32) -> Timestamp {
        let secs = self.as_utc_seconds() - i64::from(offset_secs);
        Timestamp {
            unix_micros: secs * MICROS_PER_SEC + i64::from(self.micros),
            offset_secs,
        }
    }
}

/// A local date (in the log's own offset), used to group reports by day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Date {
    /// Full year.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Timestamp {
    /// Builds a timestamp from Unix seconds, shown in UTC.
    pub fn from_unix_seconds(secs: i64) -> Timestamp {
        Timestamp {
            unix_micros: secs.saturating_mul(MICROS_PER_SEC),
            offset_secs: 0,
        }
    }

    /// Builds a timestamp from Unix microseconds, shown in UTC.
    pub fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp {
            unix_micros: micros,
            offset_secs: 0,
        }
    }

    /// The wall-clock date and time in the logging clock's own offset.
    pub fn local(&self) -> CivilDateTime {
        let local = self.unix_micros + i64::from(self.offset_secs) * MICROS_PER_SEC;
        let secs = local.div_euclid(MICROS_PER_SEC);
        let micros = local.rem_euclid(MICROS_PER_SEC) as u32;
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        CivilDateTime {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod % 3600 / 60) as u8,
            second: (sod % 60) as u8,
            micros,
        }
    }

    /// The local date of this instant.
    pub fn local_date(&self) -> Date {
        let c = self.local();
        Date {
            year: c.year,
            month: c.month,
            day: c.day,
        }
    }

    /// The local hour (0..=23) of this instant.
    pub fn local_hour(&self) -> u8 {
        let local = self.unix_micros.div_euclid(MICROS_PER_SEC) + i64::from(self.offset_secs);
        (local.rem_euclid(SECS_PER_DAY) / 3600) as u8
    }

    /// Seconds (with fraction) from `earlier` to `self`.
    pub fn seconds_since(&self, earlier: &Timestamp) -> f64 {
        (self.unix_micros - earlier.unix_micros) as f64 / MICROS_PER_SEC as f64
    }

    /// Shifts the instant by whole seconds, keeping the offset.
    pub fn plus_seconds(&self, secs: i64) -> Timestamp {
        Timestamp {
            unix_micros: self.unix_micros + secs * MICROS_PER_SEC,
            offset_secs: self.offset_secs,
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with microseconds and the original offset (`Z` for UTC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.local();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros
        )?;
        if self.offset_secs == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let abs = self.offset_secs.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// Reads the RFC 3339 form [`Display`](fmt::Display) writes.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match parse_rfc3339_prefix(s.as_bytes()) {
            Ok((t, n)) if n == s.len() => Ok(t),
            _ => Err(serde::de::Error::custom(format!(
                "not an RFC 3339 timestamp: {s:?}"
            ))),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
///
/// The standard era-based conversion (400-year cycles of 146,097 days), exact
/// for every year an `i32` holds.
pub fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in a month of a year.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Why a timestamp could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text does not have the expected layout.
    #[error("not a timestamp of the expected layout")]
    Layout,
    /// The layout is right but a field is out of range (e.g. Feb 30, hour 25).
    #[error("timestamp field out of range")]
    Range,
    /// A year-less stamp could not be placed in the context's time zone.
    #[error("local time does not exist in the configured time zone")]
    Zone,
}

#[inline]
fn digit(b: u8) -> Option<u32> {
    let d = b.wrapping_sub(b'0');
    (d < 10).then_some(u32::from(d))
}

#[inline]
fn digits(s: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &b in s {
        v = v * 10 + digit(b)?;
    }
    Some(v)
}

/// Reads an RFC 3339 timestamp at the start of `s` (`T` or a space between date
/// and time, optional fraction of any length, `Z`/`z` or `±hh:mm`/`±hhmm`).
///
/// Returns the timestamp and the number of bytes consumed.
pub fn parse_rfc3339_prefix(s: &[u8]) -> Result<(Timestamp, usize), TimeError> {
    let (civil, i) = parse_civil_prefix(s)?;
    let (offset_secs, i) = parse_offset(s, i)?;
    Ok((civil.at_offset(offset_secs), i))
}

/// Remembers the last RFC 3339 stamp's `YYYY-MM-DDTHH:MM:SS` part and its
/// value: consecutive log lines mostly share the second, and comparing 19
/// bytes is cheaper than parsing and converting them again.
#[derive(Clone, Debug, Default)]
pub struct StampCache {
    key: [u8; 19],
    civil: Option<CivilDateTime>,
}

/// [`parse_rfc3339_prefix`] with a [`StampCache`]; same results.
pub fn parse_rfc3339_prefix_cached(
    s: &[u8],
    cache: &mut StampCache,
) -> Result<(Timestamp, usize), TimeError> {
    let civil = match (s.get(..19), cache.civil) {
        (Some(head), Some(c)) if head == cache.key => c,
        (Some(head), _) => {
            let (c, _) = parse_civil_prefix(&s[..19])?;
            cache.key.copy_from_slice(head);
            cache.civil = Some(c);
            c
        }
        (None, _) => return Err(TimeError::Layout),
    };
    let (micros, i) = parse_fraction(s, 19);
    let (offset_secs, i) = parse_offset(s, i)?;
    Ok((CivilDateTime { micros, ..civil }.at_offset(offset_secs), i))
}

/// Reads `Z` or `±hh:mm`/`±hhmm` at `s[i..]`: (offset seconds, end).
fn parse_offset(s: &[u8], mut i: usize) -> Result<(i32, usize), TimeError> {
    let offset_secs = match s.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hh = s.get(i + 1..i + 3).and_then(digits).ok_or(TimeError::Layout)?;
            let (mm, used) = match s.get(i + 3) {
                Some(b':') => (s.get(i + 4..i + 6).and_then(digits).ok_or(TimeError::Layout)?, 6),
                _ => (s.get(i + 3..i + 5).and_then(digits).ok_or(TimeError::Layout)?, 5),
            };
            if hh > 23 || mm > 59 {
                return Err(TimeError::Range);
            }
            i += used;
            let off = (hh * 3600 + mm * 60) as i32;
            if sign == b'-' { -off } else { off }
        }
        _ => return Err(TimeError::Layout),
    };
    Ok((offset_secs, i))
}

/// Reads `YYYY-MM-DD[T ]HH:MM:SS[.frac]` at the start of `s`, without a zone.
pub fn parse_civil_prefix(s: &[u8]) -> Result<(CivilDateTime, usize), TimeError> {
    if s.len() < 19 {
        return Err(TimeError::Layout);
    }
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return Err(TimeError::Layout);
    }
    if s[13] != b':' || s[16] != b':' {
        return Err(TimeError::Layout);
    }
    let year = digits(&s[0..4]).ok_or(TimeError::Layout)? as i32;
    let month = digits(&s[5..7]).ok_or(TimeError::Layout)? as u8;
    let day = digits(&s[8..10]).ok_or(TimeError::Layout)? as u8;
    let hour = digits(&s[11..13]).ok_or(TimeError::Layout)? as u8;
    let minute = digits(&s[14..16]).ok_or(TimeError::Layout)? as u8;
    let second = digits(&s[17..19]).ok_or(TimeError::Layout)? as u8;
    let (micros, i) = parse_fraction(s, 19);
    let civil = CivilDateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    };
    if !civil.is_valid() {
        return Err(TimeError::Range);
    }
    Ok((civil, i))
}

/// Reads an optional `.digits` fraction at `s[i..]`, keeping microseconds.
fn parse_fraction(s: &[u8], mut i: usize) -> (u32, usize) {
    if s.get(i) != Some(&b'.') && s.get(i) != Some(&b',') {
        return (0, i);
    }
    let start = i + 1;
    i = start;
    let mut micros = 0u32;
    while let Some(d) = s.get(i).copied().and_then(digit) {
        if i - start < 6 {
            micros = micros * 10 + d;
        }
        i += 1;
    }
    if i == start {
        // A lone dot is not a fraction.
        return (0, start - 1);
    }
    let n = (i - start).min(6);
    micros *= 10u32.pow((6 - n) as u32);
    (micros, i)
}

/// Month number (1..=12) of an English three-letter abbreviation.
pub fn month_from_abbrev(m: &[u8]) -> Option<u8> {
    if m.len() != 3 {
        return None;
    }
    let k = [
        m[0].to_ascii_lowercase(),
        m[1].to_ascii_lowercase(),
        m[2].to_ascii_lowercase(),
    ];
    Some(match &k {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// A year-less BSD syslog stamp, `Mmm dd HH:MM:SS[.frac]` (day space- or zero-padded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearlessStamp {
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60.
    pub second: u8,
    /// Fraction, 0..=999_999.
    pub micros: u32,
    /// Some producers (Cisco-style, some syslog-ng templates) put the year
    /// after the day: `Mmm dd YYYY HH:MM:SS`.
    pub year: Option<i32>,
}

/// Reads `Mmm dd HH:MM:SS` (and the `Mmm dd YYYY HH:MM:SS` variant) at the start
/// of `s`. Returns the stamp and the bytes consumed.
pub fn parse_yearless_prefix(s: &[u8]) -> Result<(YearlessStamp, usize), TimeError> {
    if s.len() < 15 {
        return Err(TimeError::Layout);
    }
    let month = month_from_abbrev(&s[0..3]).ok_or(TimeError::Layout)?;
    if s[3] != b' ' {
        return Err(TimeError::Layout);
    }
    let day = match (s[4], s[5]) {
        (b' ', d) => digit(d).ok_or(TimeError::Layout)?,
        (a, b) => digit(a).ok_or(TimeError::Layout)? * 10 + digit(b).ok_or(TimeError::Layout)?,
    } as u8;
    if s[6] != b' ' {
        return Err(TimeError::Layout);
    }
    let mut i = 7;
    let mut year = None;
    // `Mmm dd YYYY HH:MM:SS`: four digits then a space where the time would have ':'.
    if s.len() >= 20 && s[i + 4] == b' ' && s[i + 2] != b':' {
        year = Some(digits(&s[i..i + 4]).ok_or(TimeError::Layout)? as i32);
        i += 5;
    }
    let t = s.get(i..i + 8).ok_or(TimeError::Layout)?;
    if t[2] != b':' || t[5] != b':' {
        return Err(TimeError::Layout);
    }
    let hour = digits(&t[0..2]).ok_or(TimeError::Layout)? as u8;
    let minute = digits(&t[3..5]).ok_or(TimeError::Layout)? as u8;
    let second = digits(&t[6..8]).ok_or(TimeError::Layout)? as u8;
    let (micros, end) = parse_fraction(s, i + 8);
    if day == 0 || day > 31 || hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError::Range);
    }
    Ok((
        YearlessStamp {
            month,
            day,
            hour,
            minute,
            second,
            micros,
            year,
        },
        end,
    ))
}

/// What the caller knows about time: the reference instant for guessing years
/// and the zone that zone-less stamps were written in.
#[derive(Clone, Debug)]
pub struct TimeContext {
    /// The latest instant the input can plausibly contain (the file's
    /// modification time, or "now" for a stream). Year-less stamps are placed
    /// in the year that puts them at or before this instant.
    pub reference: Timestamp,
    /// The zone of the clock that wrote zone-less stamps.
    pub zone: jiff::tz::TimeZone,
}

impl TimeContext {
    /// A context in UTC with the given reference.
    pub fn utc(reference: Timestamp) -> TimeContext {
        TimeContext {
            reference,
            zone: jiff::tz::TimeZone::UTC,
        }
    }
}

/// Turns year-less and zone-less stamps of one input into instants.
///
/// State is per input stream: it remembers the last year and month it placed so
/// a December → January crossing inside the stream moves to the next year, and it
/// caches the zone offset per local hour (zone lookups are the slow part).
#[derive(Debug)]
pub struct Clock {
    ctx: TimeContext,
    last: Option<(i32, u8)>,
    offset_cache: Option<(i64, i32)>,
    localize_cache: Option<(i64, i32)>,
}

impl Clock {
    /// A clock for one input.
    pub fn new(ctx: TimeContext) -> Clock {
        Clock {
            ctx,
            last: None,
            offset_cache: None,
            localize_cache: None,
        }
    }

    /// The context this clock was made with.
    pub fn context(&self) -> &TimeContext {
        &self.ctx
    }

    /// Chooses the year of a year-less stamp.
    ///
    /// The first stamp of a stream takes the reference's year, or the year
    /// before when that would put it more than a day after the reference (a
    /// "Dec 31" line read on January 2nd). Later stamps follow the stream: a
    /// jump back by six months or more (December → January) is a new year; a
    /// jump forward by six months or more is a late line from the previous year.
    pub fn year_for(&mut self, month: u8, day: u8) -> i32 {
        let year = match self.last {
            Some((last_year, last_month)) => {
                if month + 6 <= last_month {
                    last_year + 1
                } else if last_month + 6 <= month {
                    last_year - 1
                } else {
                    last_year
                }
            }
            None => {
                let r = self.ctx.reference.local();
                let ry = r.year;
                // Compare (month, day) with the reference date plus one day of slack
                // for clock skew and zone differences.
                let stamp_days = days_from_civil(ry, month, day.min(days_in_month(ry, month)));
                let ref_days = days_from_civil(ry, r.month, r.day);
                if stamp_days > ref_days + 1 { ry - 1 } else { ry }
            }
        };
        self.last = Some((year, month));
        year
    }

    /// Places a wall-clock time written without a zone in the context's zone.
    pub fn resolve_civil(&mut self, c: CivilDateTime) -> Result<Timestamp, TimeError> {
        if !c.is_valid() {
            return Err(TimeError::Range);
        }
        let hour_key = c.as_utc_seconds().div_euclid(3600);
        if let Some((k, off)) = self.offset_cache
            && k == hour_key
        {
            return Ok(c.at_offset(off));
        }
        let off = self.zone_offset(&c)?;
        self.offset_cache = Some((hour_key, off));
        Ok(c.at_offset(off))
    }

    fn zone_offset(&self, c: &CivilDateTime) -> Result<i32, TimeError> {
        Ok(c.in_zone(&self.ctx.zone)?.offset_secs)
    }

    /// Re-expresses an instant in the context's zone (same instant, the zone's
    /// offset), for sources that log UTC or epoch times.
    pub fn localize(&mut self, ts: Timestamp) -> Timestamp {
        let hour_key = ts.unix_micros.div_euclid(3600 * MICROS_PER_SEC);
        let off = match self.localize_cache {
            Some((k, off)) if k == hour_key => off,
            _ => {
                let off = jiff::Timestamp::from_microsecond(ts.unix_micros)
                    .map(|t| self.ctx.zone.to_offset(t).seconds())
                    .unwrap_or(0);
                self.localize_cache = Some((hour_key, off));
                off
            }
        };
        Timestamp {
            unix_micros: ts.unix_micros,
            offset_secs: off,
        }
    }

    /// Places a year-less stamp: year from the stream and reference, zone from the context.
    pub fn resolve_yearless(&mut self, s: YearlessStamp) -> Result<Timestamp, TimeError> {
        let year = match s.year {
            Some(y) => y,
            None => self.year_for(s.month, s.day),
        };
        self.resolve_civil(CivilDateTime {
            year,
            month: s.month,
            day: s.day,
            hour: s.hour,
            minute: s.minute,
            second: s.second,
            micros: s.micros,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        parse_rfc3339_prefix(s.as_bytes()).unwrap().0
    }

    #[test]
    fn civil_roundtrip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn rfc3339_variants() {
        let cases = [
            ("2023-03-14T00:00:31.185246+01:00", 1_678_748_431_185_246, 3600),
            ("2023-03-14T00:00:31+01:00", 1_678_748_431_000_000, 3600),
            ("2023-03-13T23:00:31.185246789Z", 1_678_748_431_185_246, 0),
            ("2023-03-13 23:00:31Z", 1_678_748_431_000_000, 0),
            ("2023-03-13T18:00:31-0500", 1_678_748_431_000_000, -18_000),
        ];
        for (text, micros, off) in cases {
            let (t, n) = parse_rfc3339_prefix(text.as_bytes()).unwrap();
            assert_eq!(
                (t.unix_micros, t.offset_secs, n),
                (micros, off, text.len()),
                "{text}"
            );
        }
        for bad in [
            "2023-02-30T00:00:00Z",
            "2023-03-14T24:00:00Z",
            "2023-03-14T00:00:00",
            "2023/03/14",
        ] {
            assert!(parse_rfc3339_prefix(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn cached_parse_agrees_with_plain_parse() {
        let mut cache = StampCache::default();
        for text in [
            "2023-03-14T00:00:31.185246+01:00 x",
            "2023-03-14T00:00:31.9Z",
            "2023-03-14T00:00:31-0500",
            "2023-03-14T00:00:32+01:00",
            "2023-03-14T00:00:32+01:00",
            "2023-02-30T00:00:00Z",
            "2023-03-14T00:00:32",
            "2023-03",
        ] {
            assert_eq!(
                parse_rfc3339_prefix_cached(text.as_bytes(), &mut cache),
                parse_rfc3339_prefix(text.as_bytes()),
                "{text}"
            );
        }
    }

    #[test]
    fn serde_roundtrip() {
        let t = ts("2023-03-14T00:00:31.185246+01:00");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn display_keeps_offset() {
        assert_eq!(
            ts("2023-03-14T00:00:31.185246+01:00").to_string(),
            "2023-03-14T00:00:31.185246+01:00"
        );
        assert_eq!(
            ts("2023-03-14T00:00:31Z").to_string(),
            "2023-03-14T00:00:31.000000Z"
        );
        assert_eq!(
            ts("2023-03-14T00:00:31-05:30").to_string(),
            "2023-03-14T00:00:31.000000-05:30"
        );
    }

    #[test]
    fn local_date_and_hour_use_log_offset() {
        let t = ts("2023-03-14T00:30:00+01:00");
        assert_eq!(t.local_hour(), 0);
        assert_eq!(t.local_date().to_string(), "2023-03-14");
    }

    #[test]
    fn yearless_layouts() {
        let (s, n) = parse_yearless_prefix(b"Mar  4 02:05:02 mail x").unwrap();
        assert_eq!(
            (s.month, s.day, s.hour, s.minute, s.second, n),
            (3, 4, 2, 5, 2, 15)
        );
        let (s, n) = parse_yearless_prefix(b"Dec 04 20:40:01.123 x").unwrap();
        assert_eq!((s.day, s.micros, n), (4, 123_000, 19));
        let (s, n) = parse_yearless_prefix(b"Oct 11 2003 22:14:15 host").unwrap();
        assert_eq!((s.year, s.hour, n), (Some(2003), 22, 20));
        assert!(parse_yearless_prefix(b"Foo 11 22:14:15 host").is_err());
        assert!(parse_yearless_prefix(b"Oct 11 25:14:15 host").is_err());
    }

    fn clock_at(reference: &str) -> Clock {
        Clock::new(TimeContext::utc(ts(reference)))
    }

    #[test]
    fn year_from_reference_and_rollover() {
        // Read on Jan 2nd: December lines belong to the previous year.
        let mut c = clock_at("2024-01-02T10:00:00Z");
        assert_eq!(c.year_for(12, 31), 2023);
        assert_eq!(c.year_for(12, 31), 2023);
        assert_eq!(c.year_for(1, 1), 2024);
        assert_eq!(c.year_for(1, 2), 2024);

        // A stream that starts in the reference year stays in it.
        let mut c = clock_at("2023-06-15T00:00:00Z");
        assert_eq!(c.year_for(6, 15), 2023);
        assert_eq!(c.year_for(6, 16), 2023, "one day of slack for skew");

        // A late line from December after January lines.
        let mut c = clock_at("2024-01-10T00:00:00Z");
        assert_eq!(c.year_for(1, 1), 2024);
        assert_eq!(c.year_for(12, 31), 2023);
    }

    #[test]
    fn yearless_in_zone_with_dst() {
        let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let mut c = Clock::new(TimeContext {
            reference: ts("2023-12-31T00:00:00Z"),
            zone,
        });
        let (s, _) = parse_yearless_prefix(b"Mar 14 00:00:31 x").unwrap();
        let t = c.resolve_yearless(s).unwrap();
        assert_eq!(t.to_string(), "2023-03-14T00:00:31.000000+01:00");
        let (s, _) = parse_yearless_prefix(b"Jul 14 00:00:31 x").unwrap();
        let t = c.resolve_yearless(s).unwrap();
        assert_eq!(t.to_string(), "2023-07-14T00:00:31.000000+02:00");
    }

    #[test]
    fn feb_29_only_in_leap_years() {
        let mut c = clock_at("2023-03-01T00:00:00Z");
        let (s, _) = parse_yearless_prefix(b"Feb 29 00:00:00 x").unwrap();
        assert_eq!(c.resolve_yearless(s), Err(TimeError::Range));
        let mut c = clock_at("2024-03-01T00:00:00Z");
        assert!(c.resolve_yearless(s).is_ok());
    }
}

//! Days: the unit of storage and of retention. A line belongs to the UTC day
//! of its event time (or of its receive time when it has none); each day is
//! one SQLite file `days/YYYY-MM-DD.sqlite`, so dropping a day is deleting a
//! file.

use std::path::{Path, PathBuf};

use mailwarden_core::time::{Date, Timestamp, civil_from_days, days_from_civil};

use crate::error::StoreError;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The first day a file can be named after (1970-01-01): earlier instants are
/// kept in it (their exact time is stored with them).
pub(crate) const MIN_DAY: i64 = 0;
/// The last day a file can be named after (9999-12-31).
pub(crate) const MAX_DAY: i64 = 2_932_896;

/// The day (days since 1970-01-01, UTC) an instant falls on, clamped to the
/// range of file names.
pub(crate) fn day_of(ts: Timestamp) -> i64 {
    ts.unix_micros.div_euclid(MICROS_PER_DAY).clamp(MIN_DAY, MAX_DAY)
}

/// The calendar date of a day number.
pub(crate) fn date_of(day: i64) -> Date {
    let (year, month, day) = civil_from_days(day);
    Date { year, month, day }
}

/// The day number of a calendar date.
pub(crate) fn day_of_date(d: Date) -> i64 {
    days_from_civil(d.year, d.month, d.day)
}

/// `YYYY-MM-DD`.
pub(crate) fn date_string(day: i64) -> String {
    date_of(day).to_string()
}

/// Parses `YYYY-MM-DD` (a four-digit year).
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let year = num(0..4)? as i32;
    let month = num(5..7)? as u8;
    let day = num(8..10)? as u8;
    let valid =
        (1..=12).contains(&month) && day >= 1 && day <= mailwarden_core::time::days_in_month(year, month);
    valid.then_some(Date { year, month, day })
}

/// The file of a day inside `days_dir`.
pub(crate) fn day_path(days_dir: &Path, day: i64) -> PathBuf {
    days_dir.join(format!("{}.sqlite", date_string(day)))
}

/// The day a file name denotes (`YYYY-MM-DD.sqlite`).
fn parse_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".sqlite")?;
    let day = day_of_date(parse_date(stem)?);
    (MIN_DAY..=MAX_DAY).contains(&day).then_some(day)
}

/// The days that have a file, oldest first.
pub(crate) fn list_days(days_dir: &Path) -> Result<Vec<i64>, StoreError> {
    let rd = match std::fs::read_dir(days_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(StoreError::Io {
                path: days_dir.into(),
                source: e,
            });
        }
    };
    let mut days = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::Io {
            path: days_dir.into(),
            source: e,
        })?;
        if let Some(day) = entry.file_name().to_str().and_then(parse_file_name) {
            days.push(day);
        }
    }
    days.sort_unstable();
    Ok(days)
}

/// The SQLite side files of a database file.
pub(crate) fn side_files(path: &Path) -> [PathBuf; 2] {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    [PathBuf::from(wal), PathBuf::from(shm)]
}

/// Bytes a database file takes on disk with its WAL. (The shared-memory
/// file, an index of the WAL that SQLite removes with the last connection, is
/// not counted.)
pub(crate) fn file_bytes(path: &Path) -> u64 {
    let [wal, _] = side_files(path);
    [path, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_names() {
        assert_eq!(days_from_civil(9999, 12, 31), MAX_DAY);
        let d = day_of(Timestamp::from_unix_seconds(1_678_752_031)); // 2023-03-14
        assert_eq!(date_string(d), "2023-03-14");
        assert_eq!(parse_file_name("2023-03-14.sqlite"), Some(d));
        assert_eq!(parse_file_name("2023-02-30.sqlite"), None);
        assert_eq!(parse_file_name("2023-03-14.sqlite-wal"), None);
        assert_eq!(parse_file_name("meta.sqlite"), None);
        assert_eq!(day_of(Timestamp::from_unix_seconds(-5)), MIN_DAY);
        assert_eq!(day_of(Timestamp::from_unix_micros(i64::MAX)), MAX_DAY);
        // An offset does not move the UTC day.
        let t = Timestamp {
            unix_micros: 1_678_752_031_000_000,
            offset_secs: 13 * 3600,
        };
        assert_eq!(day_of(t), d);
    }
}

//! MariaDB's data directory against the server that runs it: decoders of
//! the files that say which version last wrote a data directory, a version
//! type with ordering, the classification of what was read into findings,
//! and the classifier of a MariaDB error log's first fatal line.
//!
//! # Formats (verified)
//!
//! Every offset below was verified on a data directory made by
//! `mariadb-install-db --no-defaults` of MariaDB 10.11.19 (Debian 12), and the
//! redo log's unclean state on a copy whose server was killed with SIGKILL
//! after writes:
//!
//! - `mysql_upgrade_info` (`mariadb_upgrade_info` from 11.x): the 16 bytes
//!   `10.11.19-MariaDB`, no newline. Older tools wrote a trailing NUL or
//!   newline; both are tolerated.
//! - `ib_logfile0`, first 512-byte block: bytes 0–3 the big-endian format id
//!   (`Phys` = 0x50687973 for 10.8+, top bit set when encrypted), bytes 8–15
//!   the start LSN (big-endian; 0x3000 on the fresh file), bytes 16–47 the
//!   NUL-padded creator string `MariaDB 10.11.19`, bytes 508–511 the
//!   CRC-32C (big-endian) of bytes 0–507. For the 10.8+ format the two
//!   checkpoint blocks are at 4096 and 8192: bytes 0–7 the checkpoint LSN,
//!   8–15 the end LSN (both big-endian), 60–63 the CRC-32C of bytes 0–59. After
//!   the clean shutdown of `mariadb-install-db` both blocks held checkpoint
//!   LSN = end LSN (0xad64 = 0xad64); after the SIGKILL the newest block held
//!   0xad74 and 0xaec8.
//! - Formats 10.2 to 10.7 (format ids 1, 103, 104, `PHYS`), not verifiable
//!   on this machine (its server writes only the 10.8+ format), decoded from
//!   the layout MariaDB's own upgrade check reads: two checkpoint blocks at
//!   512 and 1536, each with the checkpoint number (bytes 0–7), LSN (8–15)
//!   and byte offset of that LSN in the log (16–23, counting every file's
//!   2048-byte header, files of equal size laid end to end), CRC-32C of
//!   bytes 0–507 at 508. The newest valid one wins. The log was left clean
//!   when the 512-byte block holding the checkpoint offset (valid CRC-32C at
//!   508) has a data length (bytes 4–5) equal to the checkpoint's position in
//!   that block: nothing was logged after it. Anything else is what makes
//!   10.8+ refuse with "Upgrade after a crash is not supported".
//! - `aria_log_control` (52 bytes): bytes 0–2 the magic `FE FE 0C`, byte 3
//!   the version (1), 4–19 the UUID, 20–21 the size of this fixed part (30,
//!   little-endian), 22–23 the size of the changeable part (22), 24–25 the
//!   block size (8192), 26–29 the CRC-32 (zlib, little-endian) of bytes 0–25.
//!   The changeable part starts at the fixed part's size: its first 4 bytes
//!   are the CRC-32 of the rest of it; then the last LSN (7 bytes), the last
//!   log file number (4), the max transaction id (6), and its byte 21 is the
//!   count of consecutive failed recoveries (MariaDB's
//!   `aria_force_start_after_recovery_failures` documents that counter, max
//!   255). Both CRCs matched zlib's CRC-32 on the real file.
//!
//! The version a data directory was last written by is the newest of the
//! upgrade-info version and the redo log's creator, and at least the oldest
//! version that writes its redo format.

use std::cmp::Ordering;
use std::fmt;

use super::{Area, Finding, Severity};

/// Longest raw text of a value kept for evidence.
const MAX_EVIDENCE_CHARS: usize = 120;

/// The recovery playbook: the fix of a downgrade.
pub const RECOVERY_PLAYBOOK: &str = "stop the container and snapshot the data directory first \
(copy it or snapshot its volume; never let another version touch the only copy); then either \
run the image matching the data directory again (pin it, e.g. `mariadb:<data version>` in \
docker-compose.override.yml), or start the version that last wrote it, shut it down cleanly \
(`mariadb-admin shutdown`, innodb_fast_shutdown=0), and only then start the new version and \
run `mariadb-upgrade`; never delete ib_logfile0 or aria_log files to make it start";

/// A MariaDB version: `major.minor` with an optional patch level (an image
/// tag like `mariadb:10.11` floats on the patch level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major version (10, 11).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level, when known.
    pub patch: Option<u32>,
}

impl Version {
    /// A version with a patch level.
    pub fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch: Some(patch),
        }
    }

    /// The first `X.Y[.Z]` in `s` (`10.11.6-MariaDB`, `1:10.11.6+maria~ubu2204`
    /// after the epoch, `MariaDB 10.5.4`). `None` when there is none.
    pub fn find(s: &str) -> Option<Version> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit()
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && let Some(v) = Version::parse_at(&s[i..])
            {
                return Some(v);
            }
            i += 1;
        }
        None
    }

    /// `X.Y[.Z]` at the start of `s`, followed by a non-digit or the end.
    fn parse_at(s: &str) -> Option<Version> {
        let mut parts = [None::<u32>; 3];
        let mut rest = s;
        for (n, slot) in parts.iter_mut().enumerate() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 6 {
                break;
            }
            *slot = rest[..digits].parse().ok();
            rest = &rest[digits..];
            if n < 2 && rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                rest = &rest[1..];
            } else {
                break;
            }
        }
        Some(Version {
            major: parts[0]?,
            minor: parts[1]?,
            patch: parts[2],
        })
    }

    /// `(major, minor)`: the release series.
    pub fn series(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// Compares with `other`: by series, then by patch when both know it
    /// (`None` when the series is equal and a patch level is unknown).
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match self.series().cmp(&other.series()) {
            Ordering::Equal => match (self.patch, other.patch) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            },
            o => Some(o),
        }
    }

    /// The newer of two versions (the one with a patch level on a tie).
    pub fn newest(a: Version, b: Version) -> Version {
        match a.series().cmp(&b.series()) {
            Ordering::Greater => a,
            Ordering::Less => b,
            Ordering::Equal => {
                if a.patch.unwrap_or(0) >= b.patch.unwrap_or(0) && a.patch.is_some() {
                    a
                } else {
                    b
                }
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// Why a file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The file is shorter than its format.
    #[error("the file is truncated: {got} bytes, at least {need} expected")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The file does not start with its format's magic bytes.
    #[error("not this format: magic bytes {0}")]
    BadMagic(String),
    /// No version number in the text.
    #[error("no version number in {0:?}")]
    NoVersion(String),
    /// A size field contradicts the file.
    #[error("inconsistent size field: {0}")]
    BadSize(String),
}

/// Printable, bounded form of raw bytes for evidence.
fn printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s
        .chars()
        .filter(|c| *c != '\0')
        .map(|c| match c {
            c if c.is_whitespace() => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .take(MAX_EVIDENCE_CHARS)
        .collect();
    if s.chars().count() > MAX_EVIDENCE_CHARS {
        out.push('…');
    }
    out.trim().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `mysql_upgrade_info` / `mariadb_upgrade_info`: the version whose
/// `mariadb-upgrade` (or `mariadb-install-db`) last ran on the data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeInfo {
    /// The text, without NULs and surrounding whitespace (bounded).
    pub text: String,
    /// Its version.
    pub version: Version,
    /// Whether it names MariaDB (MySQL writes `8.0.36` alone).
    pub mariadb: bool,
}

/// Decodes an upgrade-info file.
pub fn parse_upgrade_info(bytes: &[u8]) -> Result<UpgradeInfo, DecodeError> {
    let text = printable(bytes);
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    let version = Version::find(&text).ok_or_else(|| DecodeError::NoVersion(text.clone()))?;
    let mariadb = text.to_ascii_lowercase().contains("mariadb");
    Ok(UpgradeInfo {
        text,
        version,
        mariadb,
    })
}

/// The redo log format named by `ib_logfile0`'s format id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedoFormat {
    /// 0: before MariaDB 10.2.2 / MySQL 5.7.9.
    Pre10_2,
    /// 1: MariaDB 10.2 (and MySQL 5.7.9+).
    V10_2,
    /// 103: MariaDB 10.3.
    V10_3,
    /// 104: MariaDB 10.4.
    V10_4,
    /// `PHYS`: MariaDB 10.5–10.7.
    Phys10_5,
    /// `Phys`: MariaDB 10.8 and later.
    Phys10_8,
    /// 2–6: MySQL 8.0 formats (MariaDB cannot read them).
    Mysql8(u32),
    /// Anything else.
    Unknown(u32),
}

impl RedoFormat {
    /// From the format id with the encryption bit cleared.
    pub fn from_id(id: u32) -> RedoFormat {
        match id {
            0 => RedoFormat::Pre10_2,
            1 => RedoFormat::V10_2,
            103 => RedoFormat::V10_3,
            104 => RedoFormat::V10_4,
            0x5048_5953 => RedoFormat::Phys10_5,
            0x5068_7973 => RedoFormat::Phys10_8,
            2..=6 => RedoFormat::Mysql8(id),
            _ => RedoFormat::Unknown(id),
        }
    }

    /// The oldest MariaDB series that writes this format.
    pub fn min_series(self) -> Option<(u32, u32)> {
        match self {
            RedoFormat::Pre10_2 | RedoFormat::Mysql8(_) | RedoFormat::Unknown(_) => None,
            RedoFormat::V10_2 => Some((10, 2)),
            RedoFormat::V10_3 => Some((10, 3)),
            RedoFormat::V10_4 => Some((10, 4)),
            RedoFormat::Phys10_5 => Some((10, 5)),
            RedoFormat::Phys10_8 => Some((10, 8)),
        }
    }

    /// The format a server of this series writes.
    pub fn of_server(series: (u32, u32)) -> RedoFormat {
        match series {
            s if s >= (10, 8) => RedoFormat::Phys10_8,
            s if s >= (10, 5) => RedoFormat::Phys10_5,
            (10, 4) => RedoFormat::V10_4,
            (10, 3) => RedoFormat::V10_3,
            (10, 2) => RedoFormat::V10_2,
            _ => RedoFormat::Pre10_2,
        }
    }

    /// Human name.
    pub fn describe(self) -> String {
        match self {
            RedoFormat::Pre10_2 => "0 (before MariaDB 10.2.2)".into(),
            RedoFormat::V10_2 => "1 (MariaDB 10.2)".into(),
            RedoFormat::V10_3 => "103 (MariaDB 10.3)".into(),
            RedoFormat::V10_4 => "104 (MariaDB 10.4)".into(),
            RedoFormat::Phys10_5 => "PHYS (MariaDB 10.5–10.7)".into(),
            RedoFormat::Phys10_8 => "Phys (MariaDB 10.8+)".into(),
            RedoFormat::Mysql8(n) => format!("{n} (MySQL 8.0)"),
            RedoFormat::Unknown(n) => format!("0x{n:08x} (unknown)"),
        }
    }
}

/// Whether the redo log was left clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedoState {
    /// The newest checkpoint's LSN equals the log end it recorded: shut
    /// down cleanly (or idle since that checkpoint).
    Clean {
        /// Checkpoint LSN.
        lsn: u64,
    },
    /// The newest checkpoint recorded log beyond itself: the server did not
    /// shut down cleanly; crash recovery is pending.
    Dirty {
        /// Checkpoint LSN.
        checkpoint: u64,
        /// End LSN recorded with it.
        end: u64,
    },
    /// (Formats before 10.8) the log block at the checkpoint holds records
    /// written after it: the server did not shut down cleanly.
    LogAfterCheckpoint {
        /// Checkpoint LSN.
        checkpoint: u64,
        /// Byte offset of the checkpoint in the log.
        offset: u64,
        /// The block's data length (the checkpoint sits at `offset % 512`).
        data_len: u16,
    },
    /// (Formats before 10.8) the log block at the checkpoint has a bad
    /// checksum.
    BlockCorrupt {
        /// Byte offset of the block in the log.
        offset: u64,
    },
    /// Neither checkpoint block has a valid checksum.
    NoValidCheckpoint,
    /// Not decoded for this format, or the file is too short.
    NotDetermined,
}

/// The decoded header of `ib_logfile0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedoHeader {
    /// The raw format id (with the encryption bit).
    pub format_id: u32,
    /// The format.
    pub format: RedoFormat,
    /// Whether the log is encrypted (top bit of the format id).
    pub encrypted: bool,
    /// The creator string, NULs removed (bounded).
    pub creator: String,
    /// The version in the creator string when it names MariaDB.
    pub creator_version: Option<Version>,
    /// The start LSN (bytes 8–15).
    pub start_lsn: u64,
    /// Whether the header block's CRC-32C matched (10.8+ format only).
    pub header_crc_ok: Option<bool>,
    /// Shutdown state.
    pub state: RedoState,
    /// (Formats 10.2 to 10.7) the newest valid checkpoint: the caller reads
    /// the log block at its offset and passes it to [`old_format_state`].
    pub old_checkpoint: Option<OldCheckpoint>,
}

/// A checkpoint of a redo log in a format before 10.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldCheckpoint {
    /// Checkpoint number.
    pub number: u64,
    /// Checkpoint LSN.
    pub lsn: u64,
    /// Byte offset of the LSN in the log (all files end to end, headers
    /// included).
    pub offset: u64,
}

impl OldCheckpoint {
    /// Which `ib_logfileN` holds the checkpoint's block, and the block's
    /// offset in it, for files of `file_size` bytes.
    pub fn block_location(&self, file_size: u64) -> Option<(u64, u64)> {
        if file_size < 4096 {
            return None;
        }
        Some((self.offset / file_size, (self.offset % file_size) & !511))
    }
}

/// The shutdown state of a log in a format before 10.8, from the 512-byte
/// block that holds its newest checkpoint.
pub fn old_format_state(cp: &OldCheckpoint, block: &[u8]) -> RedoState {
    let (Some(body), Some(stored), Some(len)) = (
        block.get(..508),
        be32(block, 508),
        block.get(4..6).map(|b| u16::from_be_bytes([b[0], b[1]])),
    ) else {
        return RedoState::NotDetermined;
    };
    if crc32c(body) != stored {
        return RedoState::BlockCorrupt {
            offset: cp.offset & !511,
        };
    }
    if u64::from(len) == cp.offset & 511 {
        RedoState::Clean { lsn: cp.lsn }
    } else {
        RedoState::LogAfterCheckpoint {
            checkpoint: cp.lsn,
            offset: cp.offset,
            data_len: len,
        }
    }
}

/// Bytes of `ib_logfile0` [`parse_redo_header`] reads (header and both 10.8+
/// checkpoint blocks).
pub const REDO_HEADER_BYTES: usize = 12288;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// CRC-32C (Castagnoli), as InnoDB's redo log uses.
pub fn crc32c(data: &[u8]) -> u32 {
    crc(data, 0x82F6_3B78)
}

/// CRC-32 (zlib), as Aria's control file uses.
pub fn crc32(data: &[u8]) -> u32 {
    crc(data, 0xEDB8_8320)
}

fn crc(data: &[u8], poly: u32) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ poly } else { c >> 1 };
        }
    }
    !c
}

/// Decodes the start of `ib_logfile0` (pass the first
/// [`REDO_HEADER_BYTES`]; fewer are tolerated: at least 48 are needed).
pub fn parse_redo_header(bytes: &[u8]) -> Result<RedoHeader, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (Some(format_id), Some(start_lsn), Some(creator_raw)) =
        (be32(bytes, 0), be64(bytes, 8), bytes.get(16..48))
    else {
        return Err(DecodeError::Truncated {
            need: 48,
            got: bytes.len(),
        });
    };
    let encrypted = format_id & 0x8000_0000 != 0;
    let format = RedoFormat::from_id(format_id & 0x7fff_ffff);
    let creator = printable(creator_raw);
    let creator_version = if creator.starts_with("MariaDB") {
        Version::find(&creator)
    } else {
        None
    };
    let mut header_crc_ok = None;
    let mut state = RedoState::NotDetermined;
    if format == RedoFormat::Phys10_8 {
        if let (Some(block), Some(stored)) = (bytes.get(..508), be32(bytes, 508)) {
            header_crc_ok = Some(crc32c(block) == stored);
        }
        if bytes.len() >= REDO_HEADER_BYTES {
            let mut newest: Option<(u64, u64)> = None;
            for off in [4096usize, 8192] {
                let (Some(block), Some(stored), Some(lsn), Some(end)) = (
                    bytes.get(off..off + 60),
                    be32(bytes, off + 60),
                    be64(bytes, off),
                    be64(bytes, off + 8),
                ) else {
                    continue;
                };
                if crc32c(block) == stored && newest.is_none_or(|(l, _)| lsn > l) {
                    newest = Some((lsn, end));
                }
            }
            state = match newest {
                None => RedoState::NoValidCheckpoint,
                Some((lsn, end)) if end == lsn => RedoState::Clean { lsn },
                Some((checkpoint, end)) => RedoState::Dirty { checkpoint, end },
            };
        }
    }
    let mut old_checkpoint = None;
    let old_format = matches!(
        format,
        RedoFormat::V10_2 | RedoFormat::V10_3 | RedoFormat::V10_4 | RedoFormat::Phys10_5
    );
    if old_format && bytes.len() >= 2048 {
        for off in [512usize, 1536] {
            let (Some(block), Some(stored), Some(number), Some(lsn), Some(offset)) = (
                bytes.get(off..off + 508),
                be32(bytes, off + 508),
                be64(bytes, off),
                be64(bytes, off + 8),
                be64(bytes, off + 16),
            ) else {
                continue;
            };
            let cp = OldCheckpoint { number, lsn, offset };
            if crc32c(block) == stored && old_checkpoint.is_none_or(|o: OldCheckpoint| number >= o.number) {
                old_checkpoint = Some(cp);
            }
        }
        if old_checkpoint.is_none() {
            state = RedoState::NoValidCheckpoint;
        }
    }
    Ok(RedoHeader {
        format_id,
        format,
        encrypted,
        creator,
        creator_version,
        start_lsn,
        header_crc_ok,
        state,
        old_checkpoint,
    })
}

/// The decoded `aria_log_control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriaControl {
    /// Format version (byte 3).
    pub version: u8,
    /// Block size.
    pub block_size: u16,
    /// Consecutive failed recoveries.
    pub recovery_failures: u8,
    /// Whether both CRC-32s matched.
    pub checksums_ok: bool,
}

/// Aria's control file magic.
pub const ARIA_MAGIC: [u8; 3] = [0xfe, 0xfe, 0x0c];
/// Offset of the failed-recovery counter in the changeable part.
pub const ARIA_RECOVERY_FAILURES_OFFSET: usize = 21;

/// Decodes `aria_log_control`.
pub fn parse_aria_control(bytes: &[u8]) -> Result<AriaControl, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let head = bytes.get(..26).ok_or(DecodeError::Truncated {
        need: 26,
        got: bytes.len(),
    })?;
    if head[..3] != ARIA_MAGIC {
        return Err(DecodeError::BadMagic(hex(&head[..3])));
    }
    let fixed = usize::from(u16::from_le_bytes([head[20], head[21]]));
    let changeable = usize::from(u16::from_le_bytes([head[22], head[23]]));
    let block_size = u16::from_le_bytes([head[24], head[25]]);
    if fixed < 30 || changeable <= ARIA_RECOVERY_FAILURES_OFFSET {
        return Err(DecodeError::BadSize(format!(
            "fixed part {fixed}, changeable part {changeable}"
        )));
    }
    let need = fixed + changeable;
    if bytes.len() < need {
        return Err(DecodeError::Truncated {
            need,
            got: bytes.len(),
        });
    }
    let stored_fixed = u32::from_le_bytes([bytes[26], bytes[27], bytes[28], bytes[29]]);
    let ch = &bytes[fixed..need];
    let stored_ch = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
    let checksums_ok = crc32(&bytes[..26]) == stored_fixed && crc32(&ch[4..]) == stored_ch;
    Ok(AriaControl {
        version: head[3],
        block_size,
        recovery_failures: ch[ARIA_RECOVERY_FAILURES_OFFSET],
        checksums_ok,
    })
}

/// The server version and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// The version.
    pub version: Version,
    /// Where it was read (`mariadbd --version`, `image mariadb:10.11`, …).
    pub source: String,
}

/// The version in `mariadbd --version` output
/// (`mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu …`).
pub fn parse_mariadbd_version(output: &str) -> Option<Version> {
    let after = output.split_once(" Ver ").map_or(output, |(_, r)| r);
    Version::find(after)
}

/// The version of an image reference (`mariadb:10.11`, `mariadb:10.11.6-jammy`,
/// `…/mariadb:11.4@sha256:…`); `None` for `latest` and tags without one.
pub fn parse_image_tag(image: &str) -> Option<Version> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let (_, tag) = last.split_once(':')?;
    Version::find(tag).filter(|_| tag.starts_with(|c: char| c.is_ascii_digit()))
}

/// What was read from a data directory; each with where it was read.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The data directory.
    pub datadir: String,
    /// The upgrade-info file: its path and what decoding it gave.
    pub upgrade_info: Option<(String, Result<UpgradeInfo, DecodeError>)>,
    /// `ib_logfile0`.
    pub redo: Option<(String, Result<RedoHeader, DecodeError>)>,
    /// `aria_log_control`.
    pub aria: Option<(String, Result<AriaControl, DecodeError>)>,
    /// The server version, when known.
    pub server: Option<ServerVersion>,
    /// A server running on this data directory now, as evidence (its
    /// redo log is then in use: a checkpoint behind the end is normal).
    pub server_running: Option<String>,
}

fn f(id: &'static str, sev: Severity, subject: &str, message: impl Into<String>) -> Finding {
    Finding::new(id, Area::Mariadb, sev, subject, message)
}

/// The findings of a data directory: decode errors, the version it was last
/// written by against the server's, the redo log's shutdown state, Aria's
/// failed recoveries.
pub fn classify(o: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let dir = o.datadir.as_str();
    let mut ev: Vec<String> = Vec::new();
    let mut data: Option<Version> = None;
    let mut mysql8 = false;

    let unreadable = |out: &mut Vec<Finding>, file: &str, path: &str, e: &DecodeError| {
        out.push(
            f("mariadb.datadir.unreadable-file", Severity::Warning, path, format!("{file} could not be decoded: {e}"))
                .fix(format!("check {path} by hand (`xxd {path} | head`); a damaged {file} needs the snapshot-first playbook before any version change"))
                .evidence(format!("{path}: {e}")),
        );
    };

    match &o.upgrade_info {
        Some((path, Ok(u))) => {
            ev.push(format!("{path}: {:?}", u.text));
            if u.mariadb {
                data = Some(u.version);
            } else if u.version.major >= 8 {
                mysql8 = true;
            }
        }
        Some((path, Err(e))) => unreadable(&mut out, "the upgrade-info file", path, e),
        None => {}
    }
    let mut redo_state = RedoState::NotDetermined;
    let mut redo_format = None;
    match &o.redo {
        Some((path, Ok(r))) => {
            ev.push(format!(
                "{path}: format {}, creator {:?}{}",
                r.format.describe(),
                r.creator,
                if r.encrypted { ", encrypted" } else { "" }
            ));
            redo_state = r.state;
            redo_format = Some(r.format);
            if let Some(v) = r.creator_version {
                data = Some(data.map_or(v, |d| Version::newest(d, v)));
            }
            if let Some((ma, mi)) = r.format.min_series() {
                let floor = Version {
                    major: ma,
                    minor: mi,
                    patch: None,
                };
                if data.is_none_or(|d| d.series() < floor.series()) {
                    data = Some(floor);
                }
            }
            if matches!(r.format, RedoFormat::Mysql8(_)) || r.creator.starts_with("MySQL 8") {
                mysql8 = true;
            }
            if r.header_crc_ok == Some(false) {
                out.push(
                    f(
                        "mariadb.redo.checksum",
                        Severity::Warning,
                        path,
                        "the redo log header's CRC-32C does not match",
                    )
                    .fix("the header was damaged or edited: snapshot the data directory before any start")
                    .evidence(format!("{path}: header block CRC mismatch")),
                );
            }
            if r.encrypted {
                out.push(
                    f(
                        "mariadb.redo.encrypted",
                        Severity::Info,
                        path,
                        "the redo log is encrypted",
                    )
                    .evidence(format!("{path}: format id 0x{:08x}", r.format_id)),
                );
            }
            match r.state {
                RedoState::Dirty { checkpoint, end } if o.server_running.is_some() => out.push(
                    f(
                        "mariadb.redo.in-use",
                        Severity::Info,
                        path,
                        "the server is running, so its redo log is in use (the shutdown state can only be judged while it is stopped)",
                    )
                    .evidence(format!("{path}: checkpoint LSN {checkpoint}, end LSN {end}"))
                    .evidence(o.server_running.clone().unwrap_or_default()),
                ),
                RedoState::Dirty { checkpoint, end } => out.push(
                    f(
                        "mariadb.redo.unclean-shutdown",
                        Severity::Warning,
                        path,
                        "the server did not shut down cleanly: crash recovery is pending",
                    )
                    .fix("start the same MariaDB version that wrote it once and shut it down cleanly before any upgrade or downgrade")
                    .evidence(format!("{path}: checkpoint LSN {checkpoint}, end LSN {end}")),
                ),
                RedoState::LogAfterCheckpoint { checkpoint, offset, data_len } if o.server_running.is_some() => out.push(
                    f(
                        "mariadb.redo.in-use",
                        Severity::Info,
                        path,
                        "the server is running, so its redo log is in use (the shutdown state can only be judged while it is stopped)",
                    )
                    .evidence(format!("{path}: checkpoint LSN {checkpoint} at offset {offset}, block data length {data_len}"))
                    .evidence(o.server_running.clone().unwrap_or_default()),
                ),
                RedoState::LogAfterCheckpoint { checkpoint, offset, data_len } => out.push(
                    f(
                        "mariadb.redo.unclean-shutdown",
                        Severity::Warning,
                        path,
                        "the server did not shut down cleanly: the redo log holds records after its last checkpoint",
                    )
                    .fix("start the same MariaDB version that wrote it once and shut it down cleanly before any upgrade or downgrade (10.8 and later refuse: \"Upgrade after a crash is not supported\")")
                    .evidence(format!(
                        "{path}: checkpoint LSN {checkpoint} at offset {offset} (position {} in its block), block data length {data_len}",
                        offset & 511
                    )),
                ),
                RedoState::BlockCorrupt { offset } => out.push(
                    f("mariadb.redo.no-checkpoint", Severity::Warning, path, "the redo log block at the last checkpoint has a bad checksum")
                        .fix("the redo log is damaged: snapshot the data directory first, then start the version that wrote it")
                        .evidence(format!("{path}: CRC-32C mismatch in the block at log offset {offset}")),
                ),
                RedoState::NoValidCheckpoint => out.push(
                    f("mariadb.redo.no-checkpoint", Severity::Warning, path, "no checkpoint block of the redo log has a valid checksum")
                        .fix("the redo log is damaged: snapshot the data directory first, then start the version that wrote it")
                        .evidence(format!(
                            "{path}: CRC-32C mismatch at {}",
                            if r.format == RedoFormat::Phys10_8 { "4096 and 8192" } else { "512 and 1536" }
                        )),
                ),
                _ => {}
            }
        }
        Some((path, Err(e))) => unreadable(&mut out, "ib_logfile0", path, e),
        None => {}
    }
    let mut aria_failed = false;
    match &o.aria {
        Some((path, Ok(a))) => {
            ev.push(format!("{path}: {} failed recoveries", a.recovery_failures));
            if a.recovery_failures > 0 {
                aria_failed = true;
                out.push(
                    f(
                        "mariadb.aria.recovery-failed",
                        Severity::Fail,
                        path,
                        format!("Aria's last {} recovery attempt(s) failed", a.recovery_failures),
                    )
                    .fix("snapshot the data directory, then start the MariaDB version that last wrote it and read its error log; check Aria tables with aria_chk on the snapshot")
                    .evidence(format!("{path}: recovery failures = {}", a.recovery_failures)),
                );
            }
            if !a.checksums_ok {
                out.push(
                    f("mariadb.aria.checksum", Severity::Warning, path, "aria_log_control's CRC-32 does not match")
                        .fix("the control file was damaged or edited: snapshot the data directory before any start")
                        .evidence(format!("{path}: CRC mismatch")),
                );
            }
        }
        Some((path, Err(e))) => unreadable(&mut out, "aria_log_control", path, e),
        None => {}
    }
    if o.upgrade_info.is_none() && o.redo.is_none() && o.aria.is_none() {
        out.push(
            f(
                "mariadb.datadir.not-a-datadir",
                Severity::Warning,
                dir,
                "no MariaDB data-directory files found",
            )
            .fix("pass the directory holding ib_logfile0 and mysql_upgrade_info with --datadir")
            .evidence(format!(
                "{dir}: no mysql_upgrade_info, mariadb_upgrade_info, ib_logfile0 or aria_log_control"
            )),
        );
        return out;
    }
    if mysql8 {
        let mut x = f(
            "mariadb.datadir.mysql8",
            Severity::Fail,
            dir,
            "the data directory was written by MySQL 8, which MariaDB cannot open",
        )
        .fix("run the MySQL 8 image that wrote it; migrate to MariaDB by dump and restore, never in place");
        x.evidence = ev;
        out.push(x);
        return out;
    }
    let Some(data) = data else {
        let mut x = f(
            "mariadb.datadir.version-unknown",
            Severity::Info,
            dir,
            "which version wrote the data directory could not be read",
        );
        x.evidence = ev;
        if x.evidence.is_empty() {
            x.evidence.push(format!(
                "{dir}: no version-bearing file could be decoded (see above)"
            ));
        }
        out.push(x);
        return out;
    };
    let Some(server) = &o.server else {
        let mut x = f(
            "mariadb.server.version-unknown",
            Severity::Info,
            dir,
            format!("the data directory was last written by MariaDB {data}; the server version is unknown, so it was not compared"),
        )
        .fix("pass --server-version (e.g. the image tag's version) or make mariadbd or the Docker API reachable");
        x.evidence = ev;
        out.push(x);
        return out;
    };
    let s = server.version;
    ev.push(format!("server: MariaDB {s} ({})", server.source));
    let format_too_new = redo_format
        .and_then(RedoFormat::min_series)
        .is_some_and(|m| m > s.series());
    let unclean = (matches!(
        redo_state,
        RedoState::Dirty { .. } | RedoState::LogAfterCheckpoint { .. }
    ) && o.server_running.is_none())
        || aria_failed;
    let playbook = |id, sev, msg: String| {
        let mut x = f(id, sev, dir, msg);
        x.evidence = ev.clone();
        x
    };
    if data.series() > s.series() || format_too_new {
        out.push(
            playbook(
                "mariadb.datadir.newer-than-server",
                Severity::Fail,
                format!(
                    "the data directory was written by MariaDB {data}, newer than the server's {s}: a downgrade, which MariaDB does not support (the entrypoint's \"upgrade not required\" does not mean compatible)"
                ),
            )
            .fix(RECOVERY_PLAYBOOK),
        );
        return out;
    }
    match data.compare(&s) {
        Some(Ordering::Greater) => out.push(
            playbook(
                "mariadb.datadir.newer-patch",
                Severity::Warning,
                format!("the data directory was written by MariaDB {data}, a newer patch level than the server's {s}"),
            )
            .fix(format!("run {data} or later of the same series (pin the image tag to it); {RECOVERY_PLAYBOOK}")),
        ),
        Some(Ordering::Less) => {
            let series_upgrade = data.series() < s.series();
            let format_change = redo_format.is_some_and(|fm| fm != RedoFormat::of_server(s.series()));
            if unclean && (series_upgrade || format_change) {
                out.push(
                    playbook(
                        "mariadb.datadir.upgrade-after-crash",
                        Severity::Fail,
                        format!("an upgrade from MariaDB {data} to {s} is pending but the data directory was not shut down cleanly: MariaDB refuses an upgrade after a crash"),
                    )
                    .fix(format!("start MariaDB {data} on the data directory, let it recover, shut it down cleanly, then start {s} and run mariadb-upgrade; {RECOVERY_PLAYBOOK}")),
                );
            } else {
                let undetermined = format_change && redo_state == RedoState::NotDetermined;
                let sev = if series_upgrade { Severity::Warning } else { Severity::Info };
                let mut msg = format!("the data directory was last upgraded by MariaDB {data}; the server is {s}: mariadb-upgrade is pending");
                if undetermined {
                    msg.push_str("; whether the old version shut down cleanly could not be read from its redo format");
                }
                out.push(
                    playbook("mariadb.datadir.upgrade-pending", sev, msg).fix(
                        "snapshot the data directory, make sure the old version was shut down cleanly, start the server and run `mariadb-upgrade` (the official image does this with MARIADB_AUTO_UPGRADE=1)",
                    ),
                );
            }
        }
        _ => {
            let mut x = playbook(
                "mariadb.datadir.consistent",
                Severity::Pass,
                format!("the data directory (MariaDB {data}) matches the server ({s})"),
            );
            if unclean {
                x.message.push_str("; crash recovery is pending (see above)");
            }
            out.push(x);
        }
    }
    out
}

/// What a line of a MariaDB error log says went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCause {
    /// "InnoDB: Unsupported redo log format. The redo log was created with X."
    UnsupportedRedoFormat {
        /// The creator named (`MariaDB 10.5.4`).
        created_with: Option<String>,
    },
    /// "InnoDB: Upgrade after a crash is not supported. …"
    UpgradeAfterCrash {
        /// The creator named.
        created_with: Option<String>,
    },
    /// "InnoDB: Downgrade after a crash is not supported. …", "A downgrade
    /// from MariaDB 10.2.2 or later is not supported."
    Downgrade {
        /// The creator named.
        created_with: Option<String>,
    },
    /// A MySQL 8 data directory (tablespace, data dictionary, `mysql.ibd`).
    Mysql8,
    /// Follow-on symptom: system tables missing or of another version.
    SystemTables,
    /// Follow-on symptom: InnoDB failed to start, the server aborts.
    EngineFailed,
}

impl LogCause {
    /// Whether this is a symptom of an earlier cause rather than a cause.
    pub fn is_follow_on(&self) -> bool {
        matches!(self, LogCause::SystemTables | LogCause::EngineFailed)
    }
}

fn created_with(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("created with ")?;
    let end = rest.find(". ").unwrap_or(rest.len());
    let v: String = rest[..end].trim_end_matches('.').chars().take(64).collect();
    (!v.is_empty()).then_some(v)
}

/// The official image's entrypoint note that must never be read as "compatible".
pub const UPGRADE_NOT_REQUIRED: &str = "MariaDB upgrade not required";

/// Classifies one log line; `None` when it says nothing this check knows.
pub fn classify_log_line(line: &str) -> Option<LogCause> {
    if line.contains("Unsupported redo log format") {
        let cw = created_with(line);
        if cw.as_deref().is_some_and(|c| c.starts_with("MySQL")) {
            return Some(LogCause::Mysql8);
        }
        return Some(LogCause::UnsupportedRedoFormat { created_with: cw });
    }
    if line.contains("Upgrade after a crash is not supported") {
        return Some(LogCause::UpgradeAfterCrash {
            created_with: created_with(line),
        });
    }
    if line.contains("Downgrade after a crash is not supported") || line.contains("A downgrade from MariaDB")
    {
        return Some(LogCause::Downgrade {
            created_with: created_with(line),
        });
    }
    let lower = line.to_ascii_lowercase();
    if lower.contains("mysql 8") && (lower.contains("tablespace") || lower.contains("dictionary"))
        || lower.contains("mysql-8.0 tablespace")
        || lower.contains("data dictionary initialization failed")
        || lower.contains("mysql.ibd")
    {
        return Some(LogCause::Mysql8);
    }
    if (line.contains("Table 'mysql.") && line.contains("doesn't exist"))
        || line.contains("Could not open mysql.plugin table")
        || (line.contains("Column count of mysql.") && line.contains("is wrong"))
        || line.contains("mysql.user table is damaged")
    {
        return Some(LogCause::SystemTables);
    }
    if line.contains("Plugin 'InnoDB' init function returned error")
        || line.contains("Unknown/unsupported storage engine: InnoDB")
        || line.contains("Plugin initialization aborted")
    {
        return Some(LogCause::EngineFailed);
    }
    None
}

/// A classified log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 1-based line number in what was read.
    pub line_no: usize,
    /// What it says.
    pub cause: LogCause,
    /// The line (bounded).
    pub text: String,
}

/// What a MariaDB log says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDiagnosis {
    /// The first line naming a cause (not a follow-on symptom).
    pub first_fatal: Option<LogLine>,
    /// Follow-on symptoms (the first few).
    pub follow_on: Vec<LogLine>,
    /// Line number of the last "MariaDB upgrade not required".
    pub upgrade_not_required: Option<usize>,
    /// Lines read.
    pub lines: usize,
}

/// Most follow-on lines kept.
const MAX_FOLLOW_ON: usize = 5;

/// Reads a log's lines and finds its first fatal line.
pub fn diagnose_log<'a>(lines: impl IntoIterator<Item = &'a str>) -> LogDiagnosis {
    let mut d = LogDiagnosis::default();
    for (i, line) in lines.into_iter().enumerate() {
        d.lines = i + 1;
        if line.contains(UPGRADE_NOT_REQUIRED) {
            d.upgrade_not_required = Some(i + 1);
        }
        let Some(cause) = classify_log_line(line) else {
            continue;
        };
        let l = LogLine {
            line_no: i + 1,
            cause,
            text: printable(line.as_bytes()),
        };
        if l.cause.is_follow_on() {
            if d.follow_on.len() < MAX_FOLLOW_ON {
                d.follow_on.push(l);
            }
        } else if d.first_fatal.is_none() {
            d.first_fatal = Some(l);
        }
    }
    d
}

/// The findings of a log diagnosis; `source` names the log.
pub fn log_findings(d: &LogDiagnosis, source: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let ev = |l: &LogLine| format!("{source}:{}: {}", l.line_no, l.text);
    if let Some(l) = &d.first_fatal {
        let cw = |c: &Option<String>| c.clone().unwrap_or_else(|| "another version".into());
        let (id, msg, fix) = match &l.cause {
            LogCause::UnsupportedRedoFormat { created_with } => (
                "mariadb.log.unsupported-redo-format",
                format!(
                    "the server cannot read the redo log written by {}: the data directory is newer than the server (a downgrade)",
                    cw(created_with)
                ),
                RECOVERY_PLAYBOOK.to_owned(),
            ),
            LogCause::UpgradeAfterCrash { created_with } => (
                "mariadb.log.upgrade-after-crash",
                format!(
                    "the server refuses to upgrade a data directory {} left after a crash",
                    cw(created_with)
                ),
                format!(
                    "start the version that wrote it, let it recover and shut down cleanly, then upgrade; {RECOVERY_PLAYBOOK}"
                ),
            ),
            LogCause::Downgrade { created_with } => (
                "mariadb.log.downgrade",
                format!("the server refuses a downgrade from {}", cw(created_with)),
                RECOVERY_PLAYBOOK.to_owned(),
            ),
            _ => (
                "mariadb.log.mysql8-datadir",
                "the data directory belongs to MySQL 8, which MariaDB cannot open".to_owned(),
                "run the MySQL image that wrote it; migrate to MariaDB by dump and restore".to_owned(),
            ),
        };
        let mut x = f(id, Severity::Fail, source, msg).fix(fix).evidence(ev(l));
        for s in &d.follow_on {
            x = x.evidence(format!("follow-on: {}", ev(s)));
        }
        out.push(x);
    } else if let Some(first) = d.follow_on.first() {
        let mut x = f(
            "mariadb.log.follow-on-errors",
            Severity::Warning,
            source,
            "the log shows InnoDB or system-table failures but not their cause in what was read; they usually follow a version mismatch",
        )
        .fix("read the log from the server's start for the first InnoDB [ERROR]; compare the data directory with `mailwarden doctor mariadb --datadir DIR`")
        .evidence(ev(first));
        for s in &d.follow_on[1..] {
            x = x.evidence(ev(s));
        }
        out.push(x);
    }
    if let Some(n) = d.upgrade_not_required {
        out.push(
            f(
                "mariadb.log.upgrade-not-required-is-not-compatible",
                Severity::Info,
                source,
                "the entrypoint printed \"MariaDB upgrade not required\"; it prints that for a newer (downgraded) data directory too, so it says nothing about compatibility",
            )
            .evidence(format!("{source}:{n}: {UPGRADE_NOT_REQUIRED}")),
        );
    }
    if out.is_empty() || (d.first_fatal.is_none() && d.follow_on.is_empty()) {
        out.push(
            f(
                "mariadb.log.no-fatal-line",
                Severity::Pass,
                source,
                format!("no version or recovery error in {} lines", d.lines),
            )
            .evidence(format!("{source}: {} lines read", d.lines)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::find(s).unwrap_or_else(|| panic!("no version in {s}"))
    }

    #[test]
    fn versions_parse_and_order() {
        for (s, want) in [
            ("10.11.6-MariaDB", "10.11.6"),
            ("10.11.19-MariaDB\0\0\n", "10.11.19"),
            (
                "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu",
                "10.11.19",
            ),
            ("1:10.11.6+maria~ubu2204", "10.11.6"),
            ("MariaDB 10.5.4", "10.5.4"),
            ("10.11", "10.11"),
        ] {
            assert_eq!(v(s).to_string(), want, "{s}");
        }
        assert_eq!(Version::find("x86_64 no version"), None);
        assert_eq!(Version::find("10"), None);
        assert!(v("10.11.2").compare(&v("10.5.9")) == Some(Ordering::Greater));
        assert!(v("10.11.2").compare(&v("10.11.10")) == Some(Ordering::Less));
        assert_eq!(v("10.11").compare(&v("10.11.10")), None);
        assert_eq!(Version::newest(v("10.11"), v("10.11.6")), v("10.11.6"));
        assert_eq!(
            parse_mariadbd_version("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian"),
            Some(v("10.11.19"))
        );
        assert_eq!(parse_image_tag("mariadb:10.11"), Some(v("10.11")));
        assert_eq!(
            parse_image_tag("docker.io/library/mariadb:10.5.21-focal@sha256:ab"),
            Some(v("10.5.21"))
        );
        assert_eq!(parse_image_tag("mariadb:latest"), None);
        assert_eq!(parse_image_tag("localhost:5000/mariadb"), None);
    }

    #[test]
    fn upgrade_info_decodes() {
        let u = parse_upgrade_info(b"10.11.19-MariaDB").unwrap();
        assert_eq!((u.version, u.mariadb), (v("10.11.19"), true));
        assert_eq!(parse_upgrade_info(b" \0\n"), Err(DecodeError::Empty));
        assert!(matches!(
            parse_upgrade_info(b"garbage"),
            Err(DecodeError::NoVersion(_))
        ));
        assert!(!parse_upgrade_info(b"8.0.36").unwrap().mariadb);
    }

    /// A 10.8+ redo header as 10.11.19 writes it (layout verified, see module docs).
    pub(crate) fn redo(creator: &str, checkpoint: u64, end: u64) -> Vec<u8> {
        let mut b = vec![0u8; REDO_HEADER_BYTES];
        b[..4].copy_from_slice(b"Phys");
        b[8..16].copy_from_slice(&0x3000u64.to_be_bytes());
        b[16..16 + creator.len()].copy_from_slice(creator.as_bytes());
        let c = crc32c(&b[..508]);
        b[508..512].copy_from_slice(&c.to_be_bytes());
        for off in [4096, 8192] {
            b[off..off + 8].copy_from_slice(&checkpoint.to_be_bytes());
            b[off + 8..off + 16].copy_from_slice(&end.to_be_bytes());
            let c = crc32c(&b[off..off + 60]);
            b[off + 60..off + 64].copy_from_slice(&c.to_be_bytes());
        }
        b
    }

    #[test]
    fn redo_header_decodes() {
        let r = parse_redo_header(&redo("MariaDB 10.11.19", 0xad64, 0xad64)).unwrap();
        assert_eq!(r.format, RedoFormat::Phys10_8);
        assert_eq!(r.creator_version, Some(v("10.11.19")));
        assert_eq!(r.state, RedoState::Clean { lsn: 0xad64 });
        assert_eq!(r.header_crc_ok, Some(true));
        let d = parse_redo_header(&redo("MariaDB 10.11.19", 0xad74, 0xaec8)).unwrap();
        assert_eq!(
            d.state,
            RedoState::Dirty {
                checkpoint: 0xad74,
                end: 0xaec8
            }
        );
        let mut enc = redo("MariaDB 10.11.19", 1, 1);
        enc[0] |= 0x80;
        let e = parse_redo_header(&enc).unwrap();
        assert!(e.encrypted && e.format == RedoFormat::Phys10_8);
        let mut old = vec![0u8; 512];
        old[..4].copy_from_slice(b"PHYS");
        old[16..30].copy_from_slice(b"MariaDB 10.5.4");
        let o = parse_redo_header(&old).unwrap();
        assert_eq!(
            (o.format, o.state),
            (RedoFormat::Phys10_5, RedoState::NotDetermined)
        );
        assert_eq!(parse_redo_header(b""), Err(DecodeError::Empty));
        assert!(matches!(
            parse_redo_header(b"Phys"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut bad = redo("MariaDB 10.11.19", 5, 5);
        bad[4096] ^= 1;
        bad[8192] ^= 1;
        assert_eq!(
            parse_redo_header(&bad).unwrap().state,
            RedoState::NoValidCheckpoint
        );
    }

    #[test]
    fn old_format_checkpoints() {
        // A 10.4 log: two files of 48 MiB, checkpoint in the second one.
        let size = 48u64 << 20;
        let mut b = vec![0u8; 2048];
        b[..4].copy_from_slice(&104u32.to_be_bytes());
        b[16..30].copy_from_slice(b"MariaDB 10.4.3");
        let offset = size + 2048 + 700;
        for (off, n) in [(512usize, 7u64), (1536, 6)] {
            b[off..off + 8].copy_from_slice(&n.to_be_bytes());
            b[off + 8..off + 16].copy_from_slice(&(9000 + n).to_be_bytes());
            b[off + 16..off + 24].copy_from_slice(&offset.to_be_bytes());
            let c = crc32c(&b[off..off + 508]);
            b[off + 508..off + 512].copy_from_slice(&c.to_be_bytes());
        }
        let r = parse_redo_header(&b).unwrap();
        let cp = r.old_checkpoint.unwrap();
        assert_eq!((r.format, cp.number, cp.lsn), (RedoFormat::V10_4, 7, 9007));
        assert_eq!(cp.block_location(size), Some((1, 2048 + 512)));
        let mut block = vec![0u8; 512];
        block[4..6].copy_from_slice(&188u16.to_be_bytes());
        let c = crc32c(&block[..508]);
        block[508..].copy_from_slice(&c.to_be_bytes());
        assert_eq!(old_format_state(&cp, &block), RedoState::Clean { lsn: 9007 });
        block[4..6].copy_from_slice(&512u16.to_be_bytes());
        let c = crc32c(&block[..508]);
        block[508..].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(
            old_format_state(&cp, &block),
            RedoState::LogAfterCheckpoint { data_len: 512, .. }
        ));
        block[100] ^= 1;
        assert!(matches!(
            old_format_state(&cp, &block),
            RedoState::BlockCorrupt { .. }
        ));
        assert_eq!(old_format_state(&cp, &block[..10]), RedoState::NotDetermined);
        // Both checkpoint blocks damaged.
        b[600] ^= 1;
        b[1600] ^= 1;
        let r = parse_redo_header(&b).unwrap();
        assert_eq!((r.old_checkpoint, r.state), (None, RedoState::NoValidCheckpoint));
    }

    pub(crate) fn aria(failures: u8) -> Vec<u8> {
        let mut b = vec![0u8; 52];
        b[..4].copy_from_slice(&[0xfe, 0xfe, 0x0c, 1]);
        b[20..22].copy_from_slice(&30u16.to_le_bytes());
        b[22..24].copy_from_slice(&22u16.to_le_bytes());
        b[24..26].copy_from_slice(&8192u16.to_le_bytes());
        let c = crc32(&b[..26]);
        b[26..30].copy_from_slice(&c.to_le_bytes());
        b[30 + 21] = failures;
        let c = crc32(&b[34..52]);
        b[30..34].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn aria_control_decodes() {
        let a = parse_aria_control(&aria(3)).unwrap();
        assert_eq!(
            (a.recovery_failures, a.checksums_ok, a.block_size),
            (3, true, 8192)
        );
        let mut bad = aria(0);
        bad[51] = 1;
        assert!(!parse_aria_control(&bad).unwrap().checksums_ok);
        assert!(matches!(
            parse_aria_control(&aria(0)[..40]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            parse_aria_control(b"hello world, this is no aria file"),
            Err(DecodeError::BadMagic(_))
        ));
    }

    fn observed(info: &str, creator: &str, state: (u64, u64), failures: u8, server: &str) -> Observed {
        Observed {
            datadir: "/d".into(),
            upgrade_info: Some((
                "/d/mysql_upgrade_info".into(),
                parse_upgrade_info(info.as_bytes()),
            )),
            redo: Some((
                "/d/ib_logfile0".into(),
                parse_redo_header(&redo(creator, state.0, state.1)),
            )),
            aria: Some(("/d/aria_log_control".into(), parse_aria_control(&aria(failures)))),
            server: Version::find(server).map(|version| ServerVersion {
                version,
                source: "test".into(),
            }),
            server_running: None,
        }
    }

    #[test]
    fn a_running_server_uses_its_redo_log() {
        let mut o = observed(
            "10.11.6-MariaDB",
            "MariaDB 10.11.6",
            (0xad74, 0xaec8),
            0,
            "10.11.6",
        );
        let stopped = ids(&classify(&o));
        assert!(
            stopped.contains(&("mariadb.redo.unclean-shutdown", Severity::Warning)),
            "{stopped:?}"
        );
        o.server_running = Some("mariadbd (pid 42) runs on it".into());
        let running = ids(&classify(&o));
        assert!(
            running.contains(&("mariadb.redo.in-use", Severity::Info)),
            "{running:?}"
        );
        assert!(
            running.contains(&("mariadb.datadir.consistent", Severity::Pass)),
            "{running:?}"
        );
        assert!(
            !running
                .iter()
                .any(|(id, _)| id.contains("unclean") || id.contains("crash")),
            "{running:?}"
        );
    }

    fn ids(f: &[Finding]) -> Vec<(&'static str, Severity)> {
        f.iter().map(|x| (x.id, x.severity)).collect()
    }

    #[test]
    fn classification_table() {
        use Severity::*;
        type Case<'a> = (
            &'a str,
            &'a str,
            (u64, u64),
            u8,
            &'a str,
            &'a [(&'a str, Severity)],
        );
        let cases: &[Case] = &[
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 9),
                0,
                "10.11.19",
                &[("mariadb.datadir.consistent", Pass)],
            ),
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 9),
                0,
                "10.11",
                &[("mariadb.datadir.consistent", Pass)],
            ),
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 9),
                0,
                "10.5.4",
                &[("mariadb.datadir.newer-than-server", Fail)],
            ),
            (
                "10.5.4-MariaDB",
                "MariaDB 10.11.2",
                (9, 9),
                0,
                "10.5.4",
                &[("mariadb.datadir.newer-than-server", Fail)],
            ),
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 9),
                0,
                "10.11.6",
                &[("mariadb.datadir.newer-patch", Warning)],
            ),
            (
                "10.11.2-MariaDB",
                "MariaDB 10.11.2",
                (9, 9),
                0,
                "10.11.19",
                &[("mariadb.datadir.upgrade-pending", Info)],
            ),
            (
                "10.8.2-MariaDB",
                "MariaDB 10.8.2",
                (9, 9),
                0,
                "11.4.2",
                &[("mariadb.datadir.upgrade-pending", Warning)],
            ),
            (
                "10.8.2-MariaDB",
                "MariaDB 10.8.2",
                (9, 12),
                0,
                "11.4.2",
                &[
                    ("mariadb.redo.unclean-shutdown", Warning),
                    ("mariadb.datadir.upgrade-after-crash", Fail),
                ],
            ),
            (
                "10.8.2-MariaDB",
                "MariaDB 10.8.2",
                (9, 9),
                2,
                "11.4.2",
                &[
                    ("mariadb.aria.recovery-failed", Fail),
                    ("mariadb.datadir.upgrade-after-crash", Fail),
                ],
            ),
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 12),
                0,
                "10.11.19",
                &[
                    ("mariadb.redo.unclean-shutdown", Warning),
                    ("mariadb.datadir.consistent", Pass),
                ],
            ),
            (
                "10.11.19-MariaDB",
                "MariaDB 10.11.19",
                (9, 9),
                0,
                "",
                &[("mariadb.server.version-unknown", Info)],
            ),
        ];
        for (info, creator, st, fails, server, want) in cases {
            let got = classify(&observed(info, creator, *st, *fails, server));
            assert_eq!(
                ids(&got),
                want.to_vec(),
                "{info} {creator} {st:?} {fails} {server}: {got:#?}"
            );
        }
        let down = classify(&observed(
            "10.11.19-MariaDB",
            "MariaDB 10.11.19",
            (9, 9),
            0,
            "10.5.4",
        ));
        assert_eq!(down[0].fix.as_deref(), Some(RECOVERY_PLAYBOOK));
        assert!(
            down[0].evidence.iter().any(|e| e.contains("/d/ib_logfile0")),
            "{down:?}"
        );
        let empty = Observed {
            datadir: "/e".into(),
            ..Observed::default()
        };
        assert_eq!(
            ids(&classify(&empty)),
            vec![("mariadb.datadir.not-a-datadir", Severity::Warning)]
        );
    }

    /// Real lines: the 10.11.19 binary's format strings (`strings mariadbd`)
    /// and lines quoted in public bug reports (bitnami/charts#3028,
    /// devilbox#911, DietPi#4899, itop-docker#50, lando#3463, ddev#615).
    #[test]
    fn real_log_lines_classify() {
        let cases: &[(&str, Option<LogCause>)] = &[
            (
                "2020-07-07  6:52:42 0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.5.4.",
                Some(LogCause::UnsupportedRedoFormat {
                    created_with: Some("MariaDB 10.5.4".into()),
                }),
            ),
            (
                "[ERROR] InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.6.18. You must start up and shut down MariaDB 10.7 or earlier.",
                Some(LogCause::UpgradeAfterCrash {
                    created_with: Some("MariaDB 10.6.18".into()),
                }),
            ),
            (
                "Oct 30 22:05:27 DietPi mariadbd[43211]: 2021-10-30 22:05:27 0 [ERROR] InnoDB: Upgrade after a crash is not supported. The redo log was created with MariaDB 10.3.27.",
                Some(LogCause::UpgradeAfterCrash {
                    created_with: Some("MariaDB 10.3.27".into()),
                }),
            ),
            (
                "InnoDB: Downgrade after a crash is not supported. The redo log was created with MariaDB 10.4.17.",
                Some(LogCause::Downgrade {
                    created_with: Some("MariaDB 10.4.17".into()),
                }),
            ),
            (
                "InnoDB: A downgrade from MariaDB 10.2.2 or later is not supported.",
                Some(LogCause::Downgrade { created_with: None }),
            ),
            (
                "[ERROR] InnoDB: Unsupported redo log format. The redo log was created with MySQL 8.0.32.",
                Some(LogCause::Mysql8),
            ),
            (
                "2021-10-30 22:05:27 0 [ERROR] Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\". Some plugins may be not loaded",
                Some(LogCause::SystemTables),
            ),
            (
                "2021-10-30 22:05:27 0 [ERROR] Plugin 'InnoDB' init function returned error.",
                Some(LogCause::EngineFailed),
            ),
            (
                "2021-10-30 22:05:27 0 [ERROR] Unknown/unsupported storage engine: InnoDB",
                Some(LogCause::EngineFailed),
            ),
            (
                "2024-06-10 19:39:20+00:00 [Note] [Entrypoint]: MariaDB upgrade not required",
                None,
            ),
            (
                "2026-12-05  4:59:17 0 [Note] mariadbd: ready for connections.",
                None,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&classify_log_line(line), want, "{line}");
        }
    }

    #[test]
    fn log_diagnosis_and_findings() {
        let log = "2024-06-10 19:39:20+00:00 [Note] [Entrypoint]: MariaDB upgrade not required\n\
            2021-10-30 22:05:27 0 [ERROR] Plugin 'InnoDB' init function returned error.\n\
            2021-10-30 22:05:27 0 [ERROR] InnoDB: Unsupported redo log format. The redo log was created with MariaDB 10.11.6.\n\
            2021-10-30 22:05:27 0 [ERROR] Unknown/unsupported storage engine: InnoDB\n";
        let d = diagnose_log(log.lines());
        assert_eq!(d.first_fatal.as_ref().map(|l| l.line_no), Some(3));
        assert_eq!(d.follow_on.len(), 2);
        let f = log_findings(&d, "log");
        assert_eq!(
            ids(&f),
            vec![
                ("mariadb.log.unsupported-redo-format", Severity::Fail),
                (
                    "mariadb.log.upgrade-not-required-is-not-compatible",
                    Severity::Info
                )
            ]
        );
        assert_eq!(f[0].fix.as_deref(), Some(RECOVERY_PLAYBOOK));
        let only_note = diagnose_log(["[Note] [Entrypoint]: MariaDB upgrade not required"]);
        let ids2 = ids(&log_findings(&only_note, "x"));
        assert!(
            ids2.iter().all(|(_, s)| *s != Severity::Pass || ids2.len() > 1),
            "{ids2:?}"
        );
        assert!(!ids2.iter().any(|(id, _)| *id == "mariadb.datadir.consistent"));
        assert_eq!(
            ids(&log_findings(&diagnose_log(["ok"]), "x")),
            vec![("mariadb.log.no-fatal-line", Severity::Pass)]
        );
        let follow = diagnose_log([
            "[ERROR] Could not open mysql.plugin table: \"Table 'mysql.plugin' doesn't exist\"",
        ]);
        assert_eq!(
            ids(&log_findings(&follow, "x")),
            vec![("mariadb.log.follow-on-errors", Severity::Warning)]
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..13000)) {
            let _ = parse_upgrade_info(&bytes);
            let _ = parse_redo_header(&bytes);
            let _ = parse_aria_control(&bytes);
            let s = String::from_utf8_lossy(&bytes);
            let _ = Version::find(&s);
            let _ = parse_image_tag(&s);
            let _ = log_findings(&diagnose_log(s.lines()), "p");
        }

        #[test]
        fn truncated_real_layouts_never_panic(cut in 0usize..12288, failures in any::<u8>()) {
            let r = redo("MariaDB 10.11.19", 7, 7);
            let _ = parse_redo_header(&r[..cut]);
            let a = aria(failures);
            let _ = parse_aria_control(&a[..cut.min(a.len())]);
            prop_assert_eq!(parse_aria_control(&a).map(|x| x.recovery_failures), Ok(failures));
        }

        #[test]
        fn version_order_is_consistent(a in (0u32..20, 0u32..20, 0u32..40), b in (0u32..20, 0u32..20, 0u32..40)) {
            let x = Version::new(a.0, a.1, a.2);
            let y = Version::new(b.0, b.1, b.2);
            prop_assert_eq!(x.compare(&y), Some(a.cmp(&b)));
            prop_assert_eq!(Version::find(&format!("{x}-MariaDB")), Some(x));
        }
    }
}

//! Collectors: long-running sources of log lines (followed files, Docker
//! containers, Mailcow's Redis lists and channel, a syslog listener).
//!
//! Every collector turns its source into [`SourceRecord`]s sent over a bounded
//! channel (backpressure: a collector waits when the ingest side is behind, it
//! never buffers without bound). Each record carries the collector's position
//! *after* that record as a [`Checkpoint`]; the ingest side stores the data and
//! the checkpoint in one transaction, so a restart resumes exactly after the
//! last stored record: nothing lost, nothing stored twice.
//!
//! Collectors never parse: framing and parsing happen once, in the ingest
//! stage, with the same code as `mailwarden logs`.

pub mod docker;
pub mod file;
pub mod redis;
pub mod syslog;

use std::sync::Arc;

use mailwarden_core::framing::Format;
use mailwarden_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One raw line from a source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// Stable name of the source, also the checkpoint key: `file:/var/log/mail.log`,
    /// `docker:<container name>`, `redis:POSTFIX_MAILLOG`, `syslog:tcp:127.0.0.1:5514`.
    pub source: Arc<str>,
    /// The line as read (lossily decoded UTF-8, bounded by the collector's limit;
    /// without its line terminator).
    pub line: String,
    /// Whether the collector had to cut the line at its limit.
    pub truncated: bool,
    /// How to frame it (`Auto` unless the source knows better).
    pub format: Format,
    /// Program to assume when the framing has none (a container's service, a
    /// Redis list's program).
    pub program_hint: Option<Arc<str>>,
    /// When the collector received it; the year reference for year-less stamps.
    pub received: Timestamp,
    /// The collector's position after this record, to resume from.
    pub checkpoint: Checkpoint,
}

/// Where a collector is in its source, persisted with the data it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Checkpoint {
    /// A followed file: identity (device, inode, a hash of its first bytes) and
    /// the byte offset after the last complete line consumed.
    File {
        /// Device number.
        dev: u64,
        /// Inode number.
        inode: u64,
        /// FNV-1a hash of the file's first `head_len` bytes (detects a
        /// truncated-and-rewritten or replaced file with a reused inode).
        head_hash: u64,
        /// How many bytes `head_hash` covers (up to 1024; fewer for a short file).
        head_len: u32,
        /// Offset after the last consumed line.
        offset: u64,
    },
    /// A Docker container's log stream: the timestamp (ns since the epoch) of
    /// the last line consumed, and how many lines carried exactly that stamp
    /// (Docker's `since` is inclusive).
    Docker {
        /// Container id.
        container_id: String,
        /// Nanoseconds since the epoch of the last consumed line.
        #[serde(with = "nanos_as_i64")]
        last_nanos: i128,
        /// Lines already consumed that carry `last_nanos`.
        same_stamp_seen: u32,
    },
    /// A Mailcow Redis list: entries have no ids, so the position is the hash
    /// and time of the newest entry consumed, plus how many identical entries
    /// with that time were consumed.
    RedisList {
        /// FNV-1a hash of the newest consumed entry's bytes.
        newest_hash: u64,
        /// Its `time` field (seconds).
        newest_time: i64,
        /// How many consecutive identical entries ending at the newest were consumed.
        run: u32,
    },
    /// Live-only sources (the Redis channel, a syslog listener): nothing to resume.
    None,
}

/// Checkpoints are stored as JSON and read back through serde's internally
/// tagged enum path, which cannot carry `i128`: nanosecond stamps are written
/// as `i64` (enough until the year 2262).
mod nanos_as_i64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(*v).unwrap_or(if *v < 0 { i64::MIN } else { i64::MAX }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        i64::deserialize(d).map(i128::from)
    }
}

/// FNV-1a, 64 bit: a fixed, dependency-free hash for checkpoints, which must
/// stay stable across versions (std's hashers are not).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn checkpoints_roundtrip_as_json() {
        let c = Checkpoint::File {
            dev: 2049,
            inode: 42,
            head_hash: 7,
            head_len: 1024,
            offset: 100,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&s).unwrap(), c);
        assert!(s.contains("\"kind\":\"file\""));
        // A Docker stamp in nanoseconds (2026) survives the tagged-enum path.
        let d = Checkpoint::Docker {
            container_id: "abc".into(),
            last_nanos: 1_796_378_400_000_000_001,
            same_stamp_seen: 1,
        };
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&s).unwrap(), d);
    }
}

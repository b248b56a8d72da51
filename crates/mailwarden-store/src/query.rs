//! Reading the store: searches, replay, the forwarder's feed, checkpoints.
//!
//! Every query visits day files oldest first. Indexable criteria become key
//! ranges (module `keys`) that SQLite intersects; each candidate is then
//! decoded and confirmed with the core's own matcher
//! ([`SearchQuery::matches_record`], or [`SearchQuery::matches_event`] on the
//! line re-parsed with [`parse_framed`]), so a store search returns exactly
//! what a search of the same lines in files returns. Results come in store
//! order (day, then insertion) and stop at `limit`.
//!
//! Readers beside a writer see complete batches only: each day file is read up
//! to the highest row of the last complete batch (see the crate docs).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mailwarden_core::event::{Event, Position, Severity, UnparsedReason};
use mailwarden_core::framing::Framed;
use mailwarden_core::parse::{Family, parse_framed, unparsed_event};
use mailwarden_core::search::SearchQuery;
use mailwarden_core::stitch::MessageRecord;
use mailwarden_core::time::{Date, Timestamp};
use rusqlite::{Connection, Row, params_from_iter};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::batch::{decode_field, family_of_code, reason_of_code};
use crate::day::{date_of, day_of, day_of_date, list_days, parse_date};
use crate::error::{SqlCtx, StoreError};
use crate::keys::{KeyRange, TAG_QUEUE_ID, query_ranges};
use crate::store::{Inner, Store};

/// The columns every line query selects, in [`LineView::from_row`]'s order.
const LINE_COLS: &str = "id, src, ts, tz, recv, recv_tz, raw, host, prog, pid, sev, fam, msg, unparsed";

/// One line as replayed: the raw text and its framing rebuilt exactly, so
/// that [`ReplayLine::event`] (that is, `parse_framed`) gives the event the
/// line gave when it was stored.
#[derive(Clone, Debug)]
pub struct ReplayLine<'a> {
    /// `source`: the source's id in this store; `line`: 1-based count of the
    /// source's lines in this replay.
    pub position: Position,
    /// The source name (`file:/var/log/mail.log`, …).
    pub source: &'a str,
    /// The line as read.
    pub raw: &'a str,
    /// When the collector received it.
    pub received: Timestamp,
    /// The framing; `None` when the line could not be framed (then
    /// `unparsed` says why).
    pub framed: Option<Framed<'a>>,
    /// The unparsed reason the event had when stored, if it was unparsed.
    pub unparsed: Option<UnparsedReason>,
    /// The day file the line is in.
    pub day: Date,
    /// Its row id in that day file (with `day`, the line's id in the store).
    pub rowid: i64,
}

impl ReplayLine<'_> {
    /// The event: `parse_framed` of the framing, or the stored unparsed
    /// reason for a line that could not be framed.
    pub fn event(&self) -> Event<'_> {
        match &self.framed {
            Some(f) => parse_framed(f),
            None => unparsed_event(self.unparsed.unwrap_or(UnparsedReason::Framing)),
        }
    }
}

/// One stored line, owned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredLine {
    /// The day file it is in (UTC day of `ts`, or of `received`).
    pub day: Date,
    /// Its row id in that file.
    pub rowid: i64,
    /// The source name.
    pub source: String,
    /// Event time, when the line has one.
    pub ts: Option<Timestamp>,
    /// When the collector received it.
    pub received: Timestamp,
    /// The line as read.
    pub raw: String,
    /// Whether the line could be framed; if not, the framing fields below are
    /// empty and `unparsed` says why.
    pub framed: bool,
    /// Host.
    pub host: Option<String>,
    /// Program.
    pub program: String,
    /// Process id.
    pub pid: Option<u32>,
    /// Severity.
    pub severity: Option<Severity>,
    /// The program's message.
    pub message: String,
    /// The family a native framing implied.
    pub family: Option<Family>,
    /// The unparsed reason, when the event was unparsed.
    pub unparsed: Option<UnparsedReason>,
}

impl StoredLine {
    /// The framing, rebuilt (borrowing from this line).
    pub fn as_framed(&self) -> Option<Framed<'_>> {
        self.framed.then(|| Framed {
            ts: self.ts,
            host: self.host.as_deref().map(Cow::Borrowed),
            program: Cow::Borrowed(&self.program),
            pid: self.pid,
            severity: self.severity,
            message: Cow::Borrowed(&self.message),
            family: self.family,
        })
    }

    /// Calls `f` with the line's event, as at ingest.
    pub fn with_event<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        match self.as_framed() {
            Some(fr) => f(&parse_framed(&fr)),
            None => f(&unparsed_event(self.unparsed.unwrap_or(UnparsedReason::Framing))),
        }
    }
}

/// A position in the store's insertion order, for consumers that follow the
/// store (the forwarder). Insertion order is batch order, then day, then row:
/// a line stored late into an older day (a collector catching up) still comes
/// after everything stored before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LineCursor {
    /// The batch that stored the line.
    pub seq: i64,
    /// The day file.
    #[serde(serialize_with = "ser_date", deserialize_with = "de_date")]
    pub day: Date,
    /// The row id in the day file.
    pub rowid: i64,
}

fn ser_date<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let s = <Cow<'de, str>>::deserialize(d)?;
    parse_date(&s).ok_or_else(|| serde::de::Error::custom(format!("not a YYYY-MM-DD date: {s:?}")))
}

/// A line decoded in place from a result row.
pub(crate) struct LineView<'r> {
    pub(crate) id: i64,
    pub(crate) src: i64,
    pub(crate) ts: Option<Timestamp>,
    pub(crate) received: Timestamp,
    pub(crate) raw: &'r str,
    pub(crate) host: Option<&'r str>,
    pub(crate) prog: Option<&'r str>,
    pub(crate) pid: Option<u32>,
    pub(crate) sev: Option<Severity>,
    pub(crate) fam: Option<Family>,
    pub(crate) msg: Option<&'r str>,
    pub(crate) unparsed: Option<UnparsedReason>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        detail: detail.into(),
    }
}

impl<'r> LineView<'r> {
    pub(crate) fn from_row(row: &'r Row<'r>, path: &Path) -> Result<LineView<'r>, StoreError> {
        let id: i64 = row.get(0).at(path)?;
        let bad = |what: &str| corrupt(path, format!("line {id}: {what}"));
        let ts = match (
            row.get::<_, Option<i64>>(2).at(path)?,
            row.get::<_, Option<i32>>(3).at(path)?,
        ) {
            (Some(unix_micros), off) => Some(Timestamp {
                unix_micros,
                offset_secs: off.unwrap_or(0),
            }),
            (None, _) => None,
        };
        let received = Timestamp {
            unix_micros: row.get(4).at(path)?,
            offset_secs: row.get(5).at(path)?,
        };
        let raw = row
            .get_ref(6)
            .at(path)?
            .as_str()
            .map_err(|e| bad(&e.to_string()))?;
        let field = |i: usize| -> Result<Option<&'r str>, StoreError> {
            decode_field(raw, row.get_ref(i).at(path)?).map_err(|e| bad(&e))
        };
        let sev = match row.get::<_, Option<u8>>(10).at(path)? {
            Some(c) => Some(Severity::from_code(c).ok_or_else(|| bad("severity code"))?),
            None => None,
        };
        let fam = match row.get::<_, Option<i64>>(11).at(path)? {
            Some(c) => Some(family_of_code(c).ok_or_else(|| bad("family code"))?),
            None => None,
        };
        let unparsed = match row.get::<_, Option<i64>>(13).at(path)? {
            Some(c) => Some(reason_of_code(c).ok_or_else(|| bad("unparsed reason code"))?),
            None => None,
        };
        Ok(LineView {
            id,
            src: row.get(1).at(path)?,
            ts,
            received,
            raw,
            host: field(7)?,
            prog: field(8)?,
            pid: row.get(9).at(path)?,
            sev,
            fam,
            msg: field(12)?,
            unparsed,
        })
    }

    /// The framing, borrowing from the row; `None` for an unframeable line.
    pub(crate) fn framed(&self) -> Option<Framed<'r>> {
        self.msg.map(|m| Framed {
            ts: self.ts,
            host: self.host.map(Cow::Borrowed),
            program: Cow::Borrowed(self.prog.unwrap_or("")),
            pid: self.pid,
            severity: self.sev,
            message: Cow::Borrowed(m),
            family: self.fam,
        })
    }

    fn with_event<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        match self.framed() {
            Some(fr) => f(&parse_framed(&fr)),
            None => f(&unparsed_event(self.unparsed.unwrap_or(UnparsedReason::Framing))),
        }
    }

    fn to_stored(&self, day: i64, source: &str) -> StoredLine {
        StoredLine {
            day: date_of(day),
            rowid: self.id,
            source: source.to_owned(),
            ts: self.ts,
            received: self.received,
            raw: self.raw.to_owned(),
            framed: self.msg.is_some(),
            host: self.host.map(str::to_owned),
            program: self.prog.unwrap_or("").to_owned(),
            pid: self.pid,
            severity: self.sev,
            message: self.msg.unwrap_or("").to_owned(),
            family: self.fam,
            unparsed: self.unparsed,
        }
    }
}

/// The highest visible line and message row ids of a day file.
fn bounds(conn: &Connection, path: &Path, visible: Option<i64>) -> Result<(i64, i64), StoreError> {
    let Some(v) = visible else {
        return Ok((i64::MAX, i64::MAX));
    };
    conn.prepare_cached(
        "SELECT \
         coalesce((SELECT line_hi FROM batches WHERE seq <= ?1 AND line_hi IS NOT NULL ORDER BY seq DESC LIMIT 1), 0), \
         coalesce((SELECT msg_hi FROM batches WHERE seq <= ?1 AND msg_hi IS NOT NULL ORDER BY seq DESC LIMIT 1), 0)",
    )
    .and_then(|mut s| s.query_row([v], |r| Ok((r.get(0)?, r.get(1)?))))
    .at(path)
}

/// SQL selecting the ids having a key in every range, ascending, and its
/// parameters. Built from placeholders only: no value reaches the SQL text.
fn key_sql(table: &str, col: &str, ranges: &[KeyRange]) -> (String, Vec<Vec<u8>>) {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    for r in ranges {
        match r {
            KeyRange::Exact(k) => {
                parts.push(format!("SELECT {col} FROM {table} WHERE k = ?"));
                params.push(k.clone());
            }
            KeyRange::Prefix(_) => {
                let (lo, hi) = r.bounds();
                params.push(lo);
                match hi {
                    Some(hi) => {
                        parts.push(format!("SELECT {col} FROM {table} WHERE k >= ? AND k < ?"));
                        params.push(hi);
                    }
                    None => parts.push(format!("SELECT {col} FROM {table} WHERE k >= ?")),
                }
            }
        }
    }
    (format!("{} ORDER BY 1", parts.join(" INTERSECT ")), params)
}

fn time_param(t: Option<Timestamp>, default: i64) -> i64 {
    t.map_or(default, |t| t.unix_micros)
}

impl Store {
    /// Message records matching `q` (exactly [`SearchQuery::matches_record`]),
    /// oldest day first, at most `limit`.
    pub fn search_messages(&self, q: &SearchQuery, limit: usize) -> Result<Vec<MessageRecord>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?;
        let hints = self.day_hints(inner)?;
        let ranges = query_ranges(q, true);
        let until_day = q.until.map(day_of);
        let (sql, params) = key_sql("mkeys", "msg", &ranges);
        for day in list_days(&self.days_dir)? {
            // A record is filed under its first time, which is ≤ until.
            let untimed = hints.get(&day).is_none_or(|h| h.untimed);
            if until_day.is_some_and(|u| day > u) && !untimed {
                continue;
            }
            let path = inner.conns.path(day);
            let Some(conn) = inner.conns.get(day)? else {
                continue;
            };
            let (_, msg_bound) = bounds(conn, &path, visible)?;
            let mut push = |json: &str| -> Result<bool, StoreError> {
                let rec: MessageRecord =
                    serde_json::from_str(json).map_err(|e| corrupt(&path, format!("message record: {e}")))?;
                if q.matches_record(&rec) {
                    out.push(rec);
                }
                Ok(out.len() >= limit)
            };
            if ranges.is_empty() {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT json FROM messages WHERE id <= ?1 \
                         AND (coalesce(last_ts, first_ts) IS NULL OR coalesce(last_ts, first_ts) >= ?2) \
                         AND (coalesce(first_ts, last_ts) IS NULL OR coalesce(first_ts, last_ts) <= ?3) \
                         ORDER BY id",
                    )
                    .at(&path)?;
                let mut rows = stmt
                    .query(rusqlite::params![
                        msg_bound,
                        time_param(q.since, i64::MIN),
                        time_param(q.until, i64::MAX)
                    ])
                    .at(&path)?;
                while let Some(r) = rows.next().at(&path)? {
                    let json = r
                        .get_ref(0)
                        .at(&path)?
                        .as_str()
                        .map_err(|e| corrupt(&path, e.to_string()))?;
                    if push(json)? {
                        return Ok(out);
                    }
                }
            } else {
                let mut ids = conn.prepare_cached(&sql).at(&path)?;
                let mut get = conn
                    .prepare_cached("SELECT json FROM messages WHERE id = ?1")
                    .at(&path)?;
                let mut rows = ids.query(params_from_iter(params.iter())).at(&path)?;
                let mut last = None;
                while let Some(r) = rows.next().at(&path)? {
                    let id: i64 = r.get(0).at(&path)?;
                    if id > msg_bound {
                        break;
                    }
                    // A record has a key per recipient: a domain range can
                    // list it more than once.
                    if last.replace(id) == Some(id) {
                        continue;
                    }
                    let mut m = get.query([id]).at(&path)?;
                    if let Some(row) = m.next().at(&path)? {
                        let json = row
                            .get_ref(0)
                            .at(&path)?
                            .as_str()
                            .map_err(|e| corrupt(&path, e.to_string()))?;
                        if push(json)? {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Lines that belong to no message and match `q` (exactly
    /// [`SearchQuery::matches_event`] on the re-parsed line: pre-queue
    /// rejections, connections, failed logins), oldest day first, at most
    /// `limit`. Queries naming a queue id or Message-ID match no such line.
    pub fn search_lines(&self, q: &SearchQuery, limit: usize) -> Result<Vec<StoredLine>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 || q.queue_id.is_some() || q.message_id.is_some() {
            return Ok(out);
        }
        let ranges = query_ranges(q, false);
        let (sql, params) = key_sql("keys", "line", &ranges);
        let candidates = (!ranges.is_empty()).then_some((sql.as_str(), params.as_slice()));
        self.scan_lines(q.since, q.until, candidates, |view, day, source| {
            if view.with_event(|ev| q.matches_event(ev)) {
                out.push(view.to_stored(day, source));
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Lines carrying one of the record's queue ids (the message's own log
    /// lines, as `logs search --lines` shows them), in store order, at most
    /// `limit`.
    pub fn message_lines(&self, rec: &MessageRecord, limit: usize) -> Result<Vec<StoredLine>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut qids: Vec<&str> = rec.all_queue_ids().collect();
        qids.sort_unstable();
        qids.dedup();
        let parts: Vec<String> = qids
            .iter()
            .map(|_| "SELECT line FROM keys WHERE k = ?".to_owned())
            .collect();
        let sql = format!("{} ORDER BY 1", parts.join(" UNION "));
        let params: Vec<Vec<u8>> = qids
            .iter()
            .map(|q| {
                let mut k = vec![TAG_QUEUE_ID];
                k.extend_from_slice(q.as_bytes());
                k
            })
            .collect();
        let (since, until) = (rec.first_seen.or(rec.last_seen), rec.last_seen.or(rec.first_seen));
        self.scan_lines(since, until, Some((&sql, &params)), |view, day, source| {
            out.push(view.to_stored(day, source));
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Visits candidate lines: those whose ids the candidate SQL returns (with
    /// its parameters), or every framed line in the time range when there is
    /// none, in the days `since..=until` can touch (plus days holding lines
    /// without time). `f` returns whether to go on.
    fn scan_lines(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        candidates: Option<(&str, &[Vec<u8>])>,
        mut f: impl FnMut(&LineView<'_>, i64, &str) -> bool,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?;
        let hints = self.day_hints(inner)?;
        let (since_day, until_day) = (since.map(day_of), until.map(day_of));
        let Inner { meta, conns, sources } = inner;
        for day in list_days(&self.days_dir)? {
            let untimed = hints.get(&day).is_none_or(|h| h.untimed);
            let outside = since_day.is_some_and(|s| day < s) || until_day.is_some_and(|u| day > u);
            if outside && !untimed {
                continue;
            }
            let path = conns.path(day);
            let Some(conn) = conns.get(day)? else {
                continue;
            };
            let (line_bound, _) = bounds(conn, &path, visible)?;
            let mut visit = |row: &Row<'_>| -> Result<bool, StoreError> {
                let view = LineView::from_row(row, &path)?;
                let source = sources.name(view.src, meta, &self.meta_path)?;
                Ok(f(&view, day, source))
            };
            if let Some((sql, params)) = candidates {
                let mut ids = conn.prepare_cached(sql).at(&path)?;
                let mut get = conn
                    .prepare_cached(&format!("SELECT {LINE_COLS} FROM lines WHERE id = ?1"))
                    .at(&path)?;
                let mut rows = ids.query(params_from_iter(params.iter())).at(&path)?;
                let mut last = None;
                while let Some(r) = rows.next().at(&path)? {
                    let id: i64 = r.get(0).at(&path)?;
                    if id > line_bound {
                        break;
                    }
                    if last.replace(id) == Some(id) {
                        continue;
                    }
                    let mut one = get.query([id]).at(&path)?;
                    if let Some(row) = one.next().at(&path)?
                        && !visit(row)?
                    {
                        return Ok(());
                    }
                }
            } else {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {LINE_COLS} FROM lines WHERE id <= ?1 AND msg IS NOT NULL \
                         AND (ts IS NULL OR (ts >= ?2 AND ts <= ?3)) ORDER BY id"
                    ))
                    .at(&path)?;
                let mut rows = stmt
                    .query(rusqlite::params![
                        line_bound,
                        time_param(since, i64::MIN),
                        time_param(until, i64::MAX)
                    ])
                    .at(&path)?;
                while let Some(row) = rows.next().at(&path)? {
                    if !visit(row)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Replays stored lines, oldest day first and in insertion order within a
    /// day, calling `f` for each. `since`/`until` select by event time (by
    /// receive time for lines without one). Returns the number of lines.
    ///
    /// `f` must not call back into this store.
    pub fn replay(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        f: impl FnMut(ReplayLine<'_>),
    ) -> Result<u64, StoreError> {
        self.replay_ordered(since, until, false, f)
    }

    /// Like [`replay`](Self::replay), but each day's lines come in event-time
    /// order (`ts`, or the receive time for lines without one; ties in store
    /// order) instead of store order, so that lines of several sources ingested
    /// one after the other interleave as they were logged. Day files are UTC
    /// days of that time, so the whole replay is in time order. Sorting a day
    /// costs SQLite a temporary index over that day's lines.
    pub fn replay_in_time_order(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        f: impl FnMut(ReplayLine<'_>),
    ) -> Result<u64, StoreError> {
        self.replay_ordered(since, until, true, f)
    }

    fn replay_ordered(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        by_time: bool,
        mut f: impl FnMut(ReplayLine<'_>),
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?;
        let (since_day, until_day) = (since.map(day_of), until.map(day_of));
        let Inner { meta, conns, sources } = inner;
        let mut counts: HashMap<i64, u64> = HashMap::new();
        let mut n = 0u64;
        for day in list_days(&self.days_dir)? {
            if since_day.is_some_and(|s| day < s) || until_day.is_some_and(|u| day > u) {
                continue;
            }
            let path = conns.path(day);
            let Some(conn) = conns.get(day)? else {
                continue;
            };
            let (line_bound, _) = bounds(conn, &path, visible)?;
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {LINE_COLS} FROM lines WHERE id <= ?1 \
                     AND coalesce(ts, recv) >= ?2 AND coalesce(ts, recv) <= ?3 ORDER BY {}",
                    if by_time { "coalesce(ts, recv), id" } else { "id" }
                ))
                .at(&path)?;
            let mut rows = stmt
                .query(rusqlite::params![
                    line_bound,
                    time_param(since, i64::MIN),
                    time_param(until, i64::MAX)
                ])
                .at(&path)?;
            while let Some(row) = rows.next().at(&path)? {
                let view = LineView::from_row(row, &path)?;
                let source = sources.name(view.src, meta, &self.meta_path)?;
                let count = counts.entry(view.src).or_insert(0);
                *count += 1;
                n += 1;
                f(ReplayLine {
                    position: Position {
                        source: u32::try_from(view.src).unwrap_or(u32::MAX),
                        line: *count,
                    },
                    source,
                    raw: view.raw,
                    received: view.received,
                    framed: view.framed(),
                    unparsed: view.unparsed,
                    day: date_of(day),
                    rowid: view.id,
                });
            }
        }
        Ok(n)
    }

    /// Up to `limit` lines stored after `cursor` (from the beginning when
    /// `None`), in insertion order, each with its cursor. Persist the last
    /// cursor to resume; lines removed by retention are skipped.
    pub fn lines_after(
        &self,
        cursor: Option<LineCursor>,
        limit: usize,
    ) -> Result<Vec<(LineCursor, StoredLine)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?.unwrap_or(i64::MAX);
        let hints = self.day_hints(inner)?;
        let cseq = cursor.map_or(0, |c| c.seq);
        let cday = cursor.map(|c| day_of_date(c.day));
        let Inner { meta, conns, sources } = inner;
        // (seq, day, lo, hi) segments after the cursor; at most limit + 2 per
        // file are needed (each later segment holds at least one line).
        let mut segs: Vec<(i64, i64, i64, i64)> = Vec::new();
        for day in list_days(&self.days_dir)? {
            if hints.get(&day).is_some_and(|h| h.max_seq < cseq) {
                continue;
            }
            let path = conns.path(day);
            let Some(conn) = conns.get(day)? else {
                continue;
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, line_lo, line_hi FROM batches WHERE seq >= ?1 AND seq <= ?2 \
                     AND line_hi IS NOT NULL ORDER BY seq LIMIT ?3",
                )
                .at(&path)?;
            let mut rows = stmt
                .query(rusqlite::params![
                    cseq,
                    visible,
                    i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(2)
                ])
                .at(&path)?;
            while let Some(r) = rows.next().at(&path)? {
                segs.push((r.get(0).at(&path)?, day, r.get(1).at(&path)?, r.get(2).at(&path)?));
            }
        }
        segs.sort_unstable();
        for (seq, day, lo, hi) in segs {
            let start = match (cursor, cday) {
                (Some(c), Some(cd)) if (seq, day) < (c.seq, cd) => continue,
                (Some(c), Some(cd)) if (seq, day) == (c.seq, cd) => lo.max(c.rowid.saturating_add(1)),
                _ => lo,
            };
            if start > hi {
                continue;
            }
            let path = conns.path(day);
            let Some(conn) = conns.get(day)? else {
                continue;
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {LINE_COLS} FROM lines WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
                ))
                .at(&path)?;
            let remaining = i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
            let mut rows = stmt.query(rusqlite::params![start, hi, remaining]).at(&path)?;
            while let Some(row) = rows.next().at(&path)? {
                let view = LineView::from_row(row, &path)?;
                let source = sources.name(view.src, meta, &self.meta_path)?;
                let c = LineCursor {
                    seq,
                    day: date_of(day),
                    rowid: view.id,
                };
                out.push((c, view.to_stored(day, source)));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many lines are stored after `cursor` (all of them for `None`): the
    /// depth of the forwarding spool. Sums the batch journal's line ranges,
    /// so it costs one small query per day file, not a scan of the lines.
    pub fn count_lines_after(&self, cursor: Option<LineCursor>) -> Result<u64, StoreError> {
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?.unwrap_or(i64::MAX);
        let cseq = cursor.map_or(0, |c| c.seq);
        let cday = cursor.map(|c| day_of_date(c.day));
        let conns = &mut inner.conns;
        let mut total: i64 = 0;
        for day in list_days(&self.days_dir)? {
            let path = conns.path(day);
            let Some(conn) = conns.get(day)? else {
                continue;
            };
            // Whole batches after the cursor: in a later day file the
            // cursor's own batch counts too (its lines there come after).
            let first_whole = match cday {
                Some(cd) if day > cd => cseq,
                Some(_) => cseq.saturating_add(1),
                None => i64::MIN,
            };
            let whole: i64 = conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(line_hi - line_lo + 1), 0) FROM batches \
                     WHERE seq >= ?1 AND seq <= ?2 AND line_hi IS NOT NULL",
                )
                .at(&path)?
                .query_row(rusqlite::params![first_whole, visible], |r| r.get(0))
                .at(&path)?;
            total = total.saturating_add(whole);
            if let (Some(c), Some(cd)) = (cursor, cday)
                && day == cd
            {
                let part: Option<(i64, i64)> = conn
                    .prepare_cached(
                        "SELECT line_lo, line_hi FROM batches WHERE seq = ?1 AND seq <= ?2 \
                         AND line_hi IS NOT NULL",
                    )
                    .at(&path)?
                    .query_row(rusqlite::params![c.seq, visible], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })
                    .at(&path)?;
                if let Some((lo, hi)) = part {
                    let start = lo.max(c.rowid.saturating_add(1));
                    total = total.saturating_add((hi - start + 1).max(0));
                }
            }
        }
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// The latest checkpoint JSON of every source (by batch order across all
    /// day files and meta.sqlite).
    pub fn checkpoints(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let latest = self.latest_checkpoints()?;
        let mut inner = self.lock_inner();
        let Inner { meta, sources, .. } = &mut *inner;
        let mut out = BTreeMap::new();
        for (src, (_, json)) in latest {
            out.insert(sources.name(src, meta, &self.meta_path)?.to_owned(), json);
        }
        Ok(out)
    }

    /// Source id → (seq, JSON) of the latest visible checkpoint.
    pub(crate) fn latest_checkpoints(&self) -> Result<BTreeMap<i64, (i64, String)>, StoreError> {
        let mut inner = self.lock_inner();
        let inner = &mut *inner;
        let visible = self.visible_seq(inner)?.unwrap_or(i64::MAX);
        let mut latest: BTreeMap<i64, (i64, String)> = BTreeMap::new();
        let mut take = |conn: &Connection, path: &Path| -> Result<(), StoreError> {
            let mut stmt = conn
                .prepare_cached("SELECT source, seq, json FROM checkpoints WHERE seq <= ?1")
                .at(path)?;
            let mut rows = stmt.query([visible]).at(path)?;
            while let Some(r) = rows.next().at(path)? {
                let (src, seq, json): (i64, i64, String) =
                    (r.get(0).at(path)?, r.get(1).at(path)?, r.get(2).at(path)?);
                if latest.get(&src).is_none_or(|(s, _)| *s < seq) {
                    latest.insert(src, (seq, json));
                }
            }
            Ok(())
        };
        take(&inner.meta, &self.meta_path)?;
        for day in list_days(&self.days_dir)? {
            let path = inner.conns.path(day);
            if let Some(conn) = inner.conns.get(day)? {
                take(conn, &path)?;
            }
        }
        Ok(latest)
    }
}

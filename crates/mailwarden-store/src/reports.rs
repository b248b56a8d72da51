//! DMARC aggregate and SMTP TLS reports in the store (meta.sqlite,
//! schema version 2).
//!
//! Reports are not per-day data: they live in meta.sqlite, beside the
//! sources and checkpoints, and retention does not remove them. An
//! aggregate report is written in one transaction by a
//! [`DmarcReportWriter`]: the header first (which is where a report already
//! stored is recognised — organisation, report id and policy domain — and
//! nothing is written), then its records one by one as they are read, then
//! its notes and counts on [`DmarcReportWriter::commit`]. Dropping the
//! writer without committing (the report failed half-way) rolls everything
//! back, so a failed report is never half stored.

use std::path::Path;
use std::sync::MutexGuard;

use mailwarden_core::report::{Note, Record, ReportHeader, TlsReport};
use rusqlite::{OptionalExtension, params};

use crate::error::{SqlCtx, StoreError};
use crate::store::{Inner, Store};

/// Which stored reports to read.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    /// Only these policy domains (lowercase); empty: all.
    pub domains: Vec<String>,
    /// Only reports whose range ends at or after this (Unix seconds).
    pub since: Option<i64>,
    /// Only reports whose range begins at or before this.
    pub until: Option<i64>,
}

/// A stored aggregate report (without its records).
#[derive(Clone, Debug)]
pub struct StoredDmarcReport {
    /// Row id (for [`Store::for_each_dmarc_record`]).
    pub id: i64,
    /// The header.
    pub header: ReportHeader,
    /// Repairs and oddities noted when it was read.
    pub notes: Vec<Note>,
    /// Where it was read from.
    pub source: String,
    /// Records stored.
    pub records: u64,
    /// Messages of those records.
    pub messages: u64,
    /// When it was stored (Unix seconds).
    pub added: i64,
}

/// A stored TLS report.
#[derive(Clone, Debug)]
pub struct StoredTlsReport {
    /// The report.
    pub report: TlsReport,
    /// Repairs and oddities noted when it was read.
    pub notes: Vec<Note>,
    /// Where it was read from.
    pub source: String,
    /// When it was stored (Unix seconds).
    pub added: i64,
}

fn json<T: serde::Serialize>(v: &T, path: &Path) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt {
        path: path.into(),
        detail: format!("cannot encode a report: {e}"),
    })
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, path: &Path, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        path: path.into(),
        detail: format!("stored {what} cannot be read: {e}"),
    })
}

/// Writes one aggregate report; see the module docs.
pub struct DmarcReportWriter<'s> {
    inner: MutexGuard<'s, Inner>,
    path: &'s Path,
    id: i64,
    seq: i64,
    done: bool,
}

impl DmarcReportWriter<'_> {
    /// Stores one record.
    pub fn add(&mut self, r: &Record) -> Result<(), StoreError> {
        let text = json(r, self.path)?;
        self.seq += 1;
        self.inner
            .meta
            .prepare_cached(
                "INSERT INTO dmarc_records (report, seq, source_ip, count, json) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .at(self.path)?
            .execute(params![
                self.id,
                self.seq,
                r.source_ip,
                i64::try_from(r.count).unwrap_or(i64::MAX),
                text
            ])
            .at(self.path)?;
        Ok(())
    }

    /// Records the notes and counts and commits the report.
    pub fn commit(mut self, notes: &[Note], messages: u64) -> Result<(), StoreError> {
        let notes = json(&notes, self.path)?;
        self.inner
            .meta
            .execute(
                "UPDATE dmarc_reports SET notes = ?1, records = ?2, messages = ?3 WHERE id = ?4",
                params![
                    notes,
                    self.seq,
                    i64::try_from(messages).unwrap_or(i64::MAX),
                    self.id
                ],
            )
            .at(self.path)?;
        self.inner.meta.execute_batch("COMMIT").at(self.path)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for DmarcReportWriter<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.inner.meta.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a DMARC report failed");
        }
    }
}

impl Store {
    fn writable_for_reports(&self) -> Result<(), StoreError> {
        if self.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Starts storing an aggregate report. `None`: a report with the same
    /// organisation, report id and domain is already stored.
    pub fn begin_dmarc_report(
        &self,
        header: &ReportHeader,
        source: &str,
        added: i64,
    ) -> Result<Option<DmarcReportWriter<'_>>, StoreError> {
        self.writable_for_reports()?;
        let path = self.meta_path.as_path();
        let key = header.key();
        let text = json(header, path)?;
        let inner = self.lock_inner();
        inner.meta.execute_batch("BEGIN IMMEDIATE").at(path)?;
        let mut w = DmarcReportWriter {
            inner,
            path,
            id: 0,
            seq: 0,
            done: false,
        };
        let inserted = w
            .inner
            .meta
            .execute(
                "INSERT OR IGNORE INTO dmarc_reports (org, report_id, domain, begin, end, header, source, added) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.org,
                    key.report_id,
                    key.domain,
                    header.metadata.begin,
                    header.metadata.end,
                    text,
                    source,
                    added
                ],
            )
            .at(path)?;
        if inserted == 0 {
            // Dropping `w` rolls the empty transaction back.
            return Ok(None);
        }
        w.id = w.inner.meta.last_insert_rowid();
        Ok(Some(w))
    }

    /// Stores a TLS report; `false` when it was already stored.
    pub fn add_tls_report(
        &self,
        report: &TlsReport,
        notes: &[Note],
        source: &str,
        added: i64,
    ) -> Result<bool, StoreError> {
        self.writable_for_reports()?;
        let path = self.meta_path.as_path();
        let key = report.key();
        let inner = self.lock_inner();
        let n = inner
            .meta
            .execute(
                "INSERT OR IGNORE INTO tls_reports (org, report_id, begin, end, json, notes, source, added) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.org,
                    key.report_id,
                    report.begin,
                    report.end,
                    json(report, path)?,
                    json(&notes, path)?,
                    source,
                    added
                ],
            )
            .at(path)?;
        Ok(n > 0)
    }

    /// Whether an aggregate report with this header's key is stored.
    pub fn has_dmarc_report(&self, header: &ReportHeader) -> Result<bool, StoreError> {
        let path = self.meta_path.as_path();
        let key = header.key();
        let inner = self.lock_inner();
        inner
            .meta
            .query_row(
                "SELECT 1 FROM dmarc_reports WHERE org = ?1 AND report_id = ?2 AND domain = ?3",
                params![key.org, key.report_id, key.domain],
                |_| Ok(()),
            )
            .optional()
            .at(path)
            .map(|o| o.is_some())
    }

    /// The stored aggregate reports matching `q`, oldest first.
    pub fn dmarc_reports(&self, q: &ReportQuery) -> Result<Vec<StoredDmarcReport>, StoreError> {
        let path = self.meta_path.as_path();
        let inner = self.lock_inner();
        let mut stmt = inner
            .meta
            .prepare(
                "SELECT id, domain, header, notes, source, records, messages, added FROM dmarc_reports \
                 WHERE end >= ?1 AND begin <= ?2 ORDER BY begin, id",
            )
            .at(path)?;
        let rows = stmt
            .query_map(
                params![q.since.unwrap_or(i64::MIN), q.until.unwrap_or(i64::MAX)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .at(path)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, domain, header, notes, source, records, messages, added) = row.at(path)?;
            if !q.domains.is_empty() && !q.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
                continue;
            }
            out.push(StoredDmarcReport {
                id,
                header: parse(&header, path, "report header")?,
                notes: parse(&notes, path, "report notes")?,
                source,
                records: records.max(0) as u64,
                messages: messages.max(0) as u64,
                added,
            });
        }
        Ok(out)
    }

    /// Calls `f` with each record of a stored report, in reading order.
    pub fn for_each_dmarc_record(&self, report: i64, mut f: impl FnMut(Record)) -> Result<u64, StoreError> {
        let path = self.meta_path.as_path();
        let inner = self.lock_inner();
        let mut stmt = inner
            .meta
            .prepare_cached("SELECT json FROM dmarc_records WHERE report = ?1 ORDER BY seq")
            .at(path)?;
        let mut rows = stmt.query(params![report]).at(path)?;
        let mut n = 0;
        while let Some(row) = rows.next().at(path)? {
            let text: String = row.get(0).at(path)?;
            f(parse(&text, path, "record")?);
            n += 1;
        }
        Ok(n)
    }

    /// The stored TLS reports matching `q` (by range; `domains` is applied
    /// per policy by the caller), oldest first.
    pub fn tls_reports(&self, q: &ReportQuery) -> Result<Vec<StoredTlsReport>, StoreError> {
        let path = self.meta_path.as_path();
        let inner = self.lock_inner();
        let mut stmt = inner
            .meta
            .prepare(
                "SELECT json, notes, source, added FROM tls_reports WHERE end >= ?1 AND begin <= ?2 ORDER BY begin, id",
            )
            .at(path)?;
        let rows = stmt
            .query_map(
                params![q.since.unwrap_or(i64::MIN), q.until.unwrap_or(i64::MAX)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .at(path)?;
        let mut out = Vec::new();
        for row in rows {
            let (report, notes, source, added) = row.at(path)?;
            out.push(StoredTlsReport {
                report: parse(&report, path, "TLS report")?,
                notes: parse(&notes, path, "report notes")?,
                source,
                added,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use mailwarden_core::report::{NoteKind, TlsPolicy};

    use super::*;
    use crate::StoreConfig;

    fn header(id: &str, domain: &str) -> ReportHeader {
        let mut h = ReportHeader::default();
        h.metadata.org_name = "google.com".into();
        h.metadata.report_id = id.into();
        h.metadata.begin = 1_700_000_000;
        h.metadata.end = 1_700_086_399;
        h.policy.domain = domain.into();
        h
    }

    fn rec(ip: &str, count: u64) -> Record {
        Record {
            source_ip: ip.into(),
            count,
            dkim: Some("pass".into()),
            ..Record::default()
        }
    }

    #[test]
    fn reports_round_trip_and_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path().join("data"))).unwrap();
        let h = header("1", "example.com");
        let mut w = store.begin_dmarc_report(&h, "a.xml", 5).unwrap().expect("new");
        w.add(&rec("192.0.2.1", 3)).unwrap();
        w.add(&rec("192.0.2.2", 4)).unwrap();
        w.commit(&[Note::new(NoteKind::UnescapedLt, "read 1 stray '<'")], 7)
            .unwrap();
        assert!(store.begin_dmarc_report(&h, "b.xml", 6).unwrap().is_none());
        assert!(store.has_dmarc_report(&h).unwrap());
        // A failed report leaves nothing behind.
        let h2 = header("2", "example.com");
        let mut w = store.begin_dmarc_report(&h2, "c.xml", 7).unwrap().unwrap();
        w.add(&rec("192.0.2.3", 1)).unwrap();
        drop(w);
        assert!(!store.has_dmarc_report(&h2).unwrap());
        let tls = TlsReport {
            organization_name: "Google Inc.".into(),
            report_id: "t1".into(),
            begin: 1_700_000_000,
            end: 1_700_086_399,
            policies: vec![TlsPolicy {
                policy_domain: "example.com".into(),
                successful: 3,
                ..TlsPolicy::default()
            }],
            ..TlsReport::default()
        };
        assert!(store.add_tls_report(&tls, &[], "t.json", 8).unwrap());
        assert!(!store.add_tls_report(&tls, &[], "t.json", 9).unwrap());
        drop(store);

        let reader = Store::open_read_only(&dir.path().join("data")).unwrap();
        let all = reader.dmarc_reports(&ReportQuery::default()).unwrap();
        assert_eq!(all.len(), 1);
        let r = &all[0];
        assert_eq!(
            (r.records, r.messages, r.source.as_str(), r.added),
            (2, 7, "a.xml", 5)
        );
        assert_eq!(r.header, h);
        assert_eq!(r.notes[0].kind, NoteKind::UnescapedLt);
        let mut got = Vec::new();
        assert_eq!(reader.for_each_dmarc_record(r.id, |x| got.push(x)).unwrap(), 2);
        assert_eq!(got, vec![rec("192.0.2.1", 3), rec("192.0.2.2", 4)]);
        let q = |domains: &[&str], since: Option<i64>| ReportQuery {
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            since,
            until: None,
        };
        assert_eq!(
            reader.dmarc_reports(&q(&["other.example"], None)).unwrap().len(),
            0
        );
        assert_eq!(reader.dmarc_reports(&q(&["EXAMPLE.com"], None)).unwrap().len(), 1);
        assert_eq!(
            reader.dmarc_reports(&q(&[], Some(1_800_000_000))).unwrap().len(),
            0
        );
        let t = reader.tls_reports(&ReportQuery::default()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].report, tls);
        assert!(reader.begin_dmarc_report(&h2, "x", 1).is_err());
    }
}

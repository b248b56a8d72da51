//! The store as the forwarder's spool: the forwarder reads stored lines in
//! store order after its committed cursor, which is kept in
//! `forward-cursor.json` in the data directory (written atomically after the
//! collector took a batch). While the collector is down the lines simply stay
//! in the store; retention bounds how long they wait.

use std::path::{Path, PathBuf};

use mailwarden_io::forward::{ForwardCursor, ForwardItem, ForwardSource, SdParams};
use mailwarden_store::{LineCursor, Store, StoreError, StoredLine};

/// Reads from a read-only store handle.
pub struct StoreForwardSource {
    store: Store,
    cursor_path: PathBuf,
    committed: Option<ForwardCursor>,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cursor file could not be written or read.
    #[error("forward cursor {path}: {source}")]
    Cursor {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cursor does not parse.
    #[error("forward cursor {0:?} is not valid; delete forward-cursor.json to resend everything retained")]
    BadCursor(String),
}

impl StoreForwardSource {
    /// Opens the store read-only and loads the committed cursor.
    pub fn open(data_dir: &Path) -> Result<StoreForwardSource, SpoolError> {
        let store = Store::open_read_only(data_dir)?;
        let cursor_path = data_dir.join("forward-cursor.json");
        let committed = match std::fs::read_to_string(&cursor_path) {
            Ok(s) => Some(ForwardCursor(s.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SpoolError::Cursor {
                    path: cursor_path,
                    source,
                });
            }
        };
        Ok(StoreForwardSource {
            store,
            cursor_path,
            committed,
        })
    }

    fn parse(c: &ForwardCursor) -> Result<LineCursor, SpoolError> {
        serde_json::from_str(&c.0).map_err(|_| SpoolError::BadCursor(c.0.clone()))
    }
}

/// One stored line as a forwarded record: its parsed fields become the
/// structured data.
pub fn item_of(cursor: LineCursor, line: &StoredLine) -> ForwardItem {
    let cursor_json = serde_json::to_string(&cursor).unwrap_or_default();
    let mut params = SdParams::default();
    let mut msgid = None;
    line.with_event(|ev| {
        params.family = ev.kind.family().map(|f| f.name().to_owned());
        if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(&ev.kind)
            && let Some(serde_json::Value::String(e)) = o.get("event")
        {
            params.event = Some(e.clone());
            msgid = Some(e.clone());
        }
        let f = ev.index_fields();
        params.queue_id = f.queue_id.map(str::to_owned);
        params.client_ip = f.client_ip.map(str::to_owned);
        params.sender = f.sender.map(str::to_owned);
        params.recipient = f.recipient.map(str::to_owned);
        params.user = f.user.map(str::to_owned);
        params.message_id = f.message_id.map(str::to_owned);
    });
    if let Some(r) = line.unparsed {
        msgid = Some("unparsed".to_owned());
        params.event = Some(r.as_str().to_owned());
    }
    ForwardItem {
        cursor: ForwardCursor(cursor_json),
        id: format!("{}:{}", cursor.day, cursor.rowid),
        ts: line.ts,
        host: line.host.clone(),
        app_name: (!line.program.is_empty()).then(|| line.program.clone()),
        procid: line.pid.map(|p| p.to_string()),
        severity: line.severity,
        facility: 2,
        msgid,
        params,
        msg: if line.framed {
            line.message.clone()
        } else {
            line.raw.clone()
        },
    }
}

impl ForwardSource for StoreForwardSource {
    type Error = SpoolError;

    fn next_batch(
        &mut self,
        after: Option<&ForwardCursor>,
        max: usize,
    ) -> Result<Vec<ForwardItem>, SpoolError> {
        let after = after.map(Self::parse).transpose()?;
        let rows = self.store.lines_after(after, max)?;
        Ok(rows.iter().map(|(c, l)| item_of(*c, l)).collect())
    }

    fn commit(&mut self, cursor: &ForwardCursor) -> Result<(), SpoolError> {
        let tmp = self.cursor_path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(cursor.0.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.cursor_path)
        };
        write().map_err(|source| SpoolError::Cursor {
            path: self.cursor_path.clone(),
            source,
        })?;
        self.committed = Some(cursor.clone());
        Ok(())
    }

    fn committed(&self) -> Option<ForwardCursor> {
        self.committed.clone()
    }

    fn backlog(&mut self, after: Option<&ForwardCursor>) -> Result<Option<u64>, SpoolError> {
        let after = after.map(Self::parse).transpose()?;
        Ok(Some(self.store.count_lines_after(after)?))
    }
}

//! The JSON document of a notice, and the JSON lines sink.
//!
//! Every sink that sends JSON (this one, webhooks, the e-mail attachment)
//! sends the same document, [`notice_json`]:
//!
//! ```json
//! {"type":"mailwarden.alert","version":1,"event":"opened","host":"mx1.example.org",
//!  "alert_id":17,"time":"2024-03-14T08:40:00.000000Z","alert":{"rule":"auth-bruteforce-ip",…}}
//! ```
//!
//! `type` and `version` name the schema; a receiver should check both.
//! `alert` is the detection engine's alert as it serializes. Text from the
//! logs is escaped by JSON itself (control characters become `\u001b`), so
//! one document is always one line.

use std::io::Write;
use std::sync::Mutex;

use mailwarden_core::detect::Alert;
use mailwarden_core::time::Timestamp;
use serde::Serialize;

use super::{AlertNotice, Delivery, FailureKind, NoticeEvent, NotifyError, SinkKind};

/// The `type` of the document.
pub const DOCUMENT_TYPE: &str = "mailwarden.alert";
/// The `version` of the document's schema.
pub const DOCUMENT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    event: NoticeEvent,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_id: Option<i64>,
    time: Timestamp,
    alert: &'a Alert,
}

/// The notice as one line of JSON (no line end).
pub fn notice_json(notice: &AlertNotice) -> Vec<u8> {
    let doc = Document {
        kind: DOCUMENT_TYPE,
        version: DOCUMENT_VERSION,
        event: notice.event,
        host: &notice.host,
        alert_id: notice.alert_id,
        time: notice.at,
        alert: &notice.alert,
    };
    // Serializing plain data into a Vec cannot fail.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Writes one JSON document per line to a writer, flushed after each line.
pub struct JsonSink {
    out: Mutex<Box<dyn Write + Send>>,
    destination: String,
}

impl std::fmt::Debug for JsonSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSink")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl JsonSink {
    /// A sink writing to `out`; `destination` names it in errors and status
    /// (`stdout`, a file name).
    pub fn new(out: impl Write + Send + 'static, destination: impl Into<String>) -> JsonSink {
        JsonSink {
            out: Mutex::new(Box::new(out)),
            destination: destination.into(),
        }
    }

    /// A sink writing to standard output.
    pub fn stdout() -> JsonSink {
        JsonSink::new(std::io::stdout(), "stdout")
    }

    /// Where it writes.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Writes the notice as one line and flushes. The write blocks the
    /// calling task; a line is small and the writer is local.
    pub fn send(&self, notice: &AlertNotice) -> Result<Delivery, NotifyError> {
        let mut line = notice_json(notice);
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line).and_then(|()| out.flush()).map_err(|e| {
            NotifyError::new(
                SinkKind::Json,
                &self.destination,
                FailureKind::Io,
                format!("writing the notice failed: {e}"),
                "make sure the output stays open and writable (a closed pipe or a full disk stops JSON output)",
            )
        })?;
        Ok(Delivery {
            attempts: 1,
            detail: format!("{} bytes written", line.len()),
        })
    }
}

/// A writer whose bytes the test can read while a sink owns a clone.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct SharedBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl SharedBuffer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that always fails, like a closed pipe.
#[cfg(test)]
pub(crate) struct FailingWriter;

#[cfg(test)]
impl Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::notice;

    #[test]
    fn one_document_per_line_with_hostile_text_escaped() {
        let buf = SharedBuffer::default();
        let sink = JsonSink::new(buf.clone(), "buffer");
        let d = sink.send(&notice("user=a\r\n\u{1b}[2J\"}{")).unwrap();
        let d2 = sink.send(&notice("ip=203.0.113.5")).unwrap();
        assert_eq!(d.attempts, 1);
        assert!(d2.detail.ends_with("bytes written"));
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["type"], "mailwarden.alert");
        assert_eq!(v["version"], 1);
        assert_eq!(v["event"], "opened");
        assert_eq!(v["alert_id"], 17);
        assert_eq!(v["alert"]["key"], "user=a\r\n\u{1b}[2J\"}{");
        assert!(lines[0].contains("\\r\\n\\u001b[2J\\\"}{"), "{}", lines[0]);
    }

    #[test]
    fn write_errors_name_the_destination() {
        let sink = JsonSink::new(FailingWriter, "stdout");
        let e = sink.send(&notice("k")).unwrap_err();
        assert_eq!(e.kind, FailureKind::Io);
        assert!(
            e.to_string()
                .starts_with("json sink to stdout: writing the notice failed"),
            "{e}"
        );
    }
}

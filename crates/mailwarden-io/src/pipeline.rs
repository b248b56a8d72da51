//! The batch pipeline: inputs → lines → framing → parsing → a sink.
//!
//! Every line reaches the sink as an [`Event`], typed or `unparsed` (too long,
//! unframeable, unknown program, unknown shape); nothing is dropped. A failing
//! input is reported and the run continues with the next one.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailwarden_core::event::{Event, Position, UnparsedReason};
use mailwarden_core::framing::{Format, Framer, FramerConfig};
use mailwarden_core::parse::{unparsed_event, with_event};
use mailwarden_core::time::{TimeContext, Timestamp};

use crate::input::{ByteCounter, Compression, InputError, InputSource, LineReader, open_input};

/// How to read the inputs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Framing, or auto-detection.
    pub format: Format,
    /// Program to assume when lines carry none.
    pub program_hint: Option<String>,
    /// Longest line kept, in bytes.
    pub max_line_bytes: usize,
    /// Zone of zone-less timestamps.
    pub zone: jiff::tz::TimeZone,
    /// Reference time for year-less stamps of streams (stdin, memory) and of
    /// files whose modification time is unknown: "now" for a live stream.
    pub now: Timestamp,
    /// Forces the reference for every input (e.g. `--year`).
    pub reference_override: Option<Timestamp>,
}

/// What happened to one input.
#[derive(Debug)]
pub struct InputReport {
    /// Display name.
    pub name: String,
    /// Lines read.
    pub lines: u64,
    /// Compression found.
    pub compression: Option<Compression>,
    /// The error that stopped it, if any.
    pub error: Option<InputError>,
}

/// Progress of the current input, for progress bars.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Index of the input.
    pub input: usize,
    /// Its display name.
    pub name: String,
    /// Raw bytes read so far.
    pub bytes: ByteCounter,
    /// Raw size, when known.
    pub size: Option<u64>,
}

/// Converts a system time to a [`Timestamp`].
pub fn timestamp_of(t: SystemTime) -> Timestamp {
    let micros = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    };
    Timestamp::from_unix_micros(micros)
}

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    timestamp_of(SystemTime::now())
}

/// Runs the inputs in order, calling `sink(position, raw_line, event)` for
/// every line and `on_start` when an input opens. Returns one report per input.
pub fn run(
    inputs: &[InputSource],
    cfg: &PipelineConfig,
    mut on_start: impl FnMut(Progress),
    mut sink: impl FnMut(Position, &str, &Event<'_>),
) -> Vec<InputReport> {
    let mut reports = Vec::with_capacity(inputs.len());
    for (idx, src) in inputs.iter().enumerate() {
        let name = src.display();
        let mut opened = match open_input(src) {
            Ok(o) => o,
            Err(e) => {
                reports.push(InputReport {
                    name,
                    lines: 0,
                    compression: None,
                    error: Some(e),
                });
                continue;
            }
        };
        on_start(Progress {
            input: idx,
            name: name.clone(),
            bytes: opened.counter.clone(),
            size: opened.size,
        });
        // A file cannot hold lines newer than its last write; allow a minute
        // of slack for writes racing the stat.
        let reference = cfg.reference_override.unwrap_or_else(|| {
            opened
                .modified
                .map(|m| timestamp_of(m + Duration::from_secs(60)))
                .unwrap_or(cfg.now)
        });
        let mut framer = Framer::new(FramerConfig {
            format: cfg.format,
            program_hint: cfg.program_hint.clone(),
            time: TimeContext {
                reference,
                zone: cfg.zone.clone(),
            },
        });
        let mut reader = LineReader::new(&mut opened.reader, cfg.max_line_bytes);
        let mut line_no = 0u64;
        let mut error = None;
        loop {
            match reader.next_line() {
                Ok(Some((bytes, info))) => {
                    line_no += 1;
                    let pos = Position {
                        source: idx as u32,
                        line: line_no,
                    };
                    // Valid UTF-8 is the rule: check it fast, replace only on failure.
                    let text: Cow<'_, str> = match std::str::from_utf8(bytes) {
                        Ok(s) => Cow::Borrowed(s),
                        Err(_) => String::from_utf8_lossy(bytes),
                    };
                    if info.truncated {
                        sink(pos, &text, &unparsed_event(UnparsedReason::TooLong));
                    } else {
                        with_event(&mut framer, &text, |ev| sink(pos, &text, ev));
                    }
                }
                Ok(None) => break,
                Err(source) => {
                    error = Some(InputError::Read {
                        path: name.clone(),
                        line: line_no,
                        source,
                    });
                    break;
                }
            }
        }
        reports.push(InputReport {
            name,
            lines: line_no,
            compression: Some(opened.compression),
            error,
        });
    }
    reports
}

#[cfg(test)]
mod tests {
    use mailwarden_core::event::EventKind;

    use super::*;

    fn cfg() -> PipelineConfig {
        PipelineConfig {
            format: Format::Auto,
            program_hint: None,
            max_line_bytes: 200,
            zone: jiff::tz::TimeZone::UTC,
            now: Timestamp::from_unix_seconds(1_700_000_000),
            reference_override: None,
        }
    }

    #[test]
    fn every_line_reaches_the_sink_and_bad_inputs_are_reported() {
        let mut data =
            b"2023-03-14T00:00:31+01:00 helga postfix/smtpd[1]: connect from a[192.0.2.1]\n".to_vec();
        data.extend_from_slice(&[b'x'; 500]);
        data.extend_from_slice(b"\n\xff\xfe garbage \x00\n\n2023-03-14T00:00:32+01:00 helga kernel: hello\n");
        let bytes: &'static [u8] = Box::leak(data.into_boxed_slice());
        let inputs = [
            InputSource::Memory {
                name: "mem".into(),
                bytes,
            },
            InputSource::File("/nonexistent/mail.log".into()),
        ];
        let mut seen = Vec::new();
        let reports = run(
            &inputs,
            &cfg(),
            |_| {},
            |pos, _raw, ev| {
                let reason = match &ev.kind {
                    EventKind::Unparsed(u) => Some(u.reason),
                    _ => None,
                };
                seen.push((pos.line, reason));
            },
        );
        assert_eq!(
            seen,
            vec![
                (1, None),
                (2, Some(UnparsedReason::TooLong)),
                (3, Some(UnparsedReason::Binary)),
                (4, Some(UnparsedReason::Empty)),
                (5, Some(UnparsedReason::UnknownProgram)),
            ]
        );
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].lines, 5);
        assert!(reports[1].error.is_some());
    }
}

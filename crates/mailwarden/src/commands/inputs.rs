//! Resolving what to read (named files, stdin, the system's mail log, or the
//! bundled sample), the time zone and time arguments, and the progress bar.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mailwarden_core::time::{CivilDateTime, Timestamp, parse_civil_prefix, parse_rfc3339_prefix};
use mailwarden_io::input::InputSource;
use mailwarden_io::pipeline::{PipelineConfig, Progress, now};

use crate::cli::{InputArgs, parse_duration_secs};

/// The bundled sample: real Postfix and Dovecot logs made by the project's
/// test lab (crates/mailwarden-testlab, `make-sample`), gzip-compressed.
const SAMPLE_POSTFIX: &[u8] = include_bytes!("../../samples/mail.log.gz");
const SAMPLE_DOVECOT: &[u8] = include_bytes!("../../samples/dovecot.log.gz");

/// The year the bundled sample was recorded in.
const SAMPLE_YEAR: i32 = 2026;

/// Where the system mail log usually is (Debian/Ubuntu, then RHEL/SUSE).
const SYSTEM_LOGS: &[&str] = &["/var/log/mail.log", "/var/log/maillog"];

/// The inputs to read, and whether they are the bundled sample.
pub struct ResolvedInputs {
    /// Inputs in order.
    pub sources: Vec<InputSource>,
    /// True when no file was named and none was found on the system.
    pub using_sample: bool,
}

/// Files as named, `-` as stdin; with none, the system log or the sample.
pub fn resolve(args: &InputArgs) -> ResolvedInputs {
    if args.sample {
        return sample();
    }
    if args.store {
        // The store is the input; files are not read.
        return ResolvedInputs {
            sources: Vec::new(),
            using_sample: false,
        };
    }
    if !args.files.is_empty() {
        let sources = args
            .files
            .iter()
            .map(|p| {
                if p.as_os_str() == "-" {
                    InputSource::Stdin
                } else {
                    InputSource::File(p.clone())
                }
            })
            .collect();
        return ResolvedInputs {
            sources,
            using_sample: false,
        };
    }
    for p in SYSTEM_LOGS {
        if Path::new(p).is_file() {
            eprintln!("mailwarden: reading {p} (name files to read others, - for stdin)");
            return ResolvedInputs {
                sources: vec![InputSource::File(p.into())],
                using_sample: false,
            };
        }
    }
    eprintln!(
        "mailwarden: no mail log at {} and no FILE given; using the bundled sample \
         (real Postfix + Dovecot logs from the project's test lab). Name files, or - for stdin.",
        SYSTEM_LOGS.join(" or ")
    );
    sample()
}

fn sample() -> ResolvedInputs {
    ResolvedInputs {
        sources: vec![
            InputSource::Memory {
                name: "sample/mail.log".into(),
                bytes: SAMPLE_POSTFIX,
            },
            InputSource::Memory {
                name: "sample/dovecot.log".into(),
                bytes: SAMPLE_DOVECOT,
            },
        ],
        using_sample: true,
    }
}

/// The zone for zone-less timestamps.
pub fn zone(name: Option<&str>) -> anyhow::Result<jiff::tz::TimeZone> {
    match name {
        Some(n) => jiff::tz::TimeZone::get(n).with_context(|| {
            format!("unknown time zone {n:?}; use an IANA name such as Europe/Berlin or UTC")
        }),
        None => Ok(jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)),
    }
}

/// The pipeline configuration from the input flags.
pub fn pipeline_config(args: &InputArgs, using_sample: bool) -> anyhow::Result<PipelineConfig> {
    let zone = if using_sample && args.read.timezone.is_none() {
        // The sample was written in UTC by the lab.
        jiff::tz::TimeZone::UTC
    } else {
        zone(args.read.timezone.as_deref())?
    };
    let year = match (args.read.year, using_sample) {
        (Some(y), _) => Some(y),
        // The sample's year-less stamps were written in this year.
        (None, true) => Some(SAMPLE_YEAR),
        (None, false) => None,
    };
    let reference_override = match year {
        Some(y) if !(1970..=9999).contains(&y) => bail!("--year {y} is out of range (1970..=9999)"),
        Some(y) => Some(
            CivilDateTime {
                year: y,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
                micros: 0,
            }
            .at_offset(0),
        ),
        None => None,
    };
    Ok(PipelineConfig {
        format: args.read.format,
        program_hint: args.read.program.clone(),
        max_line_bytes: args.read.max_line_bytes.max(256),
        zone,
        now: now(),
        reference_override,
    })
}

/// Parses a --since/--until value: RFC 3339, a local date/time, or a duration ago.
pub fn parse_time_arg(s: &str, zone: &jiff::tz::TimeZone) -> anyhow::Result<Timestamp> {
    let t = s.trim();
    if let Ok((ts, n)) = parse_rfc3339_prefix(t.as_bytes())
        && n == t.len()
    {
        return Ok(ts);
    }
    let padded = match t.len() {
        10 => format!("{t} 00:00:00"),
        16 => format!("{t}:00"),
        _ => t.to_owned(),
    };
    if let Ok((c, n)) = parse_civil_prefix(padded.as_bytes())
        && n == padded.len()
    {
        return c
            .in_zone(zone)
            .map_err(|e| anyhow::anyhow!("{s:?} is not a valid time in the configured zone: {e}"));
    }
    if let Ok(secs) = parse_duration_secs(t) {
        return Ok(now().plus_seconds(-secs));
    }
    bail!(
        "cannot read time {s:?}; write 2023-03-14, \"2023-03-14 08:00\", 2023-03-14T08:00:00+01:00, or a duration back from now such as 2h or 30d"
    )
}

/// A progress bar on stderr when it is a terminal, else nothing.
pub struct ProgressUi {
    bar: Option<ProgressBar>,
    current: std::cell::RefCell<Option<Progress>>,
    inputs: usize,
}

impl ProgressUi {
    /// A progress display for `inputs` inputs; disabled when stderr is not a
    /// terminal or `disabled` is set.
    pub fn new(inputs: usize, disabled: bool) -> ProgressUi {
        let bar = (!disabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        ProgressUi {
            bar,
            current: std::cell::RefCell::new(None),
            inputs,
        }
    }

    /// An input was opened.
    pub fn start(&self, p: Progress) {
        if let Some(b) = &self.bar {
            b.set_length(p.size.unwrap_or(0));
            b.set_position(0);
            b.set_message(format!("[{}/{}] {}", p.input + 1, self.inputs, p.name));
        }
        *self.current.borrow_mut() = Some(p);
    }

    /// Called every line; updates the bar every 64k lines.
    #[inline]
    pub fn tick(&self, line: u64) {
        if line & 0xFFFF == 0
            && let Some(b) = &self.bar
            && let Some(p) = self.current.borrow().as_ref()
        {
            b.set_position(p.bytes.get());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

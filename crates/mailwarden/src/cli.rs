//! The command line: clap definitions only. Flags are turned into the library
//! crates' config structs in `commands`; no library sees a flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mailwarden_core::framing::Format;
use mailwarden_core::search::StatusFilter;

/// Security monitoring and incident response for self-hosted mail servers
/// (Mailcow, Postfix, Dovecot, Rspamd).
///
/// mailwarden reads mail logs in every framing they come in, turns each line
/// into a typed event, stitches Postfix queue ids into per-message records,
/// and answers questions about them: what went through the server, who sent
/// it, who tried to log in, and what was rejected.
#[derive(Debug, Parser)]
#[command(name = "mailwarden", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read mail logs: summarize, search, or show the parsed events.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Keep mail logs: follow every source continuously into the local store,
    /// receive syslog, and forward to a central collector.
    ///
    /// With no configuration it detects a Mailcow installation
    /// (/opt/mailcow-dockerized) and collects its containers' logs (through
    /// the Docker API, or straight from the json-file logs on disk while the
    /// engine or the containers are down) and its Redis log lists; without
    /// Mailcow it follows /var/log/mail.log. SIGTERM or Ctrl-C flush the
    /// current batch and the checkpoints before exiting; a restart resumes
    /// without loss or duplicates.
    Serve(ServeArgs),
    /// Read sources once into the store: log files (plain or compressed,
    /// rotated ones included), a Docker data root (the outage path: container
    /// logs straight from disk), or Mailcow's Redis lists. Already stored
    /// lines are not stored twice.
    Ingest(IngestArgs),
    /// Answer "sent by us, or spoofed?" for a sender address, with evidence:
    /// every message with it as envelope sender (who submitted it, from
    /// where, authenticated as whom, where it went, scanner verdicts), the
    /// login and failure history of the accounts that sent it, a timeline,
    /// and how much time the logs really cover — absence of records counts
    /// only inside covered time.
    ///
    /// Verdicts: sent-by-us-authenticated (names the account),
    /// relayed-by-us-unauthenticated (open relay / mynetworks: critical),
    /// spoofed-externally, inconclusive (says which logs are missing).
    /// Reads the store (--store) or log files. Exits 0 with a verdict, 2 on
    /// errors.
    Investigate(InvestigateArgs),
    /// Show what `serve` is doing: each source's position and lag, events per
    /// second, store size and oldest day, forwarding state, errors.
    Status(StatusArgs),
    /// Audit a domain's mail authentication in DNS: SPF, DKIM, DMARC,
    /// MTA-STS, TLS-RPT, MX, reverse DNS and blocklists. Every finding has a
    /// stable id, a severity and the fix; exits 1 when anything fails.
    Dns(crate::commands::dns::DnsArgs),
    /// Read DMARC aggregate reports and SMTP TLS reports (XML, JSON, gzip,
    /// zip, or attached to mails in .eml, mbox and Maildir folders): who sends
    /// as your domains, and which of them fail authentication.
    Dmarc(crate::commands::dmarc::DmarcArgs),
    /// Run the detection rules (mail anomalies: outbound bursts, senders
    /// that are no mailbox, brute force, relay attempts, spoofing waves, …)
    /// over past logs or the store, and print the alerts they raise.
    Detect(crate::commands::detect::DetectArgs),
    /// The detection rules: list the built-in and user rules, show one,
    /// check YAML rule files (every mistake as FILE:LINE:COL with the fix),
    /// and try a rule file on log files.
    ///
    /// User rules are YAML (Sigma-like: field conditions, a condition over
    /// selections, threshold or distinct count in a timeframe, group-by)
    /// and run beside the built-ins with `detect --rules PATH`; the format is
    /// described in docs/rules.md, examples in examples/rules/.
    #[command(subcommand)]
    Rules(crate::commands::rules::RulesCommand),
    /// The stored alerts: list, show, acknowledge, suppress.
    ///
    /// List the alerts the detection rules raised, show one with its
    /// evidence, acknowledge them (repeats then merge silently for a while),
    /// and suppress a rule's alerts, or some of its keys, for a time. Works
    /// while `serve` runs. Exits 0 when done (an empty list too), 2 on errors.
    Alerts(crate::commands::alerts::AlertsArgs),
    /// Check the server itself: containers against their compose pins,
    /// MariaDB's data directory against the server version, host triage
    /// (logins, sessions, users, shell history, cron, listening ports).
    /// Read-only. Exits 1 when a check fails, 2 on errors.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Scan web directories for PHP backdoors and webshells: code patterns,
    /// obfuscation, placement, file context, and integrity against git's
    /// HEAD or a baseline manifest. Read-only. Exits 1 when a file is
    /// suspicious or worse, 2 on errors.
    Webscan(crate::commands::webscan::WebscanArgs),
}

/// Where the address directory comes from (who is a mailbox, an alias, a
/// domain of ours): `investigate` looks the sender up in it, `detect`'s
/// sender-not-mailbox rule judges every sender against it.
#[derive(Args, Debug, Clone, Default)]
pub struct DirectoryArgs {
    /// An address list, one entry per line: `user@dom` (mailbox),
    /// `alias@dom: target, …` (alias), `@dom: target.tld` (domain alias),
    /// `@dom: user@x` (catch-all), `@dom` (a domain of ours), `#` comments.
    /// Default: Mailcow's database when Mailcow is found.
    #[arg(long, value_name = "FILE", conflicts_with = "mailcow_api")]
    pub directory: Option<std::path::PathBuf>,
    /// Ask the directory through Mailcow's HTTP API at this URL (e.g.
    /// `https://mail.example.com`) instead of its database. The key comes from
    /// MAILCOW_API_KEY or --mailcow-api-key-file (never from the command
    /// line, where other users could read it); a read-only key is enough. A
    /// refused key is not retried: Mailcow bans addresses after failed API
    /// logins.
    #[arg(long, value_name = "URL")]
    pub mailcow_api: Option<String>,
    /// A file holding the Mailcow API key (first line).
    #[arg(long, value_name = "FILE", requires = "mailcow_api")]
    pub mailcow_api_key_file: Option<std::path::PathBuf>,
    /// Extra trust anchors (PEM) for the API's certificate, e.g. a
    /// self-signed Mailcow certificate.
    #[arg(long, value_name = "PEM", requires = "mailcow_api")]
    pub mailcow_api_ca: Option<std::path::PathBuf>,
    /// Mailcow installation directory (default: /opt/mailcow-dockerized when present).
    #[arg(long, value_name = "DIR")]
    pub mailcow_dir: Option<std::path::PathBuf>,
}

/// Where the store is.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The data directory holding the store (default: /var/lib/mailwarden as
    /// root, else ~/.local/share/mailwarden; or `data_dir` from the config).
    #[arg(long, value_name = "DIR", env = "MAILWARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `investigate` options.
#[derive(Debug, Args)]
pub struct InvestigateArgs {
    /// The sender address to investigate: messages with it as envelope
    /// sender (MAIL FROM), or as `From:` header where Postfix logs that
    /// header (`header_checks = regexp:/etc/postfix/header_checks` holding
    /// `/^From:/ INFO`), or joined by a sample's queue id.
    #[arg(long, value_name = "ADDR")]
    pub sender: String,
    /// Our mail domains (repeatable); mail to them is inbound, not relayed.
    /// Default: the domains the logs show local deliveries for.
    #[arg(long = "our-domain", value_name = "DOMAIN")]
    pub our_domains: Vec<String>,
    /// A sample of the mail in question (.eml, an mbox, or a pasted header
    /// block; repeatable): its Received chain shows where it entered our
    /// servers, or that it never did; its queue ids are looked up in the logs.
    #[arg(long, value_name = "FILE")]
    pub eml: Vec<std::path::PathBuf>,
    /// Our mail servers' host names (repeatable), to recognise our Received
    /// lines. Default: MAILCOW_HOSTNAME (when Mailcow is found), /etc/mailname
    /// and this machine's host name.
    #[arg(long = "our-host", value_name = "HOST")]
    pub our_hosts: Vec<String>,
    /// Our servers' addresses or networks (repeatable, CIDR allowed).
    #[arg(long = "our-ip", value_name = "IP")]
    pub our_ips: Vec<String>,
    /// The DNS server to check the samples' SPF, DKIM, DMARC and ARC, and
    /// the sender domain's published SPF and DMARC (would receivers have
    /// rejected a spoof?), against (IP:PORT; a recursive resolver).
    /// Default: the system's resolvers.
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Do not query DNS: analyse the samples' headers only, and skip the
    /// sender domain's posture.
    #[arg(long, conflicts_with = "resolver")]
    pub no_dns: bool,
    /// The address directory: a list file, Mailcow's API, or Mailcow's database.
    #[command(flatten)]
    pub dir: DirectoryArgs,
    /// Write a Markdown incident note with the verdict and the evidence.
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<std::path::PathBuf>,
    /// Print the whole result as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Where the logs come from (default window: --since 30d).
    #[command(flatten)]
    pub input: InputArgs,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see dist/mailwarden.example.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "config_if_exists")]
    pub config: Option<PathBuf>,
    /// Like --config, but run with auto-detection when the file does not exist
    /// (the systemd unit uses this).
    #[arg(long, value_name = "FILE")]
    pub config_if_exists: Option<PathBuf>,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Mailcow installation directory (default: /opt/mailcow-dockerized when present).
    #[arg(long, value_name = "DIR")]
    pub mailcow_dir: Option<PathBuf>,
    /// Do not collect from a Mailcow installation even if one is found.
    #[arg(long)]
    pub no_mailcow: bool,

    /// Run no detection rules (by default every built-in rule and the
    /// `[detect]` rules files run on each line as it arrives; alerts are
    /// stored and sent to the `[alerts]` sinks).
    #[arg(long)]
    pub no_detect: bool,

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Stop after this long (for tests and trials), e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs, hide = true)]
    pub run_for: Option<i64>,
}

/// `ingest` options.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Log files to read once (plain, .gz, .bz2, .xz; rotated ones oldest first).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Framing of the files' lines (as for `logs`).
    #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = parse_format)]
    pub format: Format,
    /// Program to assume for lines without one.
    #[arg(long, value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Read the json-file container logs under this Docker data root
    /// (e.g. /var/lib/docker) — works while the engine is down.
    #[arg(long, value_name = "DIR")]
    pub docker_data_root: Option<PathBuf>,
    /// Compose project whose containers to read from the data root (default:
    /// the Mailcow installation's project when one is found, else every
    /// container); `*` for every container.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Read Mailcow's Redis log lists once (settings from mailcow.conf).
    #[arg(long)]
    pub mailcow_redis: bool,
    /// Mailcow installation directory (default: /opt/mailcow-dockerized).
    #[arg(long, value_name = "DIR")]
    pub mailcow_dir: Option<PathBuf>,
    /// Time zone of zone-less timestamps (default: the system's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}

/// `status` options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mailwarden logs …`
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// A traffic report: everything pflogsumm reports, counted correctly when a
    /// content filter re-injects mail, plus postscreen/DNSBL statistics,
    /// outbound volume per SASL user, senders that never authenticated,
    /// unauthenticated relaying and unparsed-line accounting.
    ///
    /// With no FILE, reads /var/log/mail.log (or /var/log/maillog); when
    /// neither exists, summarizes the bundled sample log made by the project's
    /// Postfix + Dovecot test lab, and says so.
    Summary(SummaryArgs),
    /// Find messages (default) or raw lines (--lines) by sender, recipient,
    /// SASL user, client address, queue id, Message-ID, status and time.
    ///
    /// Exits 0 when something matched, 1 when nothing did, 2 on errors.
    Search(SearchArgs),
    /// Print every line as a typed event, one JSON object per line (the
    /// pipeline's debugging view), or only counts with --count.
    Parse(ParseArgs),
}

/// How log lines are read: framing, program, zone and year of timestamps
/// that lack them, the longest line kept. Shared by every command that
/// reads log files.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// Framing of the lines. `auto` detects per line and handles mixed input.
    #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = parse_format, help = format_help())]
    pub format: Format,

    /// Program to assume for lines that carry none (raw lines, bare container
    /// output, Mailcow's NETFILTER_LOG), e.g. postfix/smtpd or netfilter.
    #[arg(long, value_name = "PROGRAM")]
    pub program: Option<String>,

    /// Time zone of timestamps written without one (RFC 3164 `Mmm dd HH:MM:SS`,
    /// Dovecot, Rspamd and MariaDB files). Default: the system's zone.
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,

    /// Year of year-less timestamps. Default: inferred from each file's
    /// modification time (a December line read in January belongs to the
    /// previous year) and December→January crossings inside the file.
    #[arg(long, value_name = "YEAR")]
    pub year: Option<i32>,

    /// Longest line kept; longer lines are cut and counted as unparsed
    /// `too_long` records.
    #[arg(long, default_value_t = 65_536, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

/// Where the log lines come from and how to read them.
#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Log files (plain, .gz, .bz2, .xz — detected by content), or - for
    /// standard input. Files are read in the order given; give rotated files
    /// oldest first (mail.log.2.gz mail.log.1 mail.log) so messages that span
    /// a rotation stitch together.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// How the lines are read.
    #[command(flatten)]
    pub read: ReadArgs,

    /// Emit a message as incomplete when no line about it arrived for this
    /// long (log time). Bounds memory on endless or broken logs.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration_secs)]
    pub horizon: i64,

    /// Most messages kept open at once before the oldest are emitted as incomplete.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub max_open: usize,

    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Read the bundled sample (real Postfix + Dovecot logs from the project's
    /// test lab) instead of FILE or the system's mail log.
    #[arg(long, conflicts_with_all = ["files", "store"])]
    pub sample: bool,

    /// Read the lines kept by `serve`/`ingest` in the store instead of files
    /// (with --since/--until for `summary` and `parse` via the store's time index).
    #[arg(long, conflicts_with = "files")]
    pub store: bool,

    /// The data directory of the store (with --store).
    #[arg(long, value_name = "DIR", env = "MAILWARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Only lines (and messages) not before: RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]` (in --timezone), or a
    /// duration back from now (`2h`, `30d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Not after; same forms as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// `logs summary` options.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,

    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,

    /// Rows in each top list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// A domain this server hosts (repeatable). Domains that receive local
    /// deliveries or appear in SASL user names are detected automatically; use
    /// this to add the others, so unauthenticated senders claiming them are flagged.
    #[arg(long = "local-domain", value_name = "DOMAIN")]
    pub local_domains: Vec<String>,
}

/// `logs search` options.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,

    /// Sender: the envelope sender, or the `From:` header where Postfix logs
    /// it (header_checks INFO); `@domain` matches a whole domain, `<>` the
    /// null sender.
    #[arg(long, value_name = "ADDR")]
    pub sender: Option<String>,
    /// Recipient (original or rewritten); `@domain` matches a whole domain.
    #[arg(long, value_name = "ADDR")]
    pub recipient: Option<String>,
    /// SASL user that submitted the message.
    #[arg(long, value_name = "USER")]
    pub sasl_user: Option<String>,
    /// Client address; a prefix ending in `.` or `:` matches a range (192.0.2.).
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<String>,
    /// Any queue id of the message (re-injected copies included).
    #[arg(long, value_name = "QUEUE_ID")]
    pub queue_id: Option<String>,
    /// Message-ID header value, with or without angle brackets.
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
    /// Outcome: sent, deferred, bounced, expired, rejected, held.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<StatusFilter>,
    /// Print the raw log lines of matching messages (and matching rejections,
    /// connections and failed logins) instead of message records.
    #[arg(long)]
    pub lines: bool,
    /// One JSON object per result.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many results.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// `logs parse` options.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Print only counts (lines, events per family, unparsed per reason) and
    /// the stitcher's message counts, as JSON.
    #[arg(long)]
    pub count: bool,
    /// Print only the unparsed lines, with their reason and position.
    #[arg(long, conflicts_with = "count")]
    pub unparsed: bool,
    /// Print the lines themselves, as read (with --store: get the kept logs
    /// back as a log file). Control characters are escaped only when stdout
    /// is a terminal.
    #[arg(long, conflicts_with_all = ["count", "unparsed"])]
    pub raw: bool,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn format_help() -> String {
    let mut h = String::from("Framing of the lines:");
    for (_, name, desc) in Format::ALL {
        h.push_str(&format!("\n  {name:<8} {desc}"));
    }
    h
}

/// Parses `90s`, `15m`, `24h`, `30d`, `2w` (or plain seconds) into seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}; write e.g. 90s, 15m, 24h, 30d or 2w"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("invalid duration unit in {s:?}; use s, m, h, d or w")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("24h"), Ok(86_400));
        assert_eq!(parse_duration_secs("2w"), Ok(1_209_600));
        assert_eq!(parse_duration_secs("15"), Ok(15));
        assert!(parse_duration_secs("1y").is_err());
        assert!(parse_duration_secs("h").is_err());
    }
}

//! Framing tests: the RFC examples, syslog_loose's vectors, and one real line
//! of every wrapper (Docker, journald, Mailcow Redis) and native file format.

use proptest::prelude::*;

use super::*;
use crate::time::{TimeContext, parse_rfc3339_prefix};

fn framer(format: Format) -> Framer {
    Framer::new(FramerConfig {
        format,
        program_hint: None,
        time: TimeContext::utc(parse_rfc3339_prefix(b"2023-12-31T12:00:00Z").unwrap().0),
    })
}

/// (line, host, program, pid, message, timestamp as displayed)
type Expect<'a> = (Option<&'a str>, &'a str, Option<u32>, &'a str, Option<&'a str>);

#[track_caller]
fn check(line: &str, want: Expect<'_>) {
    let mut f = framer(Format::Auto);
    let got = f.frame(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
    let ts = got.ts.map(|t| t.to_string());
    assert_eq!(
        (
            got.host.as_deref(),
            &*got.program,
            got.pid,
            &*got.message,
            ts.as_deref()
        ),
        want,
        "{line}"
    );
}

#[test]
fn rfc_examples() {
    // RFC 5424 §6.5 and RFC 3164 §5.4 (../shared/corpus/logs/rfc-syslog-examples).
    check(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        (
            Some("mymachine.example.com"),
            "su",
            None,
            "'su root' failed for lonvick on /dev/pts/8",
            Some("2003-10-11T22:14:15.003000Z"),
        ),
    );
    check(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        (
            Some("192.0.2.1"),
            "myproc",
            Some(8710),
            "%% It's time to make the do-nuts.",
            Some("2003-08-24T05:14:15.000003-07:00"),
        ),
    );
    check(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
        (
            Some("mymachine.example.com"),
            "evntslog",
            None,
            "",
            Some("2003-10-11T22:14:15.003000Z"),
        ),
    );
    check(
        "<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 k=\"quote \\\" and \\] inside\"] msg",
        (
            Some("host"),
            "app",
            None,
            "msg",
            Some("2003-10-11T22:14:15.003000Z"),
        ),
    );
    check(
        "<14>1 - 10.0.4.87 Serial-Debugger - - - Serializer started!",
        (
            Some("10.0.4.87"),
            "Serial-Debugger",
            None,
            "Serializer started!",
            None,
        ),
    );
    check(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        (
            Some("mymachine"),
            "su",
            None,
            "'su root' failed for lonvick on /dev/pts/8",
            Some("2023-10-11T22:14:15.000000Z"),
        ),
    );
}

#[test]
fn syslog_variants() {
    // syslog_loose test vectors (../shared/corpus/logs/syslog-loose).
    check(
        "<133>Jan 13 16:33:35 haproxy[73411]: Proxy sticky-servers started.",
        (
            None,
            "haproxy",
            Some(73411),
            "Proxy sticky-servers started.",
            Some("2023-01-13T16:33:35.000000Z"),
        ),
    );
    check(
        "<190>2019-02-13T21:53:30.605850+00:00 74794bfb6795 liblogging-stdlog:  [origin software=\"rsyslogd\"] start",
        (
            Some("74794bfb6795"),
            "liblogging-stdlog",
            None,
            " [origin software=\"rsyslogd\"] start",
            Some("2019-02-13T21:53:30.605850Z"),
        ),
    );
    check(
        "<13>Feb 13 20:07:26 74794bfb6795 root[8539]:syslog message",
        (
            Some("74794bfb6795"),
            "root",
            Some(8539),
            "syslog message",
            Some("2023-02-13T20:07:26.000000Z"),
        ),
    );
    // rsyslog's file format with long queue ids (production corpus).
    check(
        "2023-03-14T00:00:31.185246+01:00 helga postfix/postscreen[3163107]: CONNECT from [185.48.118.128]:36942 to [188.34.187.246]:25",
        (
            Some("helga"),
            "postfix/postscreen",
            Some(3163107),
            "CONNECT from [185.48.118.128]:36942 to [188.34.187.246]:25",
            Some("2023-03-14T00:00:31.185246+01:00"),
        ),
    );
    // Mailcow's service names.
    check(
        "Mar  4 02:05:02 mail postfix/submission-haproxy/smtpd[25846]: connect from x[192.0.2.1]",
        (
            Some("mail"),
            "postfix/submission-haproxy/smtpd",
            Some(25846),
            "connect from x[192.0.2.1]",
            Some("2023-03-04T02:05:02.000000Z"),
        ),
    );
    // SOGo's own log has no host and a space before the pid.
    check(
        "Mar 14 00:00:31 sogod [1234]: SOGoRootPage successful login from '192.0.2.1' for user 'a@b'",
        (
            None,
            "sogod",
            Some(1234),
            "SOGoRootPage successful login from '192.0.2.1' for user 'a@b'",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
}

#[test]
fn json_wrappers() {
    // Docker json-file of Mailcow's postfix container: the payload is a syslog line; Docker's time wins.
    check(
        r#"{"log":"Mar 14 00:00:31 a1b2c3 postfix/smtpd[123]: connect from x[192.0.2.1]\n","stream":"stdout","time":"2023-03-14T00:00:31.123456789Z"}"#,
        (
            Some("a1b2c3"),
            "postfix/smtpd",
            Some(123),
            "connect from x[192.0.2.1]",
            Some("2023-03-14T00:00:31.123456Z"),
        ),
    );
    // Docker json-file of the rspamd container: rspamd's native format inside.
    check(
        r#"{"log":"2023-03-14 00:00:31 #27538(normal) <8ae27d>; task; rspamd_task_write_log: id: <x>\n","stream":"stdout","time":"2023-03-14T00:00:31Z"}"#,
        (
            None,
            "rspamd",
            Some(27538),
            "<8ae27d>; task; rspamd_task_write_log: id: <x>",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
    // journald export.
    check(
        r#"{"__REALTIME_TIMESTAMP":"1678748431185246","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"99","PRIORITY":"6","MESSAGE":"connect from x[192.0.2.1]"}"#,
        (
            Some("mx"),
            "postfix/smtpd",
            Some(99),
            "connect from x[192.0.2.1]",
            Some("2023-03-13T23:00:31.185246Z"),
        ),
    );
    // journald with a binary MESSAGE (byte array).
    check(
        r#"{"__REALTIME_TIMESTAMP":"1678748431000000","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":[105,109,97,112,255]}"#,
        (
            None,
            "dovecot",
            None,
            "imap\u{fffd}",
            Some("2023-03-13T23:00:31.000000Z"),
        ),
    );
    // Mailcow Redis list entries: time as a string (POSTFIX_MAILLOG) and as an integer (NETFILTER_LOG).
    check(
        r#"{"time":"1678748431","priority":"info","program":"postfix/smtpd","message":"connect from x[192.0.2.1]"}"#,
        (
            None,
            "postfix/smtpd",
            None,
            "connect from x[192.0.2.1]",
            Some("2023-03-13T23:00:31.000000Z"),
        ),
    );
    check(
        r#"{"time":1678748431,"priority":"crit","message":"Banning 192.0.2.7/32 for 30 minutes"}"#,
        (
            None,
            "",
            None,
            "Banning 192.0.2.7/32 for 30 minutes",
            Some("2023-03-13T23:00:31.000000Z"),
        ),
    );
}

#[test]
fn native_formats() {
    check(
        "Dec 04 20:40:01 imap-login: Info: Login: user=<alice@lab.test>, method=PLAIN, rip=127.0.0.1",
        (
            None,
            "dovecot",
            None,
            "imap-login: Info: Login: user=<alice@lab.test>, method=PLAIN, rip=127.0.0.1",
            Some("2023-12-04T20:40:01.000000Z"),
        ),
    );
    check(
        "2023-03-14 00:00:31 [notice] #27538(normal) <8ae27d>; task; x: y",
        (
            None,
            "rspamd",
            Some(27538),
            "<8ae27d>; task; x: y",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
    check(
        "2023-03-14  0:00:31 0 [Note] Starting MariaDB 10.11.6-MariaDB as process 1",
        (
            None,
            "mariadbd",
            None,
            "0 [Note] Starting MariaDB 10.11.6-MariaDB as process 1",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
    check(
        "2023-03-14 00:00:31+00:00 [Note] [Entrypoint]: MariaDB upgrade not required",
        (
            None,
            "mariadbd",
            None,
            "[Note] [Entrypoint]: MariaDB upgrade not required",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
    check(
        "172.22.1.1 - - [14/Mar/2023:00:00:31 +0100] \"GET /SOGo/ HTTP/2.0\" 200 1234 \"-\" \"curl/8\"",
        (
            None,
            "nginx",
            None,
            "172.22.1.1 - - [14/Mar/2023:00:00:31 +0100] \"GET /SOGo/ HTTP/2.0\" 200 1234 \"-\" \"curl/8\"",
            Some("2023-03-14T00:00:31.000000+01:00"),
        ),
    );
    check(
        "2023/03/14 00:00:31 [error] 12#12: *1 open() failed",
        (
            None,
            "nginx",
            None,
            "[error] 12#12: *1 open() failed",
            Some("2023-03-14T00:00:31.000000Z"),
        ),
    );
}

#[test]
fn year_rollover_inside_one_file() {
    let mut f = Framer::new(FramerConfig {
        format: Format::Rfc3164,
        program_hint: None,
        time: TimeContext::utc(parse_rfc3339_prefix(b"2024-01-01T00:10:00Z").unwrap().0),
    });
    let a = f.frame("Dec 31 23:59:59 h postfix/smtpd[1]: x").unwrap();
    let b = f.frame("Jan  1 00:00:01 h postfix/smtpd[1]: x").unwrap();
    assert_eq!(a.ts.unwrap().to_string(), "2023-12-31T23:59:59.000000Z");
    assert_eq!(b.ts.unwrap().to_string(), "2024-01-01T00:00:01.000000Z");
}

#[test]
fn failures_have_reasons() {
    let mut f = framer(Format::Auto);
    assert_eq!(f.frame(""), Err(UnparsedReason::Empty));
    assert_eq!(f.frame("   "), Err(UnparsedReason::Empty));
    assert_eq!(
        f.frame("complete and utter gobbledegook"),
        Err(UnparsedReason::Framing)
    );
    assert_eq!(f.frame("a\0b"), Err(UnparsedReason::Binary));
    assert_eq!(
        f.frame("Feb 30 10:00:00 h p: x"),
        Err(UnparsedReason::BadTimestamp)
    );
    assert_eq!(
        f.frame("2023-13-01T00:00:00Z h p: x"),
        Err(UnparsedReason::BadTimestamp)
    );
    assert_eq!(f.frame("{\"log\": 5}"), Err(UnparsedReason::Framing));
    assert_eq!(
        f.frame("{\"stream\":\"stdout\",\"log\":null}"),
        Err(UnparsedReason::NoMessage)
    );
    assert_eq!(f.frame("{not json"), Err(UnparsedReason::Framing));
}

#[test]
fn forced_raw_with_program_hint() {
    let mut f = Framer::new(FramerConfig {
        format: Format::Raw,
        program_hint: Some("postfix/smtpd".into()),
        time: TimeContext::utc(parse_rfc3339_prefix(b"2023-12-31T12:00:00Z").unwrap().0),
    });
    let got = f.frame("connect from x[192.0.2.1]").unwrap();
    assert_eq!(
        (&*got.program, &*got.message),
        ("postfix/smtpd", "connect from x[192.0.2.1]")
    );
}

#[test]
fn format_names_roundtrip() {
    for (f, name, _) in Format::ALL {
        assert_eq!(name.parse::<Format>(), Ok(f));
        assert_eq!(f.to_string(), name);
    }
    assert!("nope".parse::<Format>().unwrap_err().contains("expected one of"));
}

fn samples() -> Vec<&'static str> {
    vec![
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 [a@1 k=\"v\"] msg",
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        "2023-03-14T00:00:31.185246+01:00 helga postfix/postscreen[3163107]: CONNECT from [1.2.3.4]:1 to [5.6.7.8]:25",
        r#"{"log":"Mar 14 00:00:31 a postfix/smtpd[1]: x\n","stream":"stdout","time":"2023-03-14T00:00:31Z"}"#,
        r#"{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"x","MESSAGE":"y"}"#,
        "2023-03-14  0:00:31 0 [Note] x",
        "2023-03-14 00:00:31 #1(normal) <a>; task; x",
        "1.2.3.4 - - [14/Mar/2023:00:00:31 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
        "Dec 04 20:40:01 imap-login: Info: Login: user=<a>",
    ]
}

proptest! {
    #[test]
    fn no_input_panics_any_framing(s in "\\PC{0,200}", f in 0usize..12) {
        let mut fr = framer(Format::ALL[f].0);
        let _ = fr.frame(&s);
    }

    #[test]
    fn mutated_real_lines_do_not_panic(i in 0usize..9, cut in 0usize..200, pos in 0usize..200, c in any::<char>()) {
        let mut fr = framer(Format::Auto);
        let mut s: String = samples()[i].chars().take(cut).collect();
        let _ = fr.frame(&s);
        let at = s.char_indices().nth(pos % (s.chars().count() + 1)).map(|(i, _)| i).unwrap_or(s.len());
        s.insert(at, c);
        let _ = fr.frame(&s);
        if let Ok(framed) = fr.frame(&s) {
            let _ = crate::parse::parse_framed(&framed);
        }
    }
}

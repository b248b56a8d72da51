use super::*;

/// A `mailcow.conf` in the shape `generate_config.sh` writes today (2024–2025
/// releases: Redis password and published port), with made-up secrets.
const CURRENT: &str = "\
# ------------------------------
# mailcow web ui configuration
# ------------------------------
# example.org is _not_ a valid hostname, use a fqdn here.

MAILCOW_HOSTNAME=mx.example.net

MAILCOW_PASS_SCHEME=BLF-CRYPT

# ------------------------------
# SQL database configuration
# ------------------------------

DBNAME=mailcow
DBUSER=mailcow

# Please use long, random alphanumeric strings (A-Za-z0-9)

DBPASS=Qx7fTzK2mWc9LrB4vN8hJd3sPa6e
DBROOT=Hy3nVb8Kq2Xw5Zr9Lm4Tc7Fg1Dp6

# ------------------------------
# REDIS configuration
# ------------------------------

REDISPASS=Rk4Wm9Tz2Qb7Xn5Vc8Lh3Jf6Sd1a

HTTP_PORT=80
HTTP_BIND=

HTTPS_PORT=443
HTTPS_BIND=

SMTP_PORT=25
SUBMISSION_PORT=587
DOVEADM_PORT=127.0.0.1:19991
SQL_PORT=127.0.0.1:13306
REDIS_PORT=127.0.0.1:7654

# Your timezone
TZ=Europe/Vienna

# Fixed project name
# Please use lowercase letters only

COMPOSE_PROJECT_NAME=mailcowdockerized

DOCKER_COMPOSE_VERSION=native

ADDITIONAL_SAN=

# Max log lines per service to keep in Redis logs

LOG_LINES=9999

IPV4_NETWORK=172.22.1

#API_KEY=
#API_ALLOW_FROM=172.22.1.1,127.0.0.1

#WATCHDOG_NOTIFY_WEBHOOK_BODY='{\"username\": \"mailcow Watchdog\", \"content\": \"**${SUBJECT}**\\n${BODY}\"}'

SPAMHAUS_DQS_KEY=
";

/// An older install (2021-ish): no Redis password, no published Redis port,
/// the old project name and a short LOG_LINES.
const OLD: &str = "\
MAILCOW_HOSTNAME=mail.example.org
DBNAME=mailcow
DBUSER=mailcow
DBPASS=abc123
DBROOT=def456
HTTP_PORT=80
HTTP_BIND=0.0.0.0
SQL_PORT=127.0.0.1:13306
TZ=Etc/UTC
COMPOSE_PROJECT_NAME=mailcow-dockerized
LOG_LINES=2000
IPV4_NETWORK=172.22.1
";

fn parse(text: &str) -> MailcowConf {
    MailcowConf::parse(Path::new("/opt/mailcow-dockerized"), text).expect("parses")
}

fn parse_err(text: &str) -> String {
    MailcowConf::parse(Path::new("/srv/mc"), text)
        .expect_err("should not parse")
        .to_string()
}

#[test]
fn current_install() {
    let c = parse(CURRENT);
    assert_eq!(c.hostname(), Some("mx.example.net"));
    assert_eq!(c.compose_project(), "mailcowdockerized");
    assert_eq!(c.tz(), Some("Europe/Vienna"));
    assert_eq!(c.log_lines().unwrap(), 9999);
    assert_eq!(
        c.redis_endpoint().unwrap(),
        Endpoint {
            host: "127.0.0.1".into(),
            port: 7654
        }
    );
    assert_eq!(c.redis_password(), Some("Rk4Wm9Tz2Qb7Xn5Vc8Lh3Jf6Sd1a"));
    let db = c.db().unwrap();
    assert_eq!(db.name.as_deref(), Some("mailcow"));
    assert_eq!(db.user.as_deref(), Some("mailcow"));
    assert_eq!(db.password.as_deref(), Some("Qx7fTzK2mWc9LrB4vN8hJd3sPa6e"));
    assert_eq!(db.root_password.as_deref(), Some("Hy3nVb8Kq2Xw5Zr9Lm4Tc7Fg1Dp6"));
    assert_eq!(db.endpoint.port, 13306);
    // Empty values are kept as empty, and read as unset by the accessors.
    assert_eq!(c.get("HTTP_BIND"), Some(""));
    assert_eq!(c.get("ADDITIONAL_SAN"), Some(""));
    // Commented-out settings do not exist.
    assert_eq!(c.get("API_KEY"), None);
    assert_eq!(c.get("WATCHDOG_NOTIFY_WEBHOOK_BODY"), None);
    assert_eq!(c.line_of("REDISPASS"), Some(26));
}

#[test]
fn old_install_without_redis_password() {
    let c = parse(OLD);
    assert_eq!(c.redis_password(), None);
    assert_eq!(
        c.redis_endpoint().unwrap().port,
        7654,
        "compose default when REDIS_PORT is absent"
    );
    assert_eq!(
        c.redis_internal_endpoint(),
        Endpoint {
            host: "172.22.1.249".into(),
            port: 6379
        }
    );
    assert_eq!(c.compose_project(), "mailcow-dockerized");
    assert_eq!(c.log_lines().unwrap(), 2000);
}

#[test]
fn secrets_never_in_debug() {
    let c = parse(CURRENT);
    let dbg = format!("{c:?} {:?}", c.db().unwrap());
    for secret in ["Qx7fTzK2", "Hy3nVb8K", "Rk4Wm9Tz"] {
        assert!(!dbg.contains(secret), "{secret} leaked: {dbg}");
    }
    assert!(dbg.contains("mx.example.net"));
}

#[test]
fn value_syntax() {
    let cases: &[(&str, &str, &str)] = &[
        ("A=plain", "A", "plain"),
        ("A = spaced ", "A", "spaced"),
        ("export A=exported", "A", "exported"),
        (
            "A=\"double quoted # not a comment\"",
            "A",
            "double quoted # not a comment",
        ),
        ("A='single $NOPE ${X}'", "A", "single $NOPE ${X}"),
        ("A=\"esc \\\" \\\\ \\$HOME \\x\"", "A", "esc \" \\ $HOME \\x"),
        ("A=value # trailing comment", "A", "value"),
        ("A=value#not-a-comment", "A", "value#not-a-comment"),
        ("A=\"quoted\" # comment", "A", "quoted"),
        ("A=", "A", ""),
        ("A=\"\"", "A", ""),
        ("A=ünïcödé €", "A", "ünïcödé €"),
        ("A=a=b=c", "A", "a=b=c"),
        ("\u{feff}A=bom", "A", "bom"),
    ];
    for (line, key, want) in cases {
        let c = parse(line);
        assert_eq!(c.get(key), Some(*want), "{line}");
    }
}

#[test]
fn references_resolve_against_earlier_keys() {
    let c = parse(
        "DBNAME=mailcow\n\
         DBUSER=${DBNAME}\n\
         B=$DBNAME-x\n\
         C=\"${DBNAME}_db\"\n\
         D=${UNKNOWN}\n\
         E=${UNKNOWN:-fallback}\n\
         F=${LATER}\n\
         EMPTY=\n\
         G=${EMPTY:-dflt}\n\
         H=${EMPTY-kept}\n\
         I=$5 and $\n\
         LATER=x\n",
    );
    assert_eq!(c.get("DBUSER"), Some("mailcow"));
    assert_eq!(c.get("B"), Some("mailcow-x"));
    assert_eq!(c.get("C"), Some("mailcow_db"));
    assert_eq!(
        c.get("D"),
        Some("${UNKNOWN}"),
        "unknown references stay as written"
    );
    assert_eq!(c.get("E"), Some("fallback"));
    assert_eq!(c.get("F"), Some("${LATER}"), "only earlier keys resolve");
    assert_eq!(c.get("G"), Some("dflt"));
    assert_eq!(c.get("H"), Some(""));
    assert_eq!(c.get("I"), Some("$5 and $"));
}

#[test]
fn later_assignment_wins() {
    let c = parse("LOG_LINES=100\nTZ=UTC\nLOG_LINES=250\n");
    assert_eq!(c.log_lines().unwrap(), 250);
    assert_eq!(c.line_of("LOG_LINES"), Some(3));
    assert_eq!(c.keys(), vec!["TZ", "LOG_LINES"]);
}

#[test]
fn bindings() {
    let cases: &[(&str, &str, u16)] = &[
        ("REDIS_PORT=127.0.0.1:7654", "127.0.0.1", 7654),
        ("REDIS_PORT=7777", "127.0.0.1", 7777),
        ("REDIS_PORT=0.0.0.0:7654", "127.0.0.1", 7654),
        ("REDIS_PORT=[::1]:7654", "::1", 7654),
        ("REDIS_PORT=192.0.2.10:6380", "192.0.2.10", 6380),
        ("VALKEY_PORT=127.0.0.1:7655", "127.0.0.1", 7655),
        ("REDIS_PORT=\nVALKEY_PORT=7656", "127.0.0.1", 7656),
    ];
    for (text, host, port) in cases {
        let e = parse(text).redis_endpoint().unwrap();
        assert_eq!((e.host.as_str(), e.port), (*host, *port), "{text}");
    }
    let c = parse("VALKEYPASS=vk\n");
    assert_eq!(c.redis_password(), Some("vk"), "Valkey-based releases");
}

#[test]
fn errors_name_file_line_and_fix() {
    let e = parse_err("TZ=UTC\nthis is not a setting\n");
    assert!(e.starts_with("/srv/mc/mailcow.conf:2: expected KEY=value"), "{e}");
    assert!(e.contains("# to make it a comment"), "{e}");

    let e = parse_err("TZ=UTC\n\n1BAD=x\n");
    assert!(
        e.starts_with("/srv/mc/mailcow.conf:3: \"1BAD\" is not a valid key"),
        "{e}"
    );

    let e = parse_err("A=\"never closed\n");
    assert!(
        e.contains(":1: A: the double quote is never closed; close the quote"),
        "{e}"
    );

    let e = parse_err("A='never closed\n");
    assert!(e.contains(":1: A: the single quote is never closed"), "{e}");

    let e = parse_err("A=\"x\"y\n");
    assert!(e.contains("unexpected text after the closing quote"), "{e}");

    let c = MailcowConf::parse(Path::new("/srv/mc"), "TZ=UTC\nLOG_LINES=lots\n").unwrap();
    let e = c.log_lines().unwrap_err().to_string();
    assert_eq!(
        e,
        "/srv/mc/mailcow.conf:2: LOG_LINES: \"lots\" is not a whole number; set LOG_LINES to a number of lines, e.g. LOG_LINES=9999"
    );

    let c = MailcowConf::parse(Path::new("/srv/mc"), "REDIS_PORT=localhost:redis\n").unwrap();
    let e = c.redis_endpoint().unwrap_err().to_string();
    assert!(e.starts_with("/srv/mc/mailcow.conf:1: REDIS_PORT: "), "{e}");
    assert!(e.contains("REDIS_PORT=127.0.0.1:7654"), "{e}");

    let c = MailcowConf::parse(Path::new("/srv/mc"), "SQL_PORT=99999\n").unwrap();
    let e = c.db().unwrap_err().to_string();
    assert!(e.contains("SQL_PORT=127.0.0.1:13306"), "{e}");
}

#[test]
fn secrets_never_in_errors() {
    // A malformed secret line reports the key, not the value.
    let e = parse_err("DBPASS=\"s3cr3t-value\n");
    assert!(!e.contains("s3cr3t"), "{e}");
}

#[test]
fn load_reads_the_file_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = MailcowConf::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("mailcow.conf"), "{e}");
    assert!(e.contains("generate_config.sh"), "{e}");

    std::fs::write(dir.path().join(CONF_FILE), CURRENT).unwrap();
    let c = MailcowConf::load(dir.path()).unwrap();
    assert_eq!(c.hostname(), Some("mx.example.net"));
    assert_eq!(c.path(), dir.path().join(CONF_FILE));
}

#[test]
fn compose_project_falls_back_to_the_directory_name() {
    let c = MailcowConf::parse(Path::new("/opt/Mail Cow.Dockerized"), "TZ=UTC\n").unwrap();
    assert_eq!(c.compose_project(), "mailcowdockerized");
    let c = MailcowConf::parse(Path::new("/srv/mailcow-dockerized"), "COMPOSE_PROJECT_NAME=\n").unwrap();
    assert_eq!(c.compose_project(), "mailcow-dockerized");
    let c = MailcowConf::parse(Path::new("/"), "").unwrap();
    assert_eq!(c.compose_project(), DEFAULT_COMPOSE_PROJECT);
}

#[test]
fn find_install_prefers_explicit_then_candidates() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join(CONF_FILE), "TZ=UTC\n").unwrap();
    let candidates = vec![a.path().to_path_buf(), b.path().to_path_buf()];

    assert_eq!(find_install_in(None, &candidates), Some(b.path().to_path_buf()));
    // An explicit directory without mailcow.conf is not silently replaced.
    assert_eq!(find_install_in(Some(a.path()), &candidates), None);
    assert_eq!(find_install_in(Some(b.path()), &[]), Some(b.path().to_path_buf()));
    // The file itself names its directory.
    assert_eq!(
        find_install_in(Some(&b.path().join(CONF_FILE)), &[]),
        Some(b.path().to_path_buf())
    );
    assert_eq!(find_install_in(None, &[a.path().to_path_buf()]), None);
}

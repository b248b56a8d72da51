//! The Mailcow API directory source against a real HTTPS server on loopback
//! (`mailwarden_testlab::HttpsServer`, certificate from a test CA) that
//! answers the four `GET /api/v1/get/…` requests with bodies in the shape
//! Mailcow's API returns. There is no Mailcow here: the bodies follow the
//! documented API format (mailcow-dockerized `json_api.php`), and the
//! client's behaviour — TLS, the key header, no retry after a refused key —
//! is what is tested.

use std::time::Duration;

use mailwarden_core::detect::SenderStatus;
use mailwarden_io::directory::{
    AddressKind, ApiConfig, DirectoryError, DirectorySource, lookup, our_domains, snapshot,
};
use mailwarden_testlab::{HttpsRoute, HttpsServer, HttpsSite};

const HOST: &str = "mail.lab.test";

fn json(path: &str, body: &str) -> HttpsRoute {
    HttpsRoute::new(path, 200)
        .header("Content-Type", "application/json")
        .body(body.as_bytes().to_vec())
}

fn source(server: &HttpsServer, key: &str) -> DirectorySource {
    DirectorySource::MailcowApi(ApiConfig {
        url: format!("https://{HOST}"),
        key: key.to_owned(),
        ca_file: Some(server.ca_pem()),
        connect_to: Some(server.addr()),
        timeout: Duration::from_secs(10),
    })
}

#[tokio::test]
async fn directory_through_the_api() {
    let server = HttpsServer::start(vec![
        HttpsSite::new(HOST)
            .route(json(
                "/api/v1/get/domain/all",
                r#"[{"domain_name":"lab.test","active":1,"active_int":1}]"#,
            ))
            .route(json(
                "/api/v1/get/mailbox/all",
                r#"[{"username":"alice@lab.test","active":1,"sender_acl":[]},
                    {"username":"carol@lab.test","active":"1","sender_acl":["@lab.test"]}]"#,
            ))
            .route(json(
                "/api/v1/get/alias/all",
                r#"[{"address":"team@lab.test","goto":"alice@lab.test,carol@lab.test","active":1}]"#,
            ))
            .route(json("/api/v1/get/alias-domain/all", "{}")),
    ])
    .expect("HTTPS server");
    let src = source(&server, "read-only-key");

    let info = lookup(&src, "xyovt@lab.test").await.expect("lookup");
    assert_eq!(info.kind, AddressKind::Unknown, "{info:?}");
    assert!(info.domain_known);
    // No mailbox, no alias, no catch-all — but carol's sender_acl covers the domain.
    assert_eq!(info.may_send_as, ["carol@lab.test"], "{info:?}");
    assert_eq!(info.source, format!("mailcow-api https://{HOST}"));

    let info = lookup(&src, "team@lab.test").await.expect("lookup");
    assert!(matches!(info.kind, AddressKind::Alias { .. }), "{info:?}");
    assert_eq!(our_domains(&src).await.expect("domains"), ["lab.test"]);

    // The whole directory in memory, as the detection rules use it.
    let before = server.requests().len();
    let snap = snapshot(&src).await.expect("snapshot");
    assert_eq!(server.requests().len(), before + 4, "one request per list");
    assert_eq!(snap.sender_status("team@lab.test"), SenderStatus::Known);
    assert_eq!(snap.sender_status("alice@lab.test"), SenderStatus::Known);
    assert_eq!(snap.sender_status("xyovt@lab.test"), SenderStatus::Unknown);
    assert_eq!(snap.sender_status("x@elsewhere.test"), SenderStatus::NotOurs);

    let requests = server.requests();
    for r in &requests {
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "x-api-key" && v == "read-only-key"),
            "{r:?}"
        );
        assert_eq!(r.host.as_deref(), Some(HOST));
    }
    let paths: Vec<String> = requests.into_iter().map(|r| r.path).collect();
    assert_eq!(
        &paths[..4],
        [
            "/api/v1/get/domain/all",
            "/api/v1/get/mailbox/all",
            "/api/v1/get/alias/all",
            "/api/v1/get/alias-domain/all"
        ]
    );
}

#[tokio::test]
async fn a_refused_key_is_asked_once_and_never_again() {
    let server = HttpsServer::start(vec![
        HttpsSite::new(HOST).route(
            HttpsRoute::new("/api/v1/get/domain/all", 401)
                .header("Content-Type", "application/json")
                .body(br#"{"type":"error","msg":"authentication failed"}"#.to_vec()),
        ),
    ])
    .expect("HTTPS server");
    let err = lookup(&source(&server, "wrong-key"), "alice@lab.test")
        .await
        .expect_err("refused");
    assert!(
        matches!(err, DirectoryError::ApiAuth { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("not retrying"), "{text}");
    assert!(
        !text.contains("wrong-key"),
        "the key never appears in messages: {text}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "exactly one request with a refused key"
    );
}

#[tokio::test]
async fn untrusted_certificate_and_missing_key_are_clear_errors() {
    let server = HttpsServer::start(vec![HttpsSite::new(HOST).self_signed()]).expect("HTTPS server");
    let err = lookup(&source(&server, "k"), "alice@lab.test")
        .await
        .expect_err("untrusted");
    assert!(err.to_string().contains("TLS"), "{err}");
    let err = lookup(&source(&server, " "), "alice@lab.test")
        .await
        .expect_err("no key");
    assert!(err.to_string().contains("MAILCOW_API_KEY"), "{err}");
}

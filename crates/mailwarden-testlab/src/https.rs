//! [`HttpsServer`]: a real HTTPS server on 127.0.0.1 for tests of code that
//! fetches documents over TLS (the MTA-STS policy). It serves fixed
//! responses ([`HttpsRoute`]) per host name ([`HttpsSite`]), chosen by the
//! TLS SNI name of the connection, with certificates issued by a test CA made
//! by `rcgen` for this server alone.
//!
//! The CA certificate is written as PEM into the server's temporary directory
//! ([`HttpsServer::ca_pem`]), so the code under test can trust it the way an
//! operator adds a private CA — as an extra root — while everything else
//! about certificate validation stays real. A site can also present a
//! certificate for other names than the ones it serves (to test name checks)
//! or a self-signed certificate that no root vouches for.
//!
//! The server runs on its own thread with its own Tokio runtime, so it works
//! the same from synchronous and asynchronous tests; dropping it stops it.
//! It answers HTTP/1.1 only and records every request it receives, body
//! included ([`HttpsServer::requests`]), so a test can see, for instance,
//! that a redirect was not followed or what a webhook sent.
//!
//! [`HttpsServer::start_plain`] serves the same kind of routes over plain
//! HTTP (no TLS, any `Host`), for clients that speak both. A route can be
//! limited to a number of answers ([`HttpsRoute::times`]); the next route for
//! the same path answers after it, which scripts sequences such as
//! `503, 503, 200`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::oneshot;

use crate::error::LabError;

/// Name of the CA certificate file in the server directory.
const CA_FILE: &str = "test-ca.pem";
/// What the errors of this module call the instance.
const INSTANCE: &str = "https test server";

/// One fixed response: a path, a status, headers and a body.
///
/// ```
/// use mailwarden_testlab::HttpsRoute;
///
/// let ok = HttpsRoute::text("/.well-known/mta-sts.txt", "version: STSv1\r\n");
/// assert_eq!(ok.status, 200);
/// let moved = HttpsRoute::redirect("/.well-known/mta-sts.txt", "https://elsewhere.test/");
/// assert_eq!(moved.status, 301);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRoute {
    /// The request path it answers, e.g. `/.well-known/mta-sts.txt` (the
    /// query string, if any, is ignored when matching).
    pub path: String,
    /// The HTTP status code.
    pub status: u16,
    /// Response headers, in order (`Content-Length` is added by the server).
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
    /// Never answer: the server reads the request and then keeps the
    /// connection open without responding (for timeout tests).
    pub hang: bool,
    /// Answer at most this many requests; later requests for the path go to
    /// the next route for it (`None`: no limit).
    pub times: Option<usize>,
}

impl HttpsRoute {
    /// A response with `status`, no headers and an empty body.
    pub fn new(path: impl Into<String>, status: u16) -> Self {
        HttpsRoute {
            path: path.into(),
            status,
            headers: Vec::new(),
            body: Vec::new(),
            hang: false,
            times: None,
        }
    }

    /// `200 OK` with `Content-Type: text/plain` and `body`.
    pub fn text(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        HttpsRoute::new(path, 200)
            .header("Content-Type", "text/plain")
            .body(body)
    }

    /// `301 Moved Permanently` to `location`.
    pub fn redirect(path: impl Into<String>, location: impl Into<String>) -> Self {
        HttpsRoute::new(path, 301).header("Location", location)
    }

    /// A route that never answers (see [`hang`](Self::hang)).
    pub fn hanging(path: impl Into<String>) -> Self {
        HttpsRoute {
            hang: true,
            ..HttpsRoute::new(path, 200)
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers only the first `n` requests for the path; then the next
    /// route with the same path takes over (or `404` if there is none).
    ///
    /// ```
    /// use mailwarden_testlab::HttpsRoute;
    ///
    /// // 503 twice, then 200.
    /// let script = vec![
    ///     HttpsRoute::new("/hook", 503).times(2),
    ///     HttpsRoute::new("/hook", 200),
    /// ];
    /// assert_eq!(script[0].times, Some(2));
    /// ```
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// Which certificate a site presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteCertificate {
    /// Issued by the server's test CA (trusted by whoever trusts
    /// [`HttpsServer::ca_pem`]).
    TestCa,
    /// Self-signed: no root vouches for it.
    SelfSigned,
}

/// A virtual host: the SNI names it answers for, the names in its
/// certificate, and its routes. Requests for unknown paths get `404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSite {
    /// SNI names this site answers for (case-insensitive).
    pub names: Vec<String>,
    /// The subject alternative names of its certificate; the same as
    /// `names` unless set with [`certificate_for`](Self::certificate_for).
    pub certificate_names: Vec<String>,
    /// Who issued the certificate.
    pub certificate: SiteCertificate,
    /// Fixed responses by path.
    pub routes: Vec<HttpsRoute>,
}

impl HttpsSite {
    /// A site for `name` with a certificate for `name` from the test CA.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        HttpsSite {
            names: vec![name.clone()],
            certificate_names: vec![name],
            certificate: SiteCertificate::TestCa,
            routes: Vec::new(),
        }
    }

    /// Presents a certificate for `names` instead of the site's own names
    /// (a name mismatch, when they differ).
    #[must_use]
    pub fn certificate_for<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.certificate_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Presents a self-signed certificate instead of one from the test CA.
    #[must_use]
    pub fn self_signed(mut self) -> Self {
        self.certificate = SiteCertificate::SelfSigned;
        self
    }

    /// Adds a route.
    #[must_use]
    pub fn route(mut self, route: HttpsRoute) -> Self {
        self.routes.push(route);
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRequest {
    /// The TLS SNI name the client sent (lower-cased), if any.
    pub sni: Option<String>,
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target's path and query.
    pub path: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// Every request header as (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The request body (at most [`MAX_RECORDED_BODY`] bytes are kept).
    pub body: Vec<u8>,
}

impl HttpsRequest {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Request body bytes kept per recorded request.
pub const MAX_RECORDED_BODY: usize = 1 << 20;

/// A running HTTPS server on `127.0.0.1:<ephemeral port>`.
///
/// ```no_run
/// use mailwarden_testlab::{HttpsRoute, HttpsServer, HttpsSite};
///
/// let server = HttpsServer::start(vec![
///     HttpsSite::new("mta-sts.lab.test")
///         .route(HttpsRoute::text("/.well-known/mta-sts.txt", "version: STSv1\r\nmode: enforce\r\n")),
/// ])?;
/// println!("port {}, trust {}", server.port(), server.ca_pem().display());
/// # Ok::<(), mailwarden_testlab::LabError>(())
/// ```
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<HttpsRequest>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpsServer {
    /// Makes a test CA and a certificate per site, binds a free loopback
    /// port and starts serving. Connections whose SNI names no site (or
    /// that send no SNI) are refused during the handshake.
    pub fn start(sites: Vec<HttpsSite>) -> Result<HttpsServer, LabError> {
        HttpsServer::start_inner(sites, None)
    }

    /// Serves `routes` over plain HTTP (no TLS) for any `Host`, on a free
    /// loopback port. [`ca_pem`](Self::ca_pem) still names a CA file, which
    /// vouches for nothing this server presents.
    pub fn start_plain(routes: Vec<HttpsRoute>) -> Result<HttpsServer, LabError> {
        HttpsServer::start_inner(Vec::new(), Some(routes))
    }

    fn start_inner(sites: Vec<HttpsSite>, plain: Option<Vec<HttpsRoute>>) -> Result<HttpsServer, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("mailwarden-https-")
            .tempdir()
            .map_err(|e| LabError::io("creating the HTTPS server directory", e))?;
        let pki = TestCa::new()?;
        let ca_path = dir.path().join(CA_FILE);
        std::fs::write(&ca_path, &pki.pem)
            .map_err(|e| LabError::io(format!("writing {}", ca_path.display()), e))?;

        // *ring*, as in the rest of the workspace (no CMake); rustls 0.23.48
        // deprecates it only for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut by_name: HashMap<String, Arc<CertifiedKey>> = HashMap::new();
        let mut routes: HashMap<String, Arc<Routes>> = HashMap::new();
        for site in &sites {
            let (chain, key) = pki.leaf(&site.certificate_names, site.certificate)?;
            let certified = CertifiedKey::from_der(chain, key, &provider)
                .map_err(|e| startup(format!("loading the certificate for {:?}: {e}", site.names)))?;
            let certified = Arc::new(certified);
            let site_routes = Arc::new(Routes::new(site.routes.clone()));
            for name in &site.names {
                let name = name.to_ascii_lowercase();
                if by_name.insert(name.clone(), Arc::clone(&certified)).is_some() {
                    return Err(startup(format!("the site name {name} is listed twice")));
                }
                routes.insert(name, Arc::clone(&site_routes));
            }
        }
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| startup(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver { by_name }));
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = plain
            .is_none()
            .then(|| tokio_rustls::TlsAcceptor::from(Arc::new(tls)));

        let listener = StdTcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| LabError::io("binding a loopback port for the HTTPS server", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::io("setting the HTTPS listener non-blocking", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::io("reading the HTTPS listener address", e))?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::io("building the HTTPS server runtime", e))?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, stop) = oneshot::channel();
        let state = Arc::new(State {
            routes,
            plain: plain.map(|r| Arc::new(Routes::new(r))),
            requests: Arc::clone(&requests),
        });
        let thread = std::thread::Builder::new()
            .name("https-test-server".into())
            .spawn(move || runtime.block_on(serve(listener, acceptor, state, stop)))
            .map_err(|e| LabError::io("spawning the HTTPS server thread", e))?;
        Ok(HttpsServer {
            addr,
            dir,
            requests,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The listening address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The test CA certificate (PEM) that issued the sites' certificates.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join(CA_FILE)
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpsRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn startup(problem: String) -> LabError {
    LabError::Startup {
        instance: INSTANCE.into(),
        problem,
        details: String::new(),
    }
}

/// The test CA: its PEM and the issuer that signs leaf certificates (also
/// used by the mail lab for its STARTTLS certificate).
pub(crate) struct TestCa {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> Result<TestCa, LabError> {
        let key = KeyPair::generate().map_err(|e| startup(format!("CA key: {e}")))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| startup(format!("CA parameters: {e}")))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "mailwarden HTTPS test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .map_err(|e| startup(format!("CA certificate: {e}")))?;
        Ok(TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A server certificate for `names`, from this CA or self-signed; the
    /// key is generated with rcgen's default (ECDSA P-256), which *ring*
    /// signs with.
    fn leaf(
        &self,
        names: &[String],
        how: SiteCertificate,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LabError> {
        let key = KeyPair::generate().map_err(|e| startup(format!("site key: {e}")))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| startup(format!("certificate names {names:?}: {e}")))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = match how {
            SiteCertificate::TestCa => params.signed_by(&key, &self.issuer),
            SiteCertificate::SelfSigned => params.self_signed(&key),
        }
        .map_err(|e| startup(format!("certificate for {names:?}: {e}")))?;
        let key = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| startup(format!("site key encoding: {e}")))?;
        Ok((vec![cert.der().clone()], key))
    }

    /// A server certificate for `names` (DNS names or IP addresses) from
    /// this CA, as PEM: (certificate, private key).
    pub(crate) fn leaf_pem(&self, names: &[String]) -> Result<(String, String), LabError> {
        let key = KeyPair::generate().map_err(|e| startup(format!("server key: {e}")))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| startup(format!("certificate names {names:?}: {e}")))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| startup(format!("certificate for {names:?}: {e}")))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Picks the certificate by SNI name; no match (or no SNI) aborts the
/// handshake, as a server without a default site would.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.by_name.get(&name).cloned()
    }
}

/// A site's routes and how often each has answered.
#[derive(Default)]
struct Routes {
    routes: Vec<HttpsRoute>,
    used: Vec<AtomicUsize>,
}

impl Routes {
    fn new(routes: Vec<HttpsRoute>) -> Routes {
        let used = routes.iter().map(|_| AtomicUsize::new(0)).collect();
        Routes { routes, used }
    }

    /// The first route for `path` that still answers; counts the answer.
    fn pick(&self, path: &str) -> Option<&HttpsRoute> {
        self.routes.iter().zip(&self.used).find_map(|(route, used)| {
            if route.path != path {
                return None;
            }
            let n = used.fetch_add(1, Ordering::SeqCst);
            if route.times.is_some_and(|max| n >= max) {
                used.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            Some(route)
        })
    }
}

struct State {
    routes: HashMap<String, Arc<Routes>>,
    /// Plain-HTTP mode: the routes for every request.
    plain: Option<Arc<Routes>>,
    requests: Arc<Mutex<Vec<HttpsRequest>>>,
}

async fn serve(
    listener: StdTcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        // Connections run as tasks of this runtime, so they end when the
        // server thread returns.
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                let routes = state.plain.clone().unwrap_or_default();
                serve_connection(tcp, state, routes, None).await;
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let sni = tls.get_ref().1.server_name().map(str::to_ascii_lowercase);
            let routes = sni
                .as_ref()
                .and_then(|n| state.routes.get(n))
                .cloned()
                .unwrap_or_default();
            serve_connection(tls, state, routes, sni).await;
        });
    }
}

/// Serves HTTP/1.1 requests on one connection (TLS or plain).
async fn serve_connection<S>(io: S, state: Arc<State>, routes: Arc<Routes>, sni: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = Arc::clone(&state);
        let routes = Arc::clone(&routes);
        let sni = sni.clone();
        async move { Ok::<_, Infallible>(respond(&state, &routes, sni, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn respond(
    state: &State,
    routes: &Routes,
    sni: Option<String>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // Keep the first MAX_RECORDED_BODY bytes; read (and drop) the rest so the
    // client is never blocked on a full window.
    let mut body = body;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            let room = MAX_RECORDED_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let req = Request::from_parts(parts, ());
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(HttpsRequest {
            sni,
            method: req.method().as_str().to_owned(),
            path,
            host: req
                .headers()
                .get(hyper::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: kept,
        });
    let Some(route) = routes.pick(req.uri().path()) else {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    };
    if route.hang {
        std::future::pending::<()>().await;
    }
    let mut builder = Response::builder().status(route.status);
    for (name, value) in &route.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(route.body.clone())))
        .unwrap_or_else(|e| {
            let mut bad = Response::new(Full::new(Bytes::from(format!(
                "test route {} is invalid: {e}\n",
                route.path
            ))));
            *bad.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            bad
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// One raw HTTP/1.1 GET over TLS with `sni`, trusting only the test CA.
    async fn get(server: &HttpsServer, sni: &str, path: &str) -> std::io::Result<String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(server.ca_pem()).unwrap())
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
            .await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[test]
    fn serves_routes_by_sni_and_refuses_unknown_names() {
        let server = HttpsServer::start(vec![
            HttpsSite::new("a.lab.test").route(HttpsRoute::text("/x", "hello a")),
            HttpsSite::new("b.lab.test")
                .route(HttpsRoute::redirect("/x", "https://a.lab.test/x").header("X-Test", "1")),
        ])
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = get(&server, "a.lab.test", "/x?q=1").await.unwrap();
            assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
            assert!(a.contains("content-type: text/plain\r\n"), "{a}");
            assert!(a.ends_with("\r\n\r\nhello a"), "{a}");
            let b = get(&server, "b.lab.test", "/x").await.unwrap();
            assert!(b.starts_with("HTTP/1.1 301 "), "{b}");
            assert!(b.contains("location: https://a.lab.test/x\r\n"), "{b}");
            let missing = get(&server, "a.lab.test", "/nothing").await.unwrap();
            assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
            // No site for this name: the handshake is refused.
            assert!(get(&server, "c.lab.test", "/x").await.is_err());
        });
        let requests = server.requests();
        let seen: Vec<(Option<&str>, &str)> = requests
            .iter()
            .map(|r| (r.sni.as_deref(), r.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (Some("a.lab.test"), "/x?q=1"),
                (Some("b.lab.test"), "/x"),
                (Some("a.lab.test"), "/nothing")
            ]
        );
        assert_eq!(requests[0].host.as_deref(), Some("a.lab.test"));
    }

    #[test]
    fn plain_mode_records_bodies_and_scripts_statuses() {
        let server = HttpsServer::start_plain(vec![
            HttpsRoute::new("/hook", 503).times(2),
            HttpsRoute::new("/hook", 200),
        ])
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let statuses: Vec<String> = rt.block_on(async {
            let mut out = Vec::new();
            for n in 0..3 {
                let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
                let request = format!(
                    "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{n}"
                );
                tcp.write_all(request.as_bytes()).await.unwrap();
                let mut response = String::new();
                tcp.read_to_string(&mut response).await.unwrap();
                out.push(response.lines().next().unwrap_or_default().to_owned());
            }
            out
        });
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 503 Service Unavailable",
                "HTTP/1.1 503 Service Unavailable",
                "HTTP/1.1 200 OK"
            ]
        );
        let bodies: Vec<Vec<u8>> = server.requests().into_iter().map(|r| r.body).collect();
        assert_eq!(bodies, [b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(server.requests()[0].header("content-length"), Some("1"));
    }

    #[test]
    fn duplicate_site_names_are_rejected() {
        let err =
            HttpsServer::start(vec![HttpsSite::new("a.lab.test"), HttpsSite::new("A.lab.test")]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}

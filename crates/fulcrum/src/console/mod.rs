//! The web console and the JSON API (`console = ADDR:PORT`): Piranha's GUI
//! reborn. Server-rendered pages with a little JavaScript (no CDN: every
//! byte is served by the binary), logins against the users file that
//! `fulcrum passwd` writes, sessions with CSRF tokens, a read-only role,
//! and the same commands as JSON under `/api/v1` for tokens.
//!
//! The console asks the controller for everything it shows and changes
//! (the controller owns the table); it owns only its sessions. It edits
//! lvs.cf in place ([`fulcrum_config::edit`]), keeping comments and order,
//! and applies the file by reload — and puts the old file back when the
//! director refuses it.

mod config;
mod pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fulcrum_api::auth::{self, Role, Session, Sessions, Throttle, Users};
use fulcrum_api::control::{Request, Response};
use fulcrum_api::state::{DirectorState, ServerAction};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

use fulcrum_api::control::ControlMsg;

/// Where the console's users and tokens are, unless `console_users` says.
pub const DEFAULT_USERS: &str = "/etc/fulcrum/console.users";
/// The largest request body read (a configuration file fits many times).
pub const MAX_BODY: usize = 1 << 20;
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 128;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection's whole life.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Password checks at once (each costs ~20 MiB and tens of milliseconds).
const VERIFYING: usize = 2;
/// The users file's largest size.
const MAX_USERS_FILE: u64 = 1 << 20;

const SESSION_COOKIE: &str = "fulcrum_session";
const LOGIN_COOKIE: &str = "fulcrum_login";

/// What the console needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The users file.
    pub users: PathBuf,
    /// Certificate chain and key (PEM), for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The configuration file the editors change.
    pub config: Option<PathBuf>,
}

impl Settings {
    /// The console a configuration asks for (`console`, `console_users`,
    /// `console_tls_cert`, `console_tls_key`), or the one `--console`
    /// gives (which wins over the file's address).
    pub fn from_config(
        cfg: Option<&fulcrum_config::Config>,
        flag: Option<SocketAddr>,
        config: Option<PathBuf>,
    ) -> Option<Settings> {
        let g = cfg.map(|c| &c.global);
        let listen = flag.or_else(|| {
            g.and_then(|g| g.console.as_ref())
                .and_then(|h| h.port.map(|p| SocketAddr::new(h.addr, p)))
        })?;
        Some(Settings {
            listen,
            users: g
                .and_then(|g| g.console_users.clone())
                .map_or_else(|| PathBuf::from(DEFAULT_USERS), PathBuf::from),
            tls: g.and_then(|g| {
                Some((
                    PathBuf::from(g.console_tls_cert.clone()?),
                    PathBuf::from(g.console_tls_key.clone()?),
                ))
            }),
            config,
        })
    }
}

/// A bound console, ready to serve.
pub struct Console {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("listen", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

struct Inner {
    users: Users,
    /// The users file's modification time and size when read.
    users_stamp: Option<(std::time::SystemTime, u64)>,
    sessions: Sessions,
    throttle: Throttle,
    /// A message for a session's next page, by the session's cookie.
    flash: HashMap<String, (bool, String)>,
}

struct Shared {
    started: Instant,
    secure: bool,
    users_path: PathBuf,
    config: Option<PathBuf>,
    inner: Mutex<Inner>,
    verifying: Semaphore,
    /// One configuration change at a time.
    editing: tokio::sync::Mutex<()>,
    /// What a wrong user name is checked against, so that it costs as much
    /// as a wrong password.
    decoy: String,
}

/// Read the users file, refusing one others could read or change.
///
/// # Errors
/// What is wrong and what to do.
pub fn read_users(path: &Path) -> Result<(Users, (std::time::SystemTime, u64)), String> {
    use std::os::unix::fs::MetadataExt as _;
    let name = path.display();
    let m = std::fs::metadata(path).map_err(|e| {
        format!(
            "console users file {name}: {e}; add a user with `fulcrum passwd --users {name} NAME`"
        )
    })?;
    if !m.is_file() {
        return Err(format!("console users file {name} is not a regular file"));
    }
    if m.len() > MAX_USERS_FILE {
        return Err(format!(
            "console users file {name} is larger than {MAX_USERS_FILE} bytes; it is not one `fulcrum passwd` wrote"
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "console users file {name} belongs to uid {}, neither root nor this director (uid {me}); chown it",
            m.uid()
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "console users file {name} is open to other users (mode {:o}); `chmod 600 {name}`",
            m.mode() & 0o777
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("console users file {name}: {e}"))?;
    let users = Users::parse(&name.to_string(), &text)?;
    let stamp = (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len());
    Ok((users, stamp))
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| format!("console_tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "console_tls_cert {}: no certificate in it (PEM expected)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "console_tls_key {}: {e} (a PEM private key expected)",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("console TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("console TLS: the certificate and key do not go together: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Console {
    /// Bind the listener and read the users file and certificate: a
    /// console that cannot work stops the director from starting.
    ///
    /// # Errors
    /// What is wrong and what to do.
    pub async fn bind(s: &Settings) -> Result<Console, String> {
        Console::bind_or_take(s, None).await
    }

    /// A copy of the listening socket, for a successor.
    ///
    /// # Errors
    /// Out of descriptors.
    pub fn socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        self.listener.as_fd().try_clone_to_owned()
    }

    /// As [`Console::bind`], on the listener a director that restarted into
    /// this one left, when there is one.
    ///
    /// # Errors
    /// What is wrong and what to do.
    pub async fn bind_or_take(
        s: &Settings,
        inherited: Option<std::os::fd::OwnedFd>,
    ) -> Result<Console, String> {
        let (users, stamp) = read_users(&s.users)?;
        if users.is_empty() {
            return Err(format!(
                "console users file {} has no user; add one with `fulcrum passwd --users {} NAME`",
                s.users.display(),
                s.users.display()
            ));
        }
        let tls = s
            .tls
            .as_ref()
            .map(|(c, k)| tls_acceptor(c, k))
            .transpose()?;
        let listener = match inherited {
            Some(fd) => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(l))
                    .map_err(|e| format!("the inherited console listener cannot be used: {e}"))?
            }
            None => TcpListener::bind(s.listen).await.map_err(|e| {
                format!(
                    "cannot serve the console on {}: {e}; choose another `console` address",
                    s.listen
                )
            })?,
        };
        let decoy = auth::hash_password("a password nobody has")?;
        Ok(Console {
            listener,
            shared: Arc::new(Shared {
                started: Instant::now(),
                secure: tls.is_some(),
                users_path: s.users.clone(),
                config: s.config.clone(),
                inner: Mutex::new(Inner {
                    users,
                    users_stamp: Some(stamp),
                    sessions: Sessions::default(),
                    throttle: Throttle::default(),
                    flash: HashMap::new(),
                }),
                verifying: Semaphore::new(VERIFYING),
                editing: tokio::sync::Mutex::new(()),
                decoy,
            }),
            tls,
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until dropped.
    pub async fn serve(self, ctl: mpsc::Sender<ControlMsg>) {
        let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut backoff = fulcrum_proxy::accept::AcceptBackoff::new("console");
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            };
            let Ok(permit) = conns.clone().try_acquire_owned() else {
                continue;
            };
            let shared = self.shared.clone();
            let ctl = ctl.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    let ctl = ctl.clone();
                    async move {
                        let mut resp = handle(&shared, &ctl, req, peer.ip()).await;
                        secure_headers(&mut resp);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let builder = {
                    let mut b = http1::Builder::new();
                    b.timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(16 * 1024);
                    b
                };
                let served = async {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(Ok(s)) =
                                tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                            {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                };
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, served).await;
            });
        }
    }
}

type Resp = hyper::Response<Full<Bytes>>;

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(status: StatusCode, body: String) -> Resp {
    response(status, "text/html; charset=utf-8", body)
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Resp {
    response(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn api_error(status: StatusCode, message: impl Into<String>) -> Resp {
    json(status, &serde_json::json!({ "error": message.into() }))
}

fn redirect(to: &str) -> Resp {
    let mut r = response(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn secure_headers(r: &mut Resp) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

fn cookie<'a>(req: &'a hyper::Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn set_cookie(
    r: &mut Resp,
    secure: bool,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
) {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Who sent a request.
#[derive(Debug, Clone)]
enum Who {
    /// A logged-in person, with their session cookie.
    Person(String, Session),
    /// A program with a token.
    Program(String, Role),
    Nobody,
}

impl Who {
    fn role(&self) -> Option<Role> {
        match self {
            Who::Person(_, s) => Some(s.role),
            Who::Program(_, r) => Some(*r),
            Who::Nobody => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            Who::Person(_, s) => &s.user,
            Who::Program(n, _) => n,
            Who::Nobody => "",
        }
    }
}

impl Shared {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Read the users file again when it changed (`fulcrum passwd`); a file
    /// that went bad keeps the users read before, and says why in the log.
    fn refresh_users(&self, inner: &mut Inner) {
        let stamp = std::fs::metadata(&self.users_path)
            .ok()
            .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()));
        if stamp == inner.users_stamp {
            return;
        }
        inner.users_stamp = stamp;
        match read_users(&self.users_path) {
            Ok((u, _)) => {
                // Whoever left the file or changed role logs in again.
                for s in inner.users.credentials() {
                    let gone = match s {
                        auth::Credential::User { name, role, hash } => {
                            u.user(name) != Some((*role, hash.as_str()))
                        }
                        auth::Credential::Token { .. } => false,
                    };
                    if gone {
                        inner.sessions.end_user(s.name());
                    }
                }
                inner.users = u;
                tracing::info!(file = %self.users_path.display(), "console users read again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "console users file not read again; the users read before still apply");
            }
        }
    }

    fn who(&self, req: &hyper::Request<Incoming>) -> Who {
        let Ok(mut inner) = self.inner.lock() else {
            return Who::Nobody;
        };
        if let Some(token) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            self.refresh_users(&mut inner);
            return match inner.users.token(token.trim()) {
                Some((n, r)) => Who::Program(n.to_string(), r),
                None => Who::Nobody,
            };
        }
        let Some(id) = cookie(req, SESSION_COOKIE) else {
            return Who::Nobody;
        };
        let now = self.now();
        match inner.sessions.get(id, now) {
            Some(s) => Who::Person(id.to_string(), s),
            None => Who::Nobody,
        }
    }

    fn flash(&self, who: &Who, ok: bool, msg: String) {
        if let (Who::Person(id, _), Ok(mut inner)) = (who, self.inner.lock()) {
            if inner.flash.len() > Sessions::MAX {
                inner.flash.clear();
            }
            inner.flash.insert(id.clone(), (ok, msg));
        }
    }

    fn take_flash(&self, who: &Who) -> Option<(bool, String)> {
        match who {
            Who::Person(id, _) => self.inner.lock().ok()?.flash.remove(id),
            _ => None,
        }
    }
}

/// Ask the controller.
async fn ask(ctl: &mpsc::Sender<ControlMsg>, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    if ctl.send(ControlMsg { request, reply: tx }).await.is_err() {
        return Response {
            stderr: "the director is stopping\n".into(),
            exit_code: 1,
            ..Default::default()
        };
    }
    rx.await.unwrap_or_else(|_| Response {
        stderr: "the director is stopping\n".into(),
        exit_code: 1,
        ..Default::default()
    })
}

async fn state(ctl: &mpsc::Sender<ControlMsg>) -> Result<DirectorState, String> {
    let r = ask(ctl, Request::State).await;
    if r.exit_code != 0 {
        return Err(r.stderr);
    }
    serde_json::from_str(&r.stdout).map_err(|e| format!("the director's state: {e}"))
}

/// A request's body, at most [`MAX_BODY`] bytes.
async fn body(req: hyper::Request<Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            format!("the request's body is larger than {MAX_BODY} bytes or was cut\n"),
        )),
    }
}

fn form(b: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(b).into_owned().collect()
}

/// A change must come from the console's own pages: an `Origin` header,
/// when the browser sends one, names this host.
fn same_origin(req: &hyper::Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, h)| !host.is_empty() && h == host)
}

async fn handle(
    shared: &Shared,
    ctl: &mpsc::Sender<ControlMsg>,
    req: hyper::Request<Incoming>,
    peer: IpAddr,
) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/static/console.js") => {
            let mut r = response(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                pages::SCRIPT,
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            );
            return r;
        }
        (&Method::GET, "/static/console.css") => {
            let mut r = response(StatusCode::OK, "text/css; charset=utf-8", pages::STYLE);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            );
            return r;
        }
        (&Method::GET, "/api/v1/openapi.json") => {
            return response(StatusCode::OK, "application/json", OPENAPI);
        }
        (&Method::GET, "/login") => {
            return login_page(shared, cookie(&req, LOGIN_COOKIE), None, StatusCode::OK);
        }
        (&Method::GET, "/favicon.ico") => return response(StatusCode::NOT_FOUND, "text/plain", ""),
        (&Method::POST, "/login") => return login(shared, req, peer).await,
        _ => {}
    }
    let who = shared.who(&req);
    let api = path.starts_with("/api/");
    let Some(role) = who.role() else {
        return if api {
            let mut r = api_error(
                StatusCode::UNAUTHORIZED,
                "log in first: send `Authorization: Bearer TOKEN` (a token from `fulcrum passwd --token NAME`)",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        } else if method == Method::GET {
            redirect("/login")
        } else {
            html(
                StatusCode::UNAUTHORIZED,
                pages::message("Not logged in", "Your session has ended: log in again."),
            )
        };
    };
    // Changes: an admin's, from the console's own pages (CSRF token), or a
    // program's token.
    let mut fields = HashMap::new();
    let mut raw = Bytes::new();
    if method != Method::GET && method != Method::HEAD {
        if !same_origin(&req) {
            return forbidden(
                api,
                "cross-site request refused: the Origin is not this console",
            );
        }
        let header_csrf = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        raw = match body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if is_form {
            fields = form(&raw);
        }
        if let Who::Person(_, s) = &who {
            let sent = header_csrf.or_else(|| fields.get("csrf").cloned());
            if !sent.is_some_and(|t| auth::same(t.as_bytes(), s.csrf.as_bytes())) {
                tracing::warn!(user = %s.user, %peer, path = %path, "console: a change without the page's CSRF token refused");
                return forbidden(
                    api,
                    "refused: the request does not carry this session's CSRF token (reload the page and try again)",
                );
            }
        }
        if path != "/logout" && role != Role::Admin {
            return forbidden(
                api,
                &format!("`{}` may look but not change (role viewer)", who.name()),
            );
        }
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/") => match state(ctl).await {
            Ok(st) => {
                let flash = shared.take_flash(&who);
                let text = shared
                    .config
                    .as_deref()
                    .and_then(|p| std::fs::read_to_string(p).ok());
                html(
                    StatusCode::OK,
                    pages::live_page(&st, &view(shared, &who), flash.as_ref(), text.as_deref()),
                )
            }
            Err(e) => html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message("Unavailable", &e),
            ),
        },
        (&Method::GET, "/live") => match state(ctl).await {
            Ok(st) => html(StatusCode::OK, pages::live(&st, &view(shared, &who))),
            Err(e) => html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message("Unavailable", &e),
            ),
        },
        (&Method::POST, "/logout") => {
            if let (Who::Person(id, s), Ok(mut inner)) = (&who, shared.inner.lock()) {
                inner.sessions.end(id);
                tracing::info!(user = %s.user, %peer, "console: logged out");
            }
            let mut r = redirect("/login");
            set_cookie(&mut r, shared.secure, SESSION_COOKIE, "", "/", Some(0));
            r
        }
        (&Method::POST, "/server") => {
            let (v, s, a) = (
                fields.get("virtual").cloned().unwrap_or_default(),
                fields.get("server").cloned().unwrap_or_default(),
                fields.get("action").cloned().unwrap_or_default(),
            );
            let r = match a.parse::<ServerAction>() {
                Ok(action) => {
                    let r = ask(
                        ctl,
                        Request::Server {
                            virtual_server: v,
                            server: s,
                            action,
                        },
                    )
                    .await;
                    (r.exit_code == 0, format!("{}{}", r.stdout, r.stderr))
                }
                Err(e) => (false, e),
            };
            shared.flash(&who, r.0, r.1.trim().to_string());
            redirect("/")
        }
        (&Method::POST, "/virtual") => {
            let v = fields.get("virtual").cloned().unwrap_or_default();
            let start = fields.get("action").is_some_and(|a| a == "start");
            let out = config::start_stop(shared, ctl, &v, start, who.name()).await;
            shared.flash(&who, out.0, out.1);
            redirect("/")
        }
        (&Method::GET, "/config") => config::page(shared, &view(shared, &who)),
        (&Method::POST, "/config") => {
            config::submit(shared, ctl, &view(shared, &who), &fields).await
        }
        (&Method::GET, "/api/v1/state") => match state(ctl).await {
            Ok(st) => json(StatusCode::OK, &st),
            Err(e) => api_error(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        (&Method::POST, "/api/v1/reload") => {
            let r = ask(ctl, Request::Reload).await;
            tracing::info!(by = %who.name(), exit = r.exit_code, "console: reload");
            outcome(&r)
        }
        (&Method::POST, "/api/v1/adm") => {
            #[derive(serde::Deserialize)]
            struct Adm {
                args: Vec<String>,
                #[serde(default)]
                stdin: String,
            }
            match serde_json::from_slice::<Adm>(&raw) {
                Ok(a) => {
                    tracing::info!(by = %who.name(), args = ?a.args, "console: adm");
                    let Ok(r) = crate::control::adm(a.args, a.stdin, |r| async {
                        Ok::<_, std::convert::Infallible>(ask(ctl, r).await)
                    })
                    .await;
                    outcome(&r)
                }
                Err(e) => api_error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not {{\"args\": [\"-L\", \"-n\"], \"stdin\": \"\"}}: {e}"),
                ),
            }
        }
        (&Method::GET, "/api/v1/config") => config::api_get(shared),
        (&Method::POST, "/api/v1/config") => config::api_post(shared, ctl, &raw, who.name()).await,
        (&Method::POST, p) if p.starts_with("/api/v1/servers/") => {
            let parts: Vec<&str> = p["/api/v1/servers/".len()..].split('/').collect();
            let [v, s, a] = parts.as_slice() else {
                return api_error(
                    StatusCode::NOT_FOUND,
                    "use /api/v1/servers/VIRTUAL/SERVER/drain|disable|enable",
                );
            };
            let decode = |x: &str| {
                form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            match a.parse::<ServerAction>() {
                Ok(action) => outcome(
                    &ask(
                        ctl,
                        Request::Server {
                            virtual_server: decode(v),
                            server: decode(s),
                            action,
                        },
                    )
                    .await,
                ),
                Err(e) => api_error(StatusCode::NOT_FOUND, e),
            }
        }
        _ if api => api_error(
            StatusCode::NOT_FOUND,
            format!("no {method} {path}: the API is described at /api/v1/openapi.json"),
        ),
        _ => html(
            StatusCode::NOT_FOUND,
            pages::message(
                "Not found",
                "There is no such page: go back to the live view.",
            ),
        ),
    }
}

fn forbidden(api: bool, why: &str) -> Resp {
    if api {
        api_error(StatusCode::FORBIDDEN, why)
    } else {
        html(StatusCode::FORBIDDEN, pages::message("Refused", why))
    }
}

/// A control answer as the API's JSON: 200 when it succeeded, 422 when the
/// director refused.
fn outcome(r: &Response) -> Resp {
    json(
        if r.exit_code == 0 {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        },
        r,
    )
}

/// What a page needs to know of who looks at it.
pub(crate) struct View {
    user: String,
    admin: bool,
    csrf: String,
    has_config: bool,
}

fn view(shared: &Shared, who: &Who) -> View {
    View {
        user: who.name().to_string(),
        admin: who.role() == Some(Role::Admin),
        csrf: match who {
            Who::Person(_, s) => s.csrf.clone(),
            _ => String::new(),
        },
        has_config: shared.config.is_some(),
    }
}

/// The login page. Its form carries the nonce of the login cookie (a
/// browser's other requests to the login page — a favicon's redirect, a
/// second tab — keep the one it has, so no form is left stale).
fn login_page(
    shared: &Shared,
    kept: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Resp {
    let nonce = kept
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| auth::random_hex(16).unwrap_or_default(), str::to_string);
    let mut r = html(status, pages::login(&nonce, error));
    set_cookie(
        &mut r,
        shared.secure,
        LOGIN_COOKIE,
        &nonce,
        "/login",
        Some(600),
    );
    r
}

async fn login(shared: &Shared, req: hyper::Request<Incoming>, peer: IpAddr) -> Resp {
    let nonce = cookie(&req, LOGIN_COOKIE).map(str::to_string);
    if !same_origin(&req) {
        return forbidden(
            false,
            "cross-site request refused: the Origin is not this console",
        );
    }
    let f = match body(req).await {
        Ok(b) => form(&b),
        Err(r) => return r,
    };
    // Login CSRF: the form's token must be the cookie the form came with.
    let sent = f.get("csrf").map(String::as_str).unwrap_or_default();
    if !nonce
        .as_deref()
        .is_some_and(|n| !n.is_empty() && auth::same(n.as_bytes(), sent.as_bytes()))
    {
        return login_page(
            shared,
            None,
            Some("This login form has expired or came from elsewhere: try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = f.get("user").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let now = shared.now();
    let (wait, found) = {
        let Ok(mut inner) = shared.inner.lock() else {
            return html(StatusCode::INTERNAL_SERVER_ERROR, String::new());
        };
        shared.refresh_users(&mut inner);
        (
            inner.throttle.wait(peer, now),
            inner.users.user(&user).map(|(r, h)| (r, h.to_string())),
        )
    };
    if let Some(w) = wait {
        tracing::warn!(%peer, user = %user, "console: login refused, too many failures from this address");
        let mut r = login_page(
            shared,
            nonce.as_deref(),
            Some(&format!(
                "Too many failed logins from {peer}: wait {} s and try again.",
                w.as_secs().max(1)
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let Ok(v) = HeaderValue::from_str(&w.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let Ok(_permit) = shared.verifying.acquire().await else {
        return html(StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let hash = found
        .as_ref()
        .map_or_else(|| shared.decoy.clone(), |(_, h)| h.clone());
    let pw = password.clone();
    let good = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &pw))
        .await
        .unwrap_or(false)
        && found.is_some();
    let Ok(mut inner) = shared.inner.lock() else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    match (good, found) {
        (true, Some((role, _))) => {
            inner.throttle.succeeded(peer);
            match inner.sessions.start(&user, role, now) {
                Ok((id, _)) => {
                    drop(inner);
                    tracing::info!(%user, role = role.word(), %peer, "console: logged in");
                    let mut r = redirect("/");
                    set_cookie(&mut r, shared.secure, SESSION_COOKIE, &id, "/", None);
                    set_cookie(&mut r, shared.secure, LOGIN_COOKIE, "", "/login", Some(0));
                    r
                }
                Err(e) => html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::message("Error", &e),
                ),
            }
        }
        _ => {
            inner.throttle.failed(peer, now);
            drop(inner);
            tracing::warn!(%user, %peer, "console: login failed (wrong user name or password)");
            login_page(
                shared,
                nonce.as_deref(),
                Some("Wrong user name or password."),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

/// The API's description (OpenAPI 3.0).
pub const OPENAPI: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().unwrap();
        for (p, m) in [
            ("/api/v1/state", "get"),
            ("/api/v1/reload", "post"),
            ("/api/v1/adm", "post"),
            ("/api/v1/config", "get"),
            ("/api/v1/config", "post"),
            ("/api/v1/servers/{virtual}/{server}/{action}", "post"),
            ("/api/v1/openapi.json", "get"),
        ] {
            assert!(paths[p][m].is_object(), "{m} {p} is not in openapi.json");
        }
        assert_eq!(
            paths.len(),
            6,
            "a route in openapi.json that the console does not serve"
        );
    }
}

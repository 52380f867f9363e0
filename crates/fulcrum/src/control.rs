//! The control socket: a Unix socket (mode 0600) speaking
//! [`fulcrum_api::control`], one JSON line per request and per answer.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fulcrum_api::control::{Request, Response, decode, encode};
use fulcrum_api::ipvsadm;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use fulcrum_api::control::ControlMsg;

/// A bound control socket that removes its file when dropped (unless a
/// successor took it over: [`ControlSocket::handed_over`]).
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    handed_over: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if !self.handed_over.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl ControlSocket {
    /// The control socket a director that restarted into this one left
    /// (`fulcrum restart`), at `path`.
    ///
    /// # Errors
    /// The descriptor is not a listening Unix socket.
    pub fn inherit(fd: std::os::fd::OwnedFd, path: &Path) -> Result<ControlSocket, String> {
        let l = std::os::unix::net::UnixListener::from(fd);
        l.set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(l))
            .map(|listener| ControlSocket {
                listener,
                path: path.to_path_buf(),
                handed_over: Default::default(),
            })
            .map_err(|e| format!("the inherited control socket cannot be used: {e}"))
    }

    /// A copy of the listening socket, for a successor.
    ///
    /// # Errors
    /// Out of descriptors.
    pub fn socket(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        self.listener.as_fd().try_clone_to_owned()
    }

    /// Set when a successor took the socket over: its file then stays.
    pub fn handed_over(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.handed_over.clone()
    }

    /// Bind at `path`, creating its directory (0700). The directory must
    /// be ours and private; a stale socket of ours is replaced, a live one
    /// means another director runs there, and anything else at `path` is
    /// refused and left alone. The socket is created with mode 0600 (no
    /// window under a looser umask).
    ///
    /// # Errors
    /// A message saying what to do.
    pub async fn bind(path: &Path) -> Result<ControlSocket, String> {
        if ControlSocket::check_free(path).await? {
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
        }
        // The umask is the process's; nothing else creates files while the
        // director starts.
        let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound.map_err(|e| {
            format!(
                "cannot bind the control socket {}: {e}{}",
                path.display(),
                if e.kind() == io::ErrorKind::PermissionDenied {
                    " (with `user`, the socket's directory must be writable by that user: leave it to the director to create, or choose a --control path in a directory of the user's)"
                } else {
                    ""
                }
            )
        })?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            handed_over: Default::default(),
        })
    }

    /// Make the socket's directory ready and check that no director runs
    /// at `path`, before anything else the director does at start. `true`
    /// when a stale socket of ours is there (to be replaced).
    ///
    /// # Errors
    /// A message saying what to do.
    pub async fn check_free(path: &Path) -> Result<bool, String> {
        crate::paths::prepare_socket_dir(path)?;
        if crate::paths::existing_socket(path)? == crate::paths::Existing::Nothing {
            return Ok(false);
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another director is already running with control socket {}; stop it, or give this one another --control path",
                path.display()
            ));
        }
        Ok(true)
    }

    /// Serve requests, passing each to the controller. Each connection may
    /// take [`REQUEST_TIMEOUT`] to send a request of at most
    /// [`MAX_REQUEST`] bytes; at most [`MAX_CLIENTS`] are served at once.
    pub async fn serve(self, controller: mpsc::Sender<ControlMsg>) {
        let clients = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
        let mut backoff = fulcrum_proxy::accept::AcceptBackoff::new("control socket");
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            };
            let Ok(permit) = clients.clone().try_acquire_owned() else {
                let mut stream = stream;
                let busy = format!(
                    "the director is serving {MAX_CLIENTS} control connections already; try again\n"
                );
                refuse(&mut stream, busy, Duration::from_millis(100)).await;
                continue;
            };
            let controller = controller.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve_client(stream, controller).await;
            });
        }
    }
}

/// The longest a control request may be: a `-R` restore of a large table
/// fits many times over.
pub const MAX_REQUEST: usize = 16 << 20;
/// How long a client may take to send one whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections served at once.
pub const MAX_CLIENTS: usize = 32;

/// Tell a client why it is refused (exit status 2), waiting at most
/// `within` for it to take the answer.
async fn refuse(w: &mut (impl AsyncWriteExt + Unpin), stderr: String, within: Duration) {
    let resp = Response {
        stderr,
        exit_code: 2,
        ..Default::default()
    };
    let _ = tokio::time::timeout(within, w.write_all(encode(&resp).as_bytes())).await;
}

/// Answer one control connection's requests, one line each.
async fn serve_client(stream: UnixStream, controller: mpsc::Sender<ControlMsg>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            (&mut r)
                .take(MAX_REQUEST as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        let refused = match read {
            Err(_) => Some(format!(
                "no complete request within {}s; closing\n",
                REQUEST_TIMEOUT.as_secs()
            )),
            Ok(Err(e)) => Some(format!("cannot read the request: {e}\n")),
            Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > MAX_REQUEST => Some(format!(
                "request longer than {MAX_REQUEST} bytes; closing\n"
            )),
            Ok(Ok(_)) if line.last() != Some(&b'\n') => {
                Some("the request ended without a newline; closing\n".into())
            }
            Ok(Ok(_)) => None,
        };
        if let Some(why) = refused {
            refuse(&mut w, why, Duration::from_secs(1)).await;
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let resp = match decode::<Request>(text.trim_end()) {
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                if controller
                    .send(ControlMsg { request, reply: tx })
                    .await
                    .is_err()
                {
                    return;
                }
                rx.await.unwrap_or_else(|_| Response {
                    stderr: "the director is shutting down\n".into(),
                    exit_code: 1,
                    ..Default::default()
                })
            }
            Err(e) => Response {
                stderr: format!("bad control request: {e}\n"),
                exit_code: 2,
                ..Default::default()
            },
        };
        if w.write_all(encode(&resp).as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Send one request to the director at `path` and wait for the answer.
///
/// # Errors
/// The connection or protocol error.
pub async fn call(path: &Path, request: &Request) -> io::Result<Response> {
    // Only a socket of ours (or root's) in a directory nobody else can
    // change answers for the director.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::paths::check_dir_for_client(dir).map_err(io::Error::other)?;
    }
    crate::paths::existing_socket_for_client(path).map_err(io::Error::other)?;
    let stream = UnixStream::connect(path).await?;
    let (r, mut w) = stream.into_split();
    w.write_all(encode(request).as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    let line = lines.next_line().await?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the director closed the connection",
        )
    })?;
    decode(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Run `work` off the async threads: name lookups block.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// An ipvsadm invocation, from whichever side of the control socket it is
/// typed on: parsed here (names resolved here, so a slow name server holds
/// up only this command), its commands sent with `send`, the director's typed
/// answers rendered here byte for byte as ipvsadm prints them. An invocation
/// with nothing for the director (`-h`, `-v`, a command line that does not
/// parse) is answered without it.
///
/// # Errors
/// What `send` fails with.
pub async fn adm<E, F, Fut>(args: Vec<String>, stdin: String, send: F) -> Result<Response, E>
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response, E>>,
{
    let resolver = &crate::resolver::SystemResolver;
    let steps = blocking(move || ipvsadm::plan(ipvsadm::PROGRAM, &args, &stdin, resolver)).await;
    let commands = ipvsadm::commands(&steps);
    if commands.is_empty() {
        return Ok(ipvsadm::render(&steps, Vec::new(), resolver).into());
    }
    let mut resp = send(Request::Adm { commands }).await?;
    if resp.replies.is_empty() && resp.exit_code != 0 {
        // Refused as a whole: a director of another version, or one
        // shutting down.
        if resp.stderr.starts_with("bad control request") {
            resp.stderr.push_str(
                "  hint: the director runs another version of Fulcrum; `fulcrum restart` brings it to this program's\n",
            );
        }
        return Ok(resp);
    }
    Ok(blocking(move || {
        let mut out = ipvsadm::render(&steps, std::mem::take(&mut resp.replies), resolver);
        out.stdout.push_str(&resp.stdout);
        out.stderr.push_str(&resp.stderr);
        if resp.exit_code != 0 {
            out.exit_code = resp.exit_code;
        }
        out.into()
    })
    .await)
}

/// `fulcrum adm` and `ipvsadm`: [`adm`] through the socket at `path`,
/// printed as ipvsadm prints, returning the exit status.
pub fn adm_client(path: &Path, args: Vec<String>, stdin: String, program: &str) -> i32 {
    with_runtime(path, program, |rt| {
        rt.block_on(adm(args, stdin, |r| async move { call(path, &r).await }))
    })
}

/// `fulcrum status`, `fulcrum reload` and the other commands: one call,
/// printed as a command-line tool prints, returning the exit status.
pub fn client(path: &Path, request: Request, program: &str) -> i32 {
    with_runtime(path, program, |rt| rt.block_on(call(path, &request)))
}

fn with_runtime(
    path: &Path,
    program: &str,
    work: impl FnOnce(&tokio::runtime::Runtime) -> io::Result<Response>,
) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start: {e}");
            return 2;
        }
    };
    match work(&rt) {
        Ok(r) => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            r.exit_code
        }
        Err(e) => {
            // ipvsadm exits 2 when it cannot reach IPVS at all.
            eprintln!(
                "{program}: cannot reach the Fulcrum director at {}: {e}",
                path.display()
            );
            eprintln!(
                "  hint: start it with `fulcrum run` (reading /etc/fulcrum/lvs.cf, or --config PATH) or `fulcrum demo`, or point --control / FULCRUM_CONTROL at its socket"
            );
            2
        }
    }
}

//! The control socket: a Unix socket (mode 0600) speaking
//! [`fulcrum_api::control`], one JSON line per request and per answer.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fulcrum_api::control::{Request, Response, decode, encode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::controller::ControlMsg;

/// A bound control socket that removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlSocket {
    /// Bind at `path`, creating its directory. A stale socket file is
    /// replaced; a live one means another director runs there.
    ///
    /// # Errors
    /// A message saying what to do.
    pub async fn bind(path: &Path) -> Result<ControlSocket, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(format!(
                    "another director is already running with control socket {}; stop it, or give this one another --control path",
                    path.display()
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot bind the control socket {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {} to mode 0600: {e}", path.display()))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serve requests, passing each to the controller.
    pub async fn serve(self, controller: mpsc::Sender<ControlMsg>) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let controller = controller.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let resp = match decode::<Request>(&line) {
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
            });
        }
    }
}

/// Send one request to the director at `path` and wait for the answer.
///
/// # Errors
/// The connection or protocol error.
pub async fn call(path: &Path, request: &Request) -> io::Result<Response> {
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

/// `fulcrum adm`, `fulcrum status`, `fulcrum reload` and `ipvsadm`: one call,
/// printed as a command-line tool prints, returning the exit status.
pub fn client(path: &Path, request: Request, program: &str) -> i32 {
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
    match rt.block_on(call(path, &request)) {
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
                "  hint: start it with `fulcrum run --config /etc/lvs.cf` (or `fulcrum demo`), or point --control / FULCRUM_CONTROL at its socket"
            );
            2
        }
    }
}

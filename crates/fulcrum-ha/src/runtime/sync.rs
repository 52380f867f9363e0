//! Configuration sync (`sync = 1`): sending lvs.cf to a peer over TCP
//! `heartbeat_port`, and receiving, checking and applying one.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::Authenticator;
use crate::cluster::{MAX_CONFIG, SyncOutcome, SyncPush, SyncReply};
use fulcrum_api::control::Request;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use fulcrum_api::control::ControlMsg;

/// How long a sync exchange may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Send an lvs.cf to a peer and log what it did with it.
pub(super) async fn send_config(
    local: Ipv4Addr,
    peer: Ipv4Addr,
    port: u16,
    auth: Arc<Mutex<Authenticator>>,
    push: SyncPush,
) {
    let serial = push.serial;
    let r = tokio::time::timeout(SYNC_TIMEOUT, async {
        let frame = push.encode().map_err(|e| e.to_string())?;
        let sealed = lock(&auth).seal(local.into(), peer.into(), &frame);
        let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.bind(SocketAddrV4::new(local, 0).into())
            .map_err(|e| e.to_string())?;
        let mut s = sock
            .connect(SocketAddrV4::new(peer, port).into())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(&sealed).await.map_err(|e| e.to_string())?;
        s.shutdown().await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        (&mut s)
            .take(70_000 + crate::auth::TRAILER as u64)
            .read_to_end(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        let body = lock(&auth)
            .open(peer.into(), local.into(), &reply)
            .map_err(|e| e.to_string())?
            .to_vec();
        SyncReply::decode(&body).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {}s", SYNC_TIMEOUT.as_secs())));
    match r {
        Ok(SyncReply {
            outcome: SyncOutcome::Applied,
            message,
        }) => tracing::info!(%peer, serial, %message, "configuration sync: applied by the peer"),
        Ok(SyncReply {
            outcome: SyncOutcome::NotNewer,
            message,
        }) => {
            tracing::info!(%peer, serial, %message, "configuration sync: the peer has it already")
        }
        Ok(SyncReply { outcome, message }) => {
            tracing::error!(%peer, serial, ?outcome, %message, "configuration sync: the peer kept its configuration")
        }
        Err(e) => {
            tracing::warn!(%peer, serial, error = %e, "configuration sync failed; will retry")
        }
    }
}

fn lock(a: &Mutex<Authenticator>) -> std::sync::MutexGuard<'_, Authenticator> {
    a.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Receive an lvs.cf from the active director: check it, write it over
/// ours and reload, or keep ours and say why.
pub(super) async fn receive_config(
    mut stream: TcpStream,
    from: IpAddr,
    local: IpAddr,
    auth: Arc<Mutex<Authenticator>>,
    own_serial: u64,
    path: PathBuf,
    control: mpsc::Sender<ControlMsg>,
) {
    let got = tokio::time::timeout(SYNC_TIMEOUT, async {
        let mut buf = Vec::new();
        (&mut stream)
            .take((MAX_CONFIG + 16 + crate::auth::TRAILER) as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let body = lock(&auth)
            .open(from, local, &buf)
            .map_err(|e| e.to_string())?
            .to_vec();
        SyncPush::decode(&body).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("timed out reading it".into()));
    let push = match got {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%from, error = %e, "configuration sync refused");
            return;
        }
    };
    let reply = apply_pushed(push, from, own_serial, &path, &control).await;
    let sealed = lock(&auth).seal(local, from, &reply.encode());
    let _ = tokio::time::timeout(SYNC_TIMEOUT, stream.write_all(&sealed)).await;
}

/// Check a pushed file, write it over ours and reload, or say why not.
async fn apply_pushed(
    push: SyncPush,
    from: IpAddr,
    own_serial: u64,
    path: &std::path::Path,
    control: &mpsc::Sender<ControlMsg>,
) -> SyncReply {
    let reply = |outcome, message: String| SyncReply { outcome, message };
    if push.serial <= own_serial {
        return reply(
            SyncOutcome::NotNewer,
            format!("serial {} is not newer than {own_serial}", push.serial),
        );
    }
    let name = path.display().to_string();
    let parsed = fulcrum_config::parse(&push.text);
    if parsed.has_errors() {
        let first = parsed
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("line {}: {}", d.span.line, d.message))
            .unwrap_or_default();
        let msg = format!(
            "serial {} has {} errors (first: {first}); keeping serial {own_serial}",
            push.serial,
            parsed.error_count()
        );
        tracing::error!(%from, config = %name, "configuration sync refused: {msg}");
        return reply(SyncOutcome::Invalid, msg);
    }
    if parsed.config.global.serial_no != Some(push.serial) {
        let msg = format!(
            "the file says serial_no {:?}, the sync {}; keeping serial {own_serial}",
            parsed.config.global.serial_no, push.serial
        );
        tracing::error!(%from, "configuration sync refused: {msg}");
        return reply(SyncOutcome::Invalid, msg);
    }
    let old = std::fs::read(path).ok();
    if let Err(e) = replace_file(path, push.text.as_bytes()) {
        let msg = format!("cannot write {name}: {e}; keeping serial {own_serial}");
        tracing::error!(%from, "configuration sync failed: {msg}");
        return reply(SyncOutcome::Failed, msg);
    }
    let (tx, rx) = oneshot::channel();
    let asked = control
        .send(ControlMsg {
            request: Request::Reload,
            reply: tx,
        })
        .await;
    match (asked, rx.await) {
        (Ok(()), Ok(r)) if r.exit_code == 0 => {
            tracing::info!(%from, serial = push.serial, config = %name, "configuration sync: applied");
            reply(
                SyncOutcome::Applied,
                format!("serial {} applied", push.serial),
            )
        }
        (asked, r) => {
            // Put the old file back, so file and running table agree.
            if let Some(old) = old
                && let Err(e) = replace_file(path, &old)
            {
                tracing::error!(config = %name, error = %e, "configuration sync: cannot restore the previous file");
            }
            let why = match (asked, r) {
                (Ok(()), Ok(r)) => r.stderr.trim().to_string(),
                _ => "the director is stopping".into(),
            };
            let msg = format!(
                "serial {} could not be applied here ({why}); keeping serial {own_serial}",
                push.serial
            );
            tracing::error!(%from, "configuration sync failed: {msg}");
            reply(SyncOutcome::Failed, msg)
        }
    }
}

/// Write over the file atomically and durably, private (0600, or
/// narrower if the file was), so the secret-bearing configuration is never
/// readable by others, not even for a moment.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o600);
    fulcrum_net::files::write_atomic(path, bytes, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cf(serial: u64, extra: &str) -> String {
        format!(
            "serial_no = {serial}\n{extra}virtual web {{\n address = 127.40.0.1\n active = 1\n server a {{\n  address = 127.0.0.1\n  active = 1\n }}\n}}\n"
        )
    }

    #[tokio::test]
    async fn a_pushed_configuration_is_validated_before_it_replaces_ours() {
        let dir = std::env::temp_dir().join(format!("fulcrum-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lvs.cf");
        std::fs::write(&path, cf(1, "")).unwrap();
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        let (tx, mut rx) = mpsc::channel::<ControlMsg>(4);
        // The test plays the controller: every reload succeeds.
        let answered = tokio::spawn(async move {
            let mut n = 0;
            while let Some(m) = rx.recv().await {
                assert_eq!(m.request, Request::Reload);
                n += 1;
                let _ = m.reply.send(fulcrum_api::control::Response::default());
            }
            n
        });

        let bad = SyncPush {
            serial: 2,
            text: cf(2, "scheduler = fastest\n"),
        };
        let r = apply_pushed(bad, from, 1, &path, &tx).await;
        assert_eq!(r.outcome, SyncOutcome::Invalid, "{}", r.message);
        assert!(r.message.contains("keeping serial 1"), "{}", r.message);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            cf(1, ""),
            "ours is untouched"
        );

        let old = SyncPush {
            serial: 1,
            text: cf(1, ""),
        };
        assert_eq!(
            apply_pushed(old, from, 1, &path, &tx).await.outcome,
            SyncOutcome::NotNewer
        );

        let lying = SyncPush {
            serial: 3,
            text: cf(2, ""),
        };
        assert_eq!(
            apply_pushed(lying, from, 1, &path, &tx).await.outcome,
            SyncOutcome::Invalid
        );

        let good = SyncPush {
            serial: 2,
            text: cf(2, ""),
        };
        let r = apply_pushed(good, from, 1, &path, &tx).await;
        assert_eq!(r.outcome, SyncOutcome::Applied, "{}", r.message);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), cf(2, ""));
        drop(tx);
        assert_eq!(answered.await.unwrap(), 1, "one reload, for the good file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Telling systemd what the director is doing (`Type=notify` in
//! packaging/fulcrum.service): ready once it serves, reloading and ready
//! again around each reload, stopping at the end. Without `$NOTIFY_SOCKET`
//! (not started by systemd) nothing is sent.

use sd_notify::NotifyState;

fn send(what: &str, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot tell systemd the director is {what}");
    }
}

/// Serving: `READY=1` with a status line.
pub fn ready(status: &str) {
    send("ready", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins: `RELOADING=1` with the monotonic time systemd
/// (`Type=notify-reload`) asks for.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(t) = NotifyState::monotonic_usec_now() {
        states.push(t);
    }
    send("reloading", &states);
}

/// Stopping: `STOPPING=1`.
pub fn stopping() {
    send(
        "stopping",
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
}

/// The service's main process is `pid` from now on: the successor
/// `fulcrum restart` started (sent by the main process, as
/// `NotifyAccess=main` wants).
pub fn main_pid(pid: u32) {
    send("handing over", &[NotifyState::MainPid(pid)]);
}

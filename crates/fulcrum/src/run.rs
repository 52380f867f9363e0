//! `fulcrum run`: the director daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fulcrum_config::Config;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::addresses::{AddrMsg, Addresses, Announce};
use crate::control::ControlSocket;
use crate::controller::{self, Controller};
use fulcrum_api::control::ControlMsg;
use fulcrum_ha::runtime::{Ha, HaSettings};

/// Whether standard error is systemd's journal (`$JOURNAL_STREAM` names
/// its device and inode, as systemd sets it for a service).
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    rustix::fs::fstat(std::io::stderr()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// Log one line per event to stderr or, under systemd, to the journal with
/// each field its own (`VIRTUAL_SERVER=web`, `REAL_SERVER=rs1`, …);
/// `FULCRUM_LOG` takes a tracing filter (default `info`). The console keeps
/// the last lines too.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FULCRUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = if stderr_is_journal() {
        tracing_journald::layer()
            .ok()
            .map(|l| l.with_syslog_identifier("fulcrum".into()))
    } else {
        None
    };
    let text = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(text)
        .with(crate::logring::layer())
        .try_init();
}

/// Load and validate a configuration file; diagnostics go to stderr.
/// `None` when the file cannot be read or has errors (both reported);
/// otherwise the configuration and the text it came from.
pub fn load(path: &Path) -> Option<(Config, Arc<str>)> {
    let name = path.display().to_string();
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fulcrum: cannot read {name}: {e}");
            return None;
        }
    };
    let parsed = fulcrum_config::parse(&src);
    eprint!("{}", parsed.render(&name, &src));
    if parsed.has_errors() {
        eprintln!("{name}: {} errors; not starting", parsed.error_count());
        return None;
    }
    Some((parsed.config, src.into()))
}

/// Run a director until SIGINT or SIGTERM; SIGHUP reloads. Returns the exit
/// status.
#[allow(
    clippy::too_many_arguments,
    reason = "the director's inputs, each from its own command-line option"
)]
pub async fn director(
    config_path: Option<PathBuf>,
    config: Option<Config>,
    text: Option<Arc<str>>,
    origin: &str,
    control: PathBuf,
    workers: usize,
    metrics: Option<std::net::SocketAddr>,
    console: Option<std::net::SocketAddr>,
    keep_forwarding: bool,
    banner: impl FnOnce(&Path),
) -> i32 {
    // Started by `fulcrum restart`: the sockets the old director left.
    let mut inherited = match crate::restart::Inherited::from_env() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("fulcrum: {e}");
            return 1;
        }
    };
    let restarted = inherited.is_some();
    let mut inherited = inherited.take().unwrap_or_default();
    let metrics_listener = match metrics {
        None => None,
        Some(_) if inherited.metrics.is_some() => inherited.metrics.take().and_then(|fd| {
            let l = std::net::TcpListener::from(fd);
            l.set_nonblocking(true).ok()?;
            tokio::net::TcpListener::from_std(l).ok()
        }),
        Some(a) => match tokio::net::TcpListener::bind(a).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!(
                    "fulcrum: cannot serve metrics on {a}: {e}; choose another --metrics address"
                );
                return 1;
            }
        },
    };
    let name = config_path
        .as_ref()
        .map_or("configuration".to_string(), |p| p.display().to_string());
    // The console binds (and reads its users and certificate) before
    // privileges are given up; it cannot work, the director does not start.
    let console = match crate::console::Settings::from_config(
        config.as_ref(),
        console,
        config_path.clone(),
    ) {
        None => None,
        Some(s) => {
            match crate::console::Console::bind_or_take(&s, inherited.console.take()).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("fulcrum: {e}");
                    return 1;
                }
            }
        }
    };
    // Nothing is touched while another director runs at this socket
    // (unless it is the one this director replaces).
    if inherited.control.is_none()
        && let Err(e) = ControlSocket::check_free(&control).await
    {
        eprintln!("fulcrum: {e}");
        return 1;
    }
    // The plane first: loading ip_vs may need privileges given up below.
    let (chosen, plane_why) = match crate::kernel::choose(config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fulcrum: {name}: {e}");
            return 1;
        }
    };
    tracing::info!(plane = chosen.name(), why = %plane_why, "data plane");
    let privileges = match crate::privileges::reduce(config.as_ref(), &chosen, &control) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fulcrum: {name}: {e}");
            return 1;
        }
    };
    tracing::info!(%privileges, "privileges reduced");
    // The data plane: the kernel's IPVS, or the proxy's workers.
    let (plane, plane_rx): (Box<dyn crate::dataplane::DataPlane>, _) = match chosen {
        crate::kernel::Chosen::Kernel(mut k) => {
            k.keep_state(crate::paths::kernel_state_path(&control));
            // The kernel forwards: no connection events to schedule.
            (Box::new(k), mpsc::channel(1).1)
        }
        // The program forwards and schedules: no events either.
        crate::kernel::Chosen::Xdp(x) => (x, mpsc::channel(1).1),
        crate::kernel::Chosen::Proxy => {
            let (p, rx) = controller::plane(Duration::from_secs(300), workers);
            for (key, fds) in inherited.services.drain() {
                p.inherit(key, fds);
            }
            (Box::new(crate::dataplane::ProxyForwarding::new(p)), rx)
        }
    };
    let mut ctl = Controller::new(plane, config_path.clone(), origin);
    ctl.privileges = privileges;
    ctl.user = config.as_ref().and_then(|c| c.global.user.clone());
    ctl.keep_forwarding = keep_forwarding;
    ctl.plane_why = plane_why;
    // The floating addresses come up before serving; failing to add one is
    // fatal at start (later, on reload, it is logged).
    let mut addrs = match Addresses::new() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fulcrum: {e}");
            return 1;
        }
    };
    addrs.keep_state(crate::paths::address_state_path(&control));
    let ha = match config.as_ref().map(HaSettings::from_config).transpose() {
        Ok(h) => h.flatten().map(|mut h| {
            h.source = config_path.clone().zip(text);
            h.replay_state = Some(crate::paths::replay_state_path(&control));
            h
        }),
        Err(e) => {
            eprintln!("fulcrum: {name}: {e}");
            return 1;
        }
    };
    if let Some(cfg) = &config {
        addrs.set_announce(Announce::from_config(&cfg.global));
        if ha.is_some() {
            // A standby keeps everything ready but the addresses.
            addrs.standby(cfg.floating_addresses()).await;
        } else if let Err(e) = addrs.apply(&cfg.floating_addresses()).await {
            eprintln!("fulcrum: {e}");
            addrs.remove_all("the director could not start").await;
            return 1;
        }
    }
    let (addr_tx, addr_rx) = mpsc::unbounded_channel();
    let addr_task = tokio::spawn(addrs.run(addr_rx));
    let stop_addresses = |addr_tx: mpsc::UnboundedSender<AddrMsg>| async move {
        let (tx, rx) = oneshot::channel();
        if addr_tx.send(AddrMsg::RemoveAll(tx)).is_ok() {
            let _ = rx.await;
        }
    };
    if let Some(cfg) = &config {
        match ctl.apply_config(cfg) {
            // What the kernel refused is logged where it happened.
            Ok(a) => tracing::info!(config = %name, summary = %a.summary, "configuration applied"),
            Err(e) => {
                eprintln!("fulcrum: {name}: {e}");
                stop_addresses(addr_tx).await;
                return 1;
            }
        }
    }
    if let Some(n) = ctl.drop_unclaimed_sockets().filter(|n| *n > 0) {
        tracing::info!(
            sockets = n,
            "inherited sockets of virtual servers no longer configured closed"
        );
    }
    ctl.follow_addresses(addr_tx.clone());
    let (restart_tx, mut restart_rx) = mpsc::channel::<controller::RestartMsg>(1);
    ctl.restart = Some(restart_tx);
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlMsg>(64);
    let mut failover = None;
    if let Some(settings) = ha {
        match start_failover(settings.clone(), addr_tx.clone(), ctl_tx.clone()).await {
            Ok((f, status, settings_tx)) => {
                ctl.follow_failover(status, settings_tx, settings);
                failover = Some(f);
            }
            Err(e) => {
                eprintln!("fulcrum: {e}");
                stop_addresses(addr_tx).await;
                return 1;
            }
        }
    }
    // The first round of health checks decides which real servers serve.
    ctl.initial_checks().await;
    let bound = match inherited.control.take() {
        Some(fd) => ControlSocket::inherit(fd, &control),
        None => ControlSocket::bind(&control).await,
    };
    let socket = match bound {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fulcrum: {e}");
            stop_addresses(addr_tx).await;
            return 1;
        }
    };
    tracing::info!(control = %control.display(), "control socket ready");
    banner(&control);
    if restarted {
        // The old director stops accepting now, and tells systemd to
        // follow this one.
        inherited.serving();
        tracing::info!("took over from the director that restarted");
    }
    crate::notify::ready(&format!("serving {name}"));
    // Copies of the listeners this task owns, for `fulcrum restart`.
    let control_socket = socket.socket().ok();
    let control_handed = socket.handed_over();
    let metrics_socket = metrics_listener.as_ref().and_then(|l| {
        use std::os::fd::AsFd as _;
        l.as_fd().try_clone_to_owned().ok()
    });
    let console_socket = console.as_ref().and_then(|c| c.socket().ok());
    let mut handed_over = false;
    let (stop_tx, stop_rx) = oneshot::channel();
    let server = tokio::spawn(socket.serve(ctl_tx.clone()));
    let metrics_task = metrics_listener.map(|l| {
        tracing::info!(metrics = ?metrics, "metrics at /metrics");
        tokio::spawn(crate::metrics::serve(l, ctl_tx.clone()))
    });
    let console_task = console.map(|c| {
        tracing::info!(console = ?c.local_addr().ok(), "web console and API");
        tokio::spawn(c.serve(ctl_tx.clone()))
    });
    let ctl_task = tokio::spawn(ctl.run(plane_rx, ctl_rx, stop_rx));

    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("fulcrum: cannot install signal handlers");
        return 1;
    };
    loop {
        tokio::select! {
            Some(msg) = restart_rx.recv() => {
                let mut sockets = msg.sockets;
                for (slot, fd) in [
                    (crate::restart::Slot::Control, &control_socket),
                    (crate::restart::Slot::Metrics, &metrics_socket),
                    (crate::restart::Slot::Console, &console_socket),
                ] {
                    if let Some(fd) = fd.as_ref().and_then(|f| f.try_clone().ok()) {
                        sockets.push((slot, fd));
                    }
                }
                tracing::info!(sockets = sockets.len(), "restart: starting a new director with this one's sockets");
                match crate::restart::start_successor(sockets).await {
                    Ok(pid) => {
                        control_handed.store(true, std::sync::atomic::Ordering::Relaxed);
                        crate::notify::main_pid(pid);
                        msg.handed_over.store(true, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(pid, "restart: the new director serves; this one stops accepting and finishes its open connections");
                        let _ = msg.reply.send(fulcrum_api::control::Response {
                            stdout: format!(
                                "the new director (pid {pid}) serves; this one (pid {}) finishes its open connections\n",
                                std::process::id()
                            ),
                            ..Default::default()
                        });
                        handed_over = true;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "restart failed; this director carries on");
                        let _ = msg.reply.send(fulcrum_api::control::Response {
                            stderr: format!("{e}; this director carries on\n"),
                            exit_code: 1,
                            ..Default::default()
                        });
                    }
                }
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                crate::notify::reloading();
                let (tx, rx) = oneshot::channel();
                let mut status = format!("serving {name}; the last reload failed (see the log)");
                if ctl_tx.send(ControlMsg { request: fulcrum_api::control::Request::Reload, reply: tx }).await.is_ok()
                    && let Ok(r) = rx.await
                    && r.exit_code == 0
                {
                    status = format!("serving {name}; reloaded");
                }
                crate::notify::ready(&status);
            }
        }
    }
    crate::notify::stopping();
    // Hand over first (a priority-0 advert), so a backup takes the
    // addresses while this director still drains. Keeping forwarding, hand
    // nothing over: the next director is expected within deadtime.
    let keep_forwarding = keep_forwarding || handed_over;
    // A hand-over to a backup gives the addresses up: connections through
    // them cannot go on here, and waiting for them would only delay the
    // stop by drain_timeout.
    let drain = failover.is_none() || keep_forwarding;
    if let Some(f) = failover {
        f.stop(!keep_forwarding).await;
    }
    let _ = stop_tx.send(drain);
    let _ = ctl_task.await;
    server.abort();
    let _ = server.await; // drops the socket, removing its file
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(t) = console_task {
        t.abort();
    }
    if keep_forwarding {
        tracing::info!("the floating addresses stay for the next director");
    } else {
        stop_addresses(addr_tx).await;
    }
    addr_task.abort();
    tracing::info!("stopped");
    0
}

/// Failover on a thread of its own, with a runtime of its own: adverts go
/// out and are heard on time however long the controller's thread is busy
/// (a listing of a million flows, a sweep), as keepalived keeps VRRP apart
/// from its checkers.
struct Failover {
    /// Hand over (a priority-0 advert), then stop.
    hand_over: oneshot::Sender<()>,
    /// Stop at once, handing nothing over.
    abort: oneshot::Sender<()>,
    /// Fires when the thread is done.
    done: oneshot::Receiver<()>,
}

impl Failover {
    /// Stop, handing over first when `hand_over`; returns when it has.
    async fn stop(self, hand_over: bool) {
        if hand_over {
            let _ = self.hand_over.send(());
        } else {
            let _ = self.abort.send(());
        }
        let _ = self.done.await;
    }
}

/// Start the election on its own thread (its sockets registered with its
/// own runtime).
async fn start_failover(
    settings: fulcrum_ha::runtime::HaSettings,
    addr_tx: mpsc::UnboundedSender<crate::addresses::AddrMsg>,
    ctl_tx: mpsc::Sender<ControlMsg>,
) -> Result<
    (
        Failover,
        tokio::sync::watch::Receiver<fulcrum_ha::runtime::HaStatus>,
        mpsc::UnboundedSender<fulcrum_ha::runtime::HaSettings>,
    ),
    String,
> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (hand_over, hand_over_rx) = oneshot::channel();
    let (abort, abort_rx) = oneshot::channel::<()>();
    let (done_tx, done) = oneshot::channel();
    let (settings_tx, settings_rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("fulcrum-failover".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start failover's runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                match Ha::new(
                    settings,
                    Box::new(crate::addresses::ForFailover(addr_tx)),
                    ctl_tx,
                ) {
                    Ok((ha, status)) => {
                        let _ = ready_tx.send(Ok(status));
                        tokio::select! {
                            () = ha.run(hand_over_rx, settings_rx) => {}
                            _ = abort_rx => {}
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            let _ = done_tx.send(());
        })
        .map_err(|e| format!("cannot start failover's thread: {e}"))?;
    let status = ready_rx
        .await
        .map_err(|_| "failover's thread ended at start".to_string())??;
    Ok((
        Failover {
            hand_over,
            abort,
            done,
        },
        status,
        settings_tx,
    ))
}

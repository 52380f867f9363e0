//! The floating addresses of the active director: brought up (unless the
//! host already has them), announced, kept in step with reloads, and
//! removed on exit — only those the director added. With failover, they
//! are up only while this director is the active one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use fulcrum_config::Floating;
use fulcrum_net::addr::{Added, AddressManager, FloatingAddr};
use fulcrum_net::announce;
use tokio::sync::{mpsc, oneshot};

/// The spacing of gratuitous ARPs / NAs within a burst.
const ANNOUNCE_GAP: Duration = Duration::from_millis(20);

/// How addresses are announced when they come up: a burst, and the same
/// burst again after a delay (`garp_count`, `garp_delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Gratuitous ARPs / unsolicited NAs per burst.
    pub count: u32,
    /// When the second burst goes; zero for none.
    pub repeat_after: Duration,
}

impl Announce {
    /// `garp_count` and `garp_delay`.
    pub fn from_config(g: &fulcrum_config::Global) -> Announce {
        Announce {
            count: g.effective_garp_count(),
            repeat_after: g.effective_garp_delay().0,
        }
    }
}

impl Default for Announce {
    fn default() -> Announce {
        Announce {
            count: 5,
            repeat_after: Duration::from_secs(5),
        }
    }
}

/// A message to the address task.
#[derive(Debug)]
pub enum AddrMsg {
    /// Make the floating addresses these, announced so.
    Want(Vec<Floating>, Announce),
    /// Become the active director (bring the addresses up) or stop being
    /// it (take them down); answered once done.
    Active(bool, oneshot::Sender<()>),
    /// Announce every address again (a healed partition).
    Reannounce,
    /// Remove what was added, then answer.
    RemoveAll(oneshot::Sender<()>),
}

/// The address task, as failover sees it: its requests go as messages.
#[derive(Debug)]
pub struct ForFailover(pub mpsc::UnboundedSender<AddrMsg>);

impl fulcrum_ha::runtime::FloatingAddresses for ForFailover {
    fn set_active(&self, on: bool) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.0.send(AddrMsg::Active(on, tx)).ok().map(|()| rx)
    }

    fn reannounce(&self) {
        let _ = self.0.send(AddrMsg::Reannounce);
    }
}

fn announce_soon(dev: String, addr: IpAddr, how: Announce) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for at in burst_times(how) {
            tokio::time::sleep_until(start + at).await;
            for i in 0..how.count {
                let r = match addr {
                    IpAddr::V4(a) => announce::gratuitous_arp(&dev, a),
                    IpAddr::V6(a) => announce::unsolicited_na(&dev, a),
                };
                if let Err(e) = r {
                    tracing::warn!(%addr, %dev, error = %e, "cannot announce the address");
                    return;
                }
                if i + 1 < how.count {
                    tokio::time::sleep(ANNOUNCE_GAP).await;
                }
            }
            tracing::debug!(%addr, %dev, count = how.count, after = ?at, "announced");
        }
        tracing::info!(%addr, %dev, "announced");
    })
}

/// When the bursts of announcements go out after an address comes up: at
/// once, 1 s and 2 s later — a neighbour that updated its entry for the
/// address less than its lock time ago (Linux `locktime`, 1 s) ignores a
/// burst, so one of three a second apart always lands — then `garp_delay`
/// later for whoever missed them all.
fn burst_times(how: Announce) -> Vec<Duration> {
    let mut at = vec![
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(2),
    ];
    if how.repeat_after > Duration::from_secs(2) {
        at.push(how.repeat_after);
    }
    at
}

/// The address task's state.
#[derive(Debug)]
pub struct Addresses {
    mgr: AddressManager,
    /// What the configuration asks for.
    want: Vec<Floating>,
    /// Whether this director is the active one (always, without failover).
    active: bool,
    announce: Announce,
    /// The device each added address went on, for announcing again.
    devices: Vec<(IpAddr, String)>,
    /// The announcements still to come for each address: stopped when it
    /// goes, so a director never announces an address it gave up.
    announcing: HashMap<IpAddr, tokio::task::JoinHandle<()>>,
    /// Where the addresses this director holds are recorded, so that a
    /// restart after `kill -9` knows them as its own.
    state: Option<std::path::PathBuf>,
    /// What an earlier run recorded there.
    inherited: Vec<IpAddr>,
}

/// The largest state file read.
const MAX_STATE: u64 = 64 * 1024;

/// The addresses an earlier run recorded at `path`: one per line.
fn read_state(path: &std::path::Path) -> Vec<IpAddr> {
    fulcrum_net::files::read_own(path, MAX_STATE)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

impl Addresses {
    /// Open the netlink connection.
    ///
    /// # Errors
    /// The netlink socket cannot be opened.
    pub fn new() -> Result<Addresses, String> {
        Ok(Addresses {
            mgr: AddressManager::new().map_err(|e| e.to_string())?,
            want: Vec::new(),
            active: true,
            announce: Announce::default(),
            devices: Vec::new(),
            announcing: HashMap::new(),
            state: None,
            inherited: Vec::new(),
        })
    }

    /// Record the addresses this director holds at `path` (private, written
    /// atomically), and take those an earlier run recorded there — left by
    /// a director that was killed — as this one's own when the
    /// configuration still wants them: announced again, and removed on
    /// exit like any it adds.
    pub fn keep_state(&mut self, path: std::path::PathBuf) {
        self.inherited = read_state(&path);
        if !self.inherited.is_empty() {
            tracing::info!(state = %path.display(), addresses = ?self.inherited, "addresses recorded by an earlier run");
        }
        self.state = Some(path);
    }

    /// Announce an address now and on the schedule, replacing what was
    /// still scheduled for it.
    fn start_announcing(&mut self, dev: String, addr: IpAddr) {
        let h = announce_soon(dev, addr, self.announce);
        if let Some(old) = self.announcing.insert(addr, h) {
            old.abort();
        }
    }

    /// No more announcements of an address this director gives up.
    fn stop_announcing(&mut self, addr: &IpAddr) {
        if let Some(h) = self.announcing.remove(addr) {
            h.abort();
        }
    }

    /// Write what this director holds now; no file when it holds nothing.
    fn save_state(&self) {
        let Some(path) = &self.state else { return };
        let held = self.mgr.added();
        let r = if held.is_empty() {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let mut text = String::new();
            for a in &held {
                let dev = self
                    .devices
                    .iter()
                    .find(|(d, _)| d == a)
                    .map_or("", |(_, dev)| dev.as_str());
                text.push_str(&format!("{a} {dev}\n"));
            }
            fulcrum_net::files::write_atomic(path, text.as_bytes(), 0o600)
        };
        if let Err(e) = r {
            tracing::warn!(state = %path.display(), error = %e, "cannot record the addresses this director holds; after a crash it would not know them as its own");
        }
    }

    /// Start as a standby director: nothing comes up until
    /// [`AddrMsg::Active`]. Failover owns the floating addresses, so any
    /// already on the host (left by a director that was killed) go.
    pub async fn standby(&mut self, want: Vec<Floating>) {
        for f in &want {
            if f.addr.is_loopback() {
                continue;
            }
            match self.mgr.adopt(&f.addr).await {
                Ok(true) => {
                    tracing::warn!(addr = %f.addr, what = %f.what, "floating address found on this host while this director starts as a backup (left by a director that was killed, or added by hand): removed, so only the active director holds it; it comes back when this director becomes active")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(addr = %f.addr, error = %e, "cannot look at the host's addresses")
                }
            }
        }
        self.remove_all("this director starts as a backup").await;
        self.want = want;
        self.active = false;
    }

    /// How to announce.
    pub fn set_announce(&mut self, how: Announce) {
        self.announce = how;
    }

    /// Bring up what is wanted and take down what this director added and
    /// is no longer wanted.
    ///
    /// # Errors
    /// The first address that could not be brought up.
    pub async fn apply(&mut self, want: &[Floating]) -> Result<(), String> {
        let r = self.apply_inner(want).await;
        self.save_state();
        r
    }

    async fn apply_inner(&mut self, want: &[Floating]) -> Result<(), String> {
        self.want = want.to_vec();
        for a in self.mgr.added() {
            if !want.iter().any(|f| f.addr == a) {
                self.stop_announcing(&a);
                match self.mgr.remove(&a).await {
                    Ok(_) => {
                        tracing::info!(addr = %a, "address removed: no virtual server (nor `nat_router`) of the configuration uses it any more")
                    }
                    Err(e) => tracing::warn!(addr = %a, error = %e, "cannot remove address"),
                }
            }
        }
        for f in want {
            // All of 127/8 and ::1 are local already.
            if f.addr.is_loopback() {
                continue;
            }
            let fa = FloatingAddr {
                addr: f.addr,
                prefix: f.prefix,
                device: f.device.clone(),
                label: f.label.clone(),
            };
            match self.mgr.add(&fa).await {
                Ok(Added::AlreadyPresent) if self.inherited.contains(&f.addr) => {
                    // Ours from a run that did not get to remove it.
                    if let Ok(true) = self.mgr.adopt(&f.addr).await {
                        let dev = match &f.device {
                            Some(d) => d.clone(),
                            None => self.mgr.device_of(&f.addr).await.unwrap_or_default(),
                        };
                        tracing::info!(addr = %f.addr, %dev, what = %f.what, "address left by an earlier run of this director; taken back and announced");
                        self.devices.retain(|(a, _)| *a != f.addr);
                        self.devices.push((f.addr, dev.clone()));
                        self.start_announcing(dev, f.addr);
                    }
                    self.inherited.retain(|a| *a != f.addr);
                }
                Ok(Added::AlreadyPresent) => {
                    tracing::info!(addr = %f.addr, what = %f.what, "address already on this host and not added by this director (one of the host's own): used as it is; Fulcrum neither announces nor removes it")
                }
                Ok(Added::Added { ifindex }) => {
                    let dev = match &f.device {
                        Some(d) => d.clone(),
                        None => self.mgr.link_name(ifindex).await.unwrap_or_default(),
                    };
                    tracing::info!(addr = %f.addr, %dev, label = f.label.as_deref().unwrap_or(""), what = %f.what, "address added");
                    self.devices.retain(|(a, _)| *a != f.addr);
                    self.devices.push((f.addr, dev.clone()));
                    self.start_announcing(dev, f.addr);
                }
                Err(e) => {
                    let hint = if e.to_string().contains("ermission")
                        || e.to_string().contains("EPERM")
                        || e.to_string().contains("Operation not permitted")
                    {
                        " (run as root, or put the address on the interface yourself)"
                    } else {
                        ""
                    };
                    return Err(format!("{}: cannot add {}: {e}{hint}", f.what, f.addr));
                }
            }
        }
        Ok(())
    }

    /// Remove every address this director added, saying `why` in the log.
    pub async fn remove_all(&mut self, why: &str) {
        for (_, h) in self.announcing.drain() {
            h.abort();
        }
        for (a, r) in self.mgr.remove_all().await {
            match r {
                Ok(()) => tracing::info!(addr = %a, "address removed: {why}"),
                Err(e) => tracing::warn!(addr = %a, error = %e, "cannot remove address"),
            }
        }
        self.save_state();
    }

    /// Serve messages until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AddrMsg>) {
        while let Some(m) = rx.recv().await {
            match m {
                AddrMsg::Want(w, how) if !self.active => {
                    self.announce = how;
                    self.want = w;
                }
                AddrMsg::Want(w, how) => {
                    self.announce = how;
                    if let Err(e) = self.apply(&w).await {
                        tracing::error!(error = %e, "floating addresses not all up");
                    }
                }
                AddrMsg::Active(on, done) => {
                    self.active = on;
                    if on {
                        let want = std::mem::take(&mut self.want);
                        if let Err(e) = self.apply(&want).await {
                            tracing::error!(error = %e, "floating addresses not all up");
                        }
                    } else {
                        self.remove_all("this director is no longer the active one")
                            .await;
                    }
                    let _ = done.send(());
                }
                AddrMsg::Reannounce => {
                    let added = self.mgr.added();
                    for (a, dev) in self.devices.clone() {
                        if added.contains(&a) {
                            self.start_announcing(dev, a);
                        }
                    }
                }
                AddrMsg::RemoveAll(done) => {
                    self.remove_all("the director stops").await;
                    let _ = done.send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_a_second_apart_reach_neighbours_past_their_lock_time() {
        let s = |x| Duration::from_secs(x);
        let how = |repeat| Announce {
            repeat_after: repeat,
            ..Announce::default()
        };
        assert_eq!(burst_times(how(s(5))), vec![s(0), s(1), s(2), s(5)]);
        assert_eq!(burst_times(how(s(0))), vec![s(0), s(1), s(2)]);
        assert_eq!(burst_times(how(s(1))), vec![s(0), s(1), s(2)]);
    }
}

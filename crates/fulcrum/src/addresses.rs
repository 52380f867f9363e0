//! The floating addresses of the active director: brought up (unless the
//! host already has them), announced, kept in step with reloads, and
//! removed on exit — only those the director added.

use std::net::IpAddr;
use std::time::Duration;

use fulcrum_config::Floating;
use fulcrum_net::addr::{Added, AddressManager, FloatingAddr};
use fulcrum_net::announce;
use tokio::sync::{mpsc, oneshot};

/// Gratuitous ARPs / NAs sent when an address comes up, and their spacing.
const ANNOUNCE_COUNT: u32 = 3;
const ANNOUNCE_GAP: Duration = Duration::from_millis(200);

/// A message to the address task.
#[derive(Debug)]
pub enum AddrMsg {
    /// Make the floating addresses these.
    Want(Vec<Floating>),
    /// Remove what was added, then answer.
    RemoveAll(oneshot::Sender<()>),
}

fn announce_soon(dev: String, addr: IpAddr) {
    tokio::spawn(async move {
        for i in 0..ANNOUNCE_COUNT {
            let r = match addr {
                IpAddr::V4(a) => announce::gratuitous_arp(&dev, a),
                IpAddr::V6(a) => announce::unsolicited_na(&dev, a),
            };
            if let Err(e) = r {
                tracing::warn!(%addr, %dev, error = %e, "cannot announce the address");
                return;
            }
            if i + 1 < ANNOUNCE_COUNT {
                tokio::time::sleep(ANNOUNCE_GAP).await;
            }
        }
        tracing::info!(%addr, %dev, "announced");
    });
}

/// The address task's state.
#[derive(Debug)]
pub struct Addresses {
    mgr: AddressManager,
}

impl Addresses {
    /// Open the netlink connection.
    ///
    /// # Errors
    /// The netlink socket cannot be opened.
    pub fn new() -> Result<Addresses, String> {
        Ok(Addresses {
            mgr: AddressManager::new().map_err(|e| e.to_string())?,
        })
    }

    /// Bring up what is wanted and take down what this director added and
    /// is no longer wanted.
    ///
    /// # Errors
    /// The first address that could not be brought up.
    pub async fn apply(&mut self, want: &[Floating]) -> Result<(), String> {
        for a in self.mgr.added() {
            if !want.iter().any(|f| f.addr == a) {
                match self.mgr.remove(&a).await {
                    Ok(_) => tracing::info!(addr = %a, "address removed"),
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
                Ok(Added::AlreadyPresent) => {
                    tracing::info!(addr = %f.addr, what = %f.what, "address already present; left alone")
                }
                Ok(Added::Added { ifindex }) => {
                    let dev = match &f.device {
                        Some(d) => d.clone(),
                        None => self.mgr.link_name(ifindex).await.unwrap_or_default(),
                    };
                    tracing::info!(addr = %f.addr, %dev, label = f.label.as_deref().unwrap_or(""), what = %f.what, "address added");
                    announce_soon(dev, f.addr);
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

    /// Remove every address this director added.
    pub async fn remove_all(&mut self) {
        for (a, r) in self.mgr.remove_all().await {
            match r {
                Ok(()) => tracing::info!(addr = %a, "address removed"),
                Err(e) => tracing::warn!(addr = %a, error = %e, "cannot remove address"),
            }
        }
    }

    /// Serve messages until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AddrMsg>) {
        while let Some(m) = rx.recv().await {
            match m {
                AddrMsg::Want(w) => {
                    if let Err(e) = self.apply(&w).await {
                        tracing::error!(error = %e, "floating addresses not all up");
                    }
                }
                AddrMsg::RemoveAll(done) => {
                    self.remove_all().await;
                    let _ = done.send(());
                }
            }
        }
    }
}

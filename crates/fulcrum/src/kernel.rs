//! The kernel IPVS data plane (`dataplane = ipvs`) as the controller drives
//! it: after every change to the controller's table — start, reload, `fulcrum
//! adm`, a health decision — the kernel's table is brought to it by
//! difference (`fulcrum_ipvs::reconcile`): unchanged services and real
//! servers are never touched, so their connections carry on, and services
//! someone else installed are left alone. On exit Fulcrum removes what it
//! installed and nothing else.

use std::collections::HashSet;

use fulcrum_core::{DestSpec, ServiceKey, ServiceSpec, Table};
use fulcrum_ipvs::driver::Ipvs;
use fulcrum_ipvs::reconcile::{self, Entry};

/// The kernel's IPVS and the services Fulcrum installed there.
#[derive(Debug)]
pub struct KernelPlane {
    ipvs: Ipvs,
    owned: HashSet<ServiceKey>,
}

/// The table as the kernel takes it.
fn desired(table: &Table) -> Vec<Entry> {
    table
        .services()
        .iter()
        .map(|s| {
            let spec = ServiceSpec {
                key: s.key,
                scheduler: s.scheduler.kind(),
                flags: s.flags,
                persistent: s.persistent,
                netmask: s.netmask,
                one_packet: s.one_packet,
                pe_name: s.pe_name.clone(),
            };
            let dests = s
                .dests
                .iter()
                .map(|d| DestSpec {
                    addr: d.addr,
                    port: d.port,
                    fwd: d.fwd,
                    weight: d.weight,
                    u_threshold: d.u_threshold,
                    l_threshold: d.l_threshold,
                })
                .collect();
            (spec, dests)
        })
        .collect()
}

impl KernelPlane {
    /// Connect to the kernel's IPVS.
    ///
    /// # Errors
    /// A message saying why (no IPVS in this kernel, no privileges).
    pub fn open() -> Result<KernelPlane, String> {
        let mut ipvs = Ipvs::open().map_err(|e| e.to_string())?;
        let (version, size) = ipvs.info().map_err(|e| e.to_string())?;
        tracing::info!(
            version = format!(
                "{}.{}.{}",
                version >> 16,
                (version >> 8) & 0xff,
                version & 0xff
            ),
            conn_table = size,
            "kernel IPVS data plane"
        );
        Ok(KernelPlane {
            ipvs,
            owned: HashSet::new(),
        })
    }

    /// Bring the kernel's table to `table` by difference; the number of
    /// changes made.
    ///
    /// # Errors
    /// The change the kernel refused, and why; those before it are made.
    pub fn mirror(&mut self, table: &Table) -> Result<usize, String> {
        let want = desired(table);
        let kernel = reconcile::read(&mut self.ipvs).map_err(|e| e.to_string())?;
        let foreign: Vec<ServiceKey> = kernel
            .iter()
            .map(|e| e.0.key)
            .filter(|k| !self.owned.contains(k) && !want.iter().any(|w| w.0.key == *k))
            .collect();
        if !foreign.is_empty() {
            tracing::debug!(services = ?foreign, "kernel services not Fulcrum's: left alone");
        }
        let changes = reconcile::plan(&kernel, &want, &self.owned);
        let n = changes.len();
        let r = reconcile::apply(&mut self.ipvs, &changes);
        // What Fulcrum installed is now what it wants, whatever failed.
        self.owned = want.iter().map(|e| e.0.key).collect();
        r.map(|()| n)
            .map_err(|(c, e)| format!("kernel IPVS refused {c:?}: {e}"))
    }

    /// The timeouts (`--set`), 0 leaving one unchanged.
    ///
    /// # Errors
    /// The kernel refusing.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), String> {
        self.ipvs
            .set_timeouts(tcp, tcpfin, udp)
            .map_err(|e| e.to_string())
    }

    /// Remove the services Fulcrum installed, and nothing else.
    pub fn remove_all(&mut self) {
        for key in std::mem::take(&mut self.owned) {
            match self.ipvs.delete_service(&key) {
                Ok(()) => tracing::info!(service = %key, "removed from the kernel"),
                Err(e) => {
                    tracing::warn!(service = %key, error = %e, "cannot remove from the kernel")
                }
            }
        }
    }
}

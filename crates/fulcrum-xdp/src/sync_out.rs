//! Connection sync, the sending side: the program reports flows into the
//! ring buffer `sync_out` when IPVS's master would sync them (see the
//! program's `sync_report`); [`SyncReports`] reads them and [`SyncView`]
//! turns each into the IPVS sync entries a master sends — the connection,
//! and for a persistent service's flow its template, as IPVS sends a
//! connection's template with it.

use std::net::IpAddr;

use aya::maps::{MapData, RingBuf};
use fulcrum_core::state::ConnState;
use fulcrum_sync::{Conn, flags};

use crate::records::SyncReport;

/// IPVS's default `sync_threshold`: a connection is synced at its third
/// client packet ...
pub const SYNC_THRESHOLD: u32 = 3;
/// ... and every 50 packets after (`sync_period`).
pub const SYNC_PERIOD: u32 = 50;

/// The program's reports, as the ring buffer holds them (one reader).
pub struct SyncReports {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for SyncReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncReports")
    }
}

impl SyncReports {
    pub(crate) fn new(ring: RingBuf<MapData>) -> SyncReports {
        SyncReports { ring }
    }

    /// Wait at most `timeout` for a report to read (the kernel wakes the
    /// reader when the first one it has not seen arrives); whether one
    /// may be there.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        use std::os::fd::AsFd as _;
        let fd = self.ring.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let t = rustix::event::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        rustix::event::poll(&mut fds, Some(&t)).is_ok_and(|n| n > 0)
    }

    /// Take up to `max` reports into `out`; returns how many were taken
    /// (records that are no report are passed over).
    pub fn drain(&mut self, max: usize, out: &mut Vec<SyncReport>) -> usize {
        let mut n = 0;
        while n < max {
            let Some(item) = self.ring.next() else {
                break;
            };
            if let Some(r) = SyncReport::parse(&item) {
                out.push(r);
                n += 1;
            }
        }
        n
    }
}

/// A real server as a sync entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DestView {
    addr: IpAddr,
    /// 0: the packet's port (a port-zero service's).
    port: u16,
    /// `IP_VS_CONN_F_FWD_MASK` bits.
    fwd: u32,
}

/// A service as a sync entry needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SvcView {
    /// The service's port (0: all ports).
    port: u16,
    /// Persistence timeout in seconds (0: none) and netmask.
    persist: u32,
    netmask: fulcrum_core::Netmask,
}

/// The published table as the sender reads reports against it: real
/// servers by slot (retired ones too, while their flows last) and services
/// by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncView {
    /// By slot (dense: slots and indexes are small numbers handed out
    /// from 0).
    dests: Vec<Option<DestView>>,
    /// By service index.
    services: Vec<Option<SvcView>>,
}

/// `v[i] = Some(x)`, growing `v` as needed.
fn put<T>(v: &mut Vec<Option<T>>, i: u32, x: T) {
    let i = i as usize;
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    v[i] = Some(x);
}

/// IPVS's state number on the wire for a state the program keeps
/// (SCTP's kept in the TCP names: established 7, shutting down 8, closed
/// 12).
fn wire_state(proto: u8, state: u8) -> u16 {
    match proto {
        17 => 0,
        132 => match state {
            s if s == ConnState::Established as u8 => 7,
            s if s == ConnState::FinWait as u8 => 8,
            s if s == ConnState::Close as u8 || s == ConnState::TimeWait as u8 => 12,
            s if s == ConnState::SynRecv as u8 => 1,
            _ => 0,
        },
        _ => u16::from(state),
    }
}

impl SyncView {
    pub(crate) fn of(layout: &crate::publish::Layout) -> SyncView {
        let mut v = SyncView::default();
        for (slot, r) in &layout.records {
            put(
                &mut v.dests,
                *slot,
                DestView {
                    addr: r.addr,
                    port: r.port,
                    fwd: r.fwd.conn_flags(),
                },
            );
        }
        for (key, s) in &layout.services {
            put(
                &mut v.services,
                s.index,
                SvcView {
                    port: key.port(),
                    persist: s.persist.0,
                    netmask: s.persist.1,
                },
            );
        }
        v
    }

    /// The entries a report becomes, appended to `out`: the connection,
    /// then its persistence template where the service is persistent.
    /// Returns false (nothing appended) for a real server or service this
    /// view does not know (removed since the report was made).
    pub fn entries(&self, r: &SyncReport, out: &mut Vec<Conn>) -> bool {
        let (Some(Some(d)), Some(Some(s))) = (
            self.dests.get(r.dest as usize),
            self.services.get(r.svc as usize),
        ) else {
            return false;
        };
        if r.client.0.is_ipv4() != d.addr.is_ipv4() {
            return false;
        }
        let dport = if d.port == 0 { r.virt.1 } else { d.port };
        out.push(Conn {
            protocol: r.proto,
            flags: d.fwd | if r.inactive { flags::INACTIVE } else { 0 },
            state: wire_state(r.proto, r.state),
            client: r.client,
            virt: r.virt,
            dest: (d.addr, dport),
            fwmark: 0,
            timeout: Some(r.timeout),
            seq: None,
            pe: None,
        });
        if s.persist > 0 {
            // The template: the client network, port 0; the virtual port
            // (0 for a port-zero service or FTP), as the program keys it.
            let vport = if r.virt.1 == s.port && s.port != 21 {
                r.virt.1
            } else {
                0
            };
            out.push(Conn {
                protocol: r.proto,
                flags: flags::TEMPLATE | flags::INACTIVE | d.fwd,
                state: 0,
                client: (s.netmask.apply(&r.client.0), 0),
                virt: (r.virt.0, vport),
                dest: (d.addr, if vport == 0 { 0 } else { dport }),
                fwmark: 0,
                timeout: Some(s.persist),
                seq: None,
                pe: None,
            });
        }
        true
    }
}

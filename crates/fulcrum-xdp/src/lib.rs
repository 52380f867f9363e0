//! Fulcrum's XDP data plane: the BPF program (C in `bpf/`, compiled by
//! clang when the crate is built) and its loader, on aya.
//!
//! The program is an LVS director: it parses each frame (Ethernet, one VLAN
//! tag, IPv4 with options, IPv6, TCP/UDP/SCTP ports), forwards the packets
//! of known flows, schedules new connections to virtual services with the
//! service's IPVS scheduler over the real servers the controller published
//! (the connection counts live in the program), and forwards by NAT or
//! direct routing. Everything else goes on to the kernel, counted by why.
//!
//! [`XdpPlane`] loads it, publishes a [`fulcrum_core::Table`] into its maps
//! by difference ([`XdpPlane::publish`]), sets the timeouts, sweeps expired
//! flows, reads the counters and the flows, and attaches to interfaces.
//!
//! Without clang (and libbpf's headers) at build time the crate still
//! builds: [`program`] then says what to install.

pub mod decap;
mod publish;
pub mod records;
mod sync_out;

pub use sync_out::{SYNC_PERIOD, SYNC_THRESHOLD, SyncReports, SyncView};

pub use publish::{refuses_dest, refuses_service};

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use fulcrum_core::state::{ConnState, Direction, TcpFlags, Timeouts, tcp_transition};
use fulcrum_core::{Protocol, ServiceKey, Table};

use crate::publish::{Layout, SchedChange, Write, adjust_wrr};
use crate::records::{
    BUCKET4_LEN, BUCKET6_LEN, DEST_LEN, DestConns, FlowRecord, SCHED_LEN, SVC_LEN, SYNC_MAX,
    SYNC_REC_LEN, SchedState, TMPL_KEY_LEN, TemplateRecord,
};

/// `struct neigh_key`: an address (16 bytes), the interface's index, the
/// family.
const NEIGH_KEY_LEN: usize = 24;

/// The compiled BPF object (empty when clang was missing at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fulcrum.bpf.o"));

pub use records::{MAX_DESTS, MAX_SERVICES, MAX_SVC_DESTS};

/// The name of the XDP program in the object.
const PROGRAM: &str = "fulcrum_xdp";

/// The sweeper, run by the controller once a second.
const SWEEPER: &str = "fulcrum_sweep";

/// The installer of synced flows, run by the controller.
const INSTALLER: &str = "fulcrum_install";

/// A connection another director synced (its sync message, in this
/// director's terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFlow {
    /// The service's protocol, virtual address and port (a port-zero
    /// persistent service's connections carry their own port: the service
    /// of port 0 takes them).
    pub proto: Protocol,
    /// The virtual address and port.
    pub virt: (std::net::IpAddr, u16),
    /// The client's address and port; for a template, the client network
    /// and 0.
    pub client: (std::net::IpAddr, u16),
    /// The real server's address and port.
    pub dest: (std::net::IpAddr, u16),
    /// The connection's state (templates: `None`).
    pub state: ConnState,
    /// A persistence template.
    pub template: bool,
    /// Seconds left.
    pub timeout: u32,
}

/// What an install did (summed with `+=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Installed {
    /// New flows.
    pub added: u64,
    /// Flows that were here, brought to the message.
    pub updated: u64,
    /// Templates created or refreshed.
    pub templates: u64,
    /// Entries of a service or real server this director does not have.
    pub unknown: u64,
}

impl std::ops::AddAssign for Installed {
    fn add_assign(&mut self, o: Installed) {
        self.added += o.added;
        self.updated += o.updated;
        self.templates += o.templates;
        self.unknown += o.unknown;
    }
}

/// IPv4 flows the table holds by default (IPv6: a quarter as many). A new
/// flow whose bucket of four is full takes the place of the one that
/// expires first.
pub const DEFAULT_FLOWS: u32 = 1 << 20;

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_TX`: back out of the interface it came in on.
pub const XDP_TX: u32 = 3;
/// `XDP_REDIRECT`: out of another interface.
pub const XDP_REDIRECT: u32 = 4;

/// `XDP_PASS`: the frame goes on to the kernel.
pub const XDP_PASS: u32 = 2;

/// How the program runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic path (slower): the driver refused native.
    Generic,
}

/// The kernel's clock the program reads (CLOCK_MONOTONIC_COARSE), in ns;
/// the program adds the `clock` map's offset (tests move time with it).
pub fn kernel_clock_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// This build has no BPF program.
    #[error(
        "this Fulcrum was built without its XDP program ({0}); install clang and libbpf-dev and rebuild"
    )]
    NotBuilt(&'static str),
    /// The kernel refused the program or a map.
    #[error("{what}: {why}")]
    Kernel {
        /// What was being done.
        what: &'static str,
        /// The error.
        why: String,
    },
    /// Not an interface name.
    #[error("`{0}` is not an interface name (at most 15 characters, no `/`, space or NUL)")]
    BadInterface(String),
    /// Services the plane does not forward, each with why.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
}

fn kernel(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> XdpError {
    move |e| XdpError::Kernel {
        what,
        why: e.to_string(),
    }
}

/// The object's XDP program `name`, for `what`.
fn xdp_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
    what: &'static str,
) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or_else(|| missing(what, name))?
        .try_into()
        .map_err(|e: ProgramError| kernel(what)(&e))
}

/// The object's XDP program `name`, read-only, for `what`.
fn xdp<'a>(ebpf: &'a Ebpf, name: &str, what: &'static str) -> Result<&'a Xdp, XdpError> {
    ebpf.program(name)
        .ok_or_else(|| missing(what, name))?
        .try_into()
        .map_err(|e: ProgramError| kernel(what)(&e))
}

/// The object's controller program `name` (of the tc type), for `what`.
fn tc<'a>(ebpf: &'a Ebpf, name: &str, what: &'static str) -> Result<&'a SchedClassifier, XdpError> {
    ebpf.program(name)
        .ok_or_else(|| missing(what, name))?
        .try_into()
        .map_err(|e: ProgramError| kernel(what)(&e))
}

/// The object's map `name`, writable, for `what`.
fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
    what: &'static str,
) -> Result<&'a mut aya::maps::Map, XdpError> {
    ebpf.map_mut(name).ok_or_else(|| missing(what, name))
}

/// The object's map `name`, for `what`.
fn map<'a>(ebpf: &'a Ebpf, name: &str, what: &'static str) -> Result<&'a aya::maps::Map, XdpError> {
    ebpf.map(name).ok_or_else(|| missing(what, name))
}

fn missing(what: &'static str, name: &str) -> XdpError {
    XdpError::Kernel {
        what,
        why: format!("no `{name}` in the object"),
    }
}

/// The compiled BPF object.
///
/// # Errors
/// [`XdpError::NotBuilt`] when clang was missing at build time, saying why.
pub fn program() -> Result<&'static [u8], XdpError> {
    if OBJECT.is_empty() {
        Err(XdpError::NotBuilt(env!("FULCRUM_XDP_MISSING")))
    } else {
        Ok(OBJECT)
    }
}

/// Why a packet was not forwarded by the program (the `exceptions`
/// counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exception {
    /// Not IPv4 or IPv6 (ARP, LLDP, …).
    NotIp,
    /// Shorter than its headers say, or a bad header length.
    Malformed,
    /// An IPv4 fragment: no ports to classify by.
    Fragment,
    /// IPv6 with extension headers.
    Ipv6Extension,
    /// Not TCP, UDP or SCTP.
    OtherProtocol,
    /// TCP, UDP or SCTP to no virtual service.
    NoService,
    /// TCP without SYN (or with RST) and no flow: not a new connection.
    NotSyn,
    /// The scheduler found no real server available.
    NoDestination,
    /// Rewritten, but the kernel routes it (no neighbour entry yet).
    ToKernel,
    /// TTL or hop limit ran out: the kernel answers.
    Ttl,
    /// A forwarding the program leaves to the kernel.
    Unsupported,
    /// A packet the kernel cannot forward in the program's stead (direct
    /// routing, tunnelling, a NAT reply) before its next hop was resolved:
    /// dropped (the director has the kernel resolve it).
    NoNeighbour,
    /// Too big for the tunnel: answered "fragmentation needed" (IPv4)
    /// or dropped.
    TooBig,
    /// An ICMP error of a flow, sent on to its real server or client.
    IcmpForwarded,
}

impl Exception {
    /// Every kind, in the map's order.
    pub const ALL: [Exception; 14] = [
        Exception::NotIp,
        Exception::Malformed,
        Exception::Fragment,
        Exception::Ipv6Extension,
        Exception::OtherProtocol,
        Exception::NoService,
        Exception::NotSyn,
        Exception::NoDestination,
        Exception::ToKernel,
        Exception::Ttl,
        Exception::Unsupported,
        Exception::NoNeighbour,
        Exception::TooBig,
        Exception::IcmpForwarded,
    ];

    /// For people.
    pub fn name(self) -> &'static str {
        match self {
            Exception::NotIp => "not IP",
            Exception::Malformed => "malformed",
            Exception::Fragment => "IPv4 fragment",
            Exception::Ipv6Extension => "IPv6 extension header",
            Exception::OtherProtocol => "not TCP, UDP or SCTP",
            Exception::NoService => "no virtual service",
            Exception::NotSyn => "TCP segment of no flow, not a SYN",
            Exception::NoDestination => "no real server available",
            Exception::ToKernel => "routed by the kernel (no neighbour yet)",
            Exception::Ttl => "TTL ran out",
            Exception::Unsupported => "forwarding left to the kernel",
            Exception::NoNeighbour => "next hop not resolved yet (dropped; resolving)",
            Exception::TooBig => "too big for the tunnel (answered or dropped)",
            Exception::IcmpForwarded => "ICMP error of a flow, sent on",
        }
    }
}

/// The `services` key of a virtual service: family, protocol, port
/// (network order) and address, 20 bytes as `struct svc_key`. `None` for a
/// fwmark service: XDP runs before anything marks a packet.
pub fn service_key(key: &ServiceKey) -> Option<[u8; 20]> {
    let ServiceKey::Addr { proto, addr, port } = *key else {
        return None;
    };
    let mut k = [0u8; 20];
    k[1] = match proto {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    };
    k[2..4].copy_from_slice(&port.to_be_bytes());
    match addr {
        std::net::IpAddr::V4(a) => {
            k[0] = 4;
            k[4..8].copy_from_slice(&a.octets());
        }
        std::net::IpAddr::V6(a) => {
            k[0] = 6;
            k[4..20].copy_from_slice(&a.octets());
        }
    }
    Some(k)
}

/// The address this host sends from towards `to` (the kernel's choice,
/// from its routing table): a tunnel's outer source. `None` without a
/// route.
pub fn source_towards(to: &std::net::IpAddr) -> Option<std::net::IpAddr> {
    let any: std::net::SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect((*to, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// Traffic counters of a service or a real server, summed over the CPUs
/// (fulcrum-core's, which the listings render).
pub use fulcrum_core::estimator::Counters;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Flows looked at.
    pub seen: u64,
    /// Flows whose timer had run out, removed.
    pub expired: u64,
}

/// The program, loaded into the kernel with its maps, and the table as
/// last published into them.
#[derive(Debug)]
pub struct XdpPlane {
    ebpf: Ebpf,
    layout: Layout,
}

impl XdpPlane {
    /// Load the program and its maps into the kernel, with room for
    /// `flows` IPv4 flows and a quarter as many IPv6 ones (rounded up to
    /// powers of two; one entry a flow, NAT ones too).
    ///
    /// # Errors
    /// No program in this build, or the kernel refusing it (no BPF, no
    /// privilege: it needs root or CAP_BPF with CAP_NET_ADMIN).
    pub fn load(flows: u32) -> Result<XdpPlane, XdpError> {
        let flows = flows.max(1024);
        // Four slots a bucket.
        let buckets = (
            (flows / 4).next_power_of_two().max(256),
            (flows / 16).next_power_of_two().max(256),
        );
        let (mask4, mask6) = (buckets.0 - 1, buckets.1 - 1);
        // The flow hash's key, so that nobody can aim flows at one bucket.
        let mut seed = [0u8; 8];
        rustix::rand::getrandom(&mut seed, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| kernel("drawing the flow table's key")(&e))?;
        let seed = u64::from_ne_bytes(seed);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("ftab4", buckets.0)
            .map_max_entries("ftab6", buckets.1)
            .override_global("ftab4_mask", &mask4, true)
            .override_global("ftab6_mask", &mask6, true)
            .override_global("ftab_seed", &seed, true)
            .map_max_entries("templates", (flows / 8).max(1024))
            .load(program()?)
            .map_err(|e| kernel("loading the XDP object")(&e))?;
        xdp_mut(&mut ebpf, PROGRAM, "loading the XDP program")?
            .load()
            .map_err(|e| kernel("loading the XDP program")(&e))?;
        for name in [SWEEPER, INSTALLER] {
            let p: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| missing("loading the XDP program", name))?
                .try_into()
                .map_err(|e: ProgramError| kernel("loading the XDP program")(&e))?;
            p.load()
                .map_err(|e| kernel("loading the XDP program")(&e))?;
        }
        let mut plane = XdpPlane {
            ebpf,
            layout: Layout::new(),
        };
        plane.set_tcp_table()?;
        plane.set_timeouts(&Timeouts::default())?;
        Ok(plane)
    }

    fn array<const N: usize>(
        &mut self,
        name: &str,
        what: &'static str,
    ) -> Result<Array<&mut MapData, [u8; N]>, XdpError> {
        Array::try_from(map_mut(&mut self.ebpf, name, what)?).map_err(|e| kernel(what)(&e))
    }

    /// IPVS's TCP state table, from fulcrum-core, as the program indexes
    /// it: `[direction * 4 + flag][state]`.
    fn set_tcp_table(&mut self) -> Result<(), XdpError> {
        let flags = [
            TcpFlags::SYN,
            TcpFlags {
                fin: true,
                ..TcpFlags::default()
            },
            TcpFlags::ACK,
            TcpFlags::RST,
        ];
        let mut table = [0u8; 256];
        for (d, dir) in [Direction::Input, Direction::Output, Direction::InputOnly]
            .into_iter()
            .enumerate()
        {
            for (f, flag) in flags.iter().enumerate() {
                for s in 0..11u8 {
                    let cur = ConnState::from_tcp_index(s).unwrap_or(ConnState::None);
                    table[(d * 4 + f) * 11 + usize::from(s)] =
                        tcp_transition(cur, dir, *flag) as u8;
                }
            }
        }
        self.array::<256>("tcp_table", "the TCP state table")?
            .set(0, table, 0)
            .map_err(|e| kernel("the TCP state table")(&e))
    }

    /// The timeouts of every state (`ipvsadm --set`, and the defaults).
    ///
    /// # Errors
    /// The kernel refusing the write.
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), XdpError> {
        let mut secs = [0u8; 64];
        for s in 0..12u8 {
            let state = if s == ConnState::Udp as u8 {
                ConnState::Udp
            } else {
                ConnState::from_tcp_index(s).unwrap_or(ConnState::None)
            };
            let v = t.of(state).as_secs().min(u64::from(u32::MAX)) as u32;
            secs[usize::from(s) * 4..usize::from(s) * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        self.array::<64>("timeouts", "the timeouts")?
            .set(0, secs, 0)
            .map_err(|e| kernel("the timeouts")(&e))
    }

    /// Move the program's clock by `offset_ns` past the kernel's monotonic
    /// clock (tests make time pass with it).
    ///
    /// # Errors
    /// The kernel refusing the write.
    pub fn set_clock_offset(&mut self, offset_ns: u64) -> Result<(), XdpError> {
        self.array::<8>("clock", "the clock")?
            .set(0, offset_ns.to_ne_bytes(), 0)
            .map_err(|e| kernel("the clock")(&e))
    }

    /// Make the maps say what `table` says, changing only what differs:
    /// existing flows keep their real servers (a deleted real server's
    /// flows go on until they end). Services the plane cannot forward are
    /// left out, and named in the error; the rest is published.
    ///
    /// # Errors
    /// [`XdpError::Refused`] naming what was left out and why, or the
    /// kernel refusing a write.
    pub fn publish(&mut self, table: &Table) -> Result<(), XdpError> {
        let (writes, refused) = self.layout.plan(table, &source_towards);
        for w in writes {
            self.write(w)?;
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(XdpError::Refused(refused))
        }
    }

    fn write(&mut self, w: Write) -> Result<(), XdpError> {
        match w {
            Write::Dest {
                slot,
                record,
                fresh,
            } => {
                if fresh {
                    self.array::<16>("dest_conns", "the connection counts")?
                        .set(slot, [0u8; 16], 0)
                        .map_err(|e| kernel("the connection counts")(&e))?;
                    let ncpus =
                        aya::util::nr_cpus().map_err(|(_, e)| kernel("counting the CPUs")(&e))?;
                    let mut stats: PerCpuArray<&mut MapData, [u64; 5]> = PerCpuArray::try_from(
                        map_mut(&mut self.ebpf, "dest_stats", "the counters")?,
                    )
                    .map_err(|e| kernel("the counters")(&e))?;
                    let zero = aya::maps::PerCpuValues::try_from(vec![[0u64; 5]; ncpus])
                        .map_err(|e| kernel("the counters")(&e))?;
                    stats
                        .set(slot, zero, 0)
                        .map_err(|e| kernel("the counters")(&e))?;
                    // A next hop cached for the slot's last owner goes.
                    let mut nh: PerCpuArray<&mut MapData, [u8; 32]> = PerCpuArray::try_from(
                        map_mut(&mut self.ebpf, "dest_nh", "the next-hop cache")?,
                    )
                    .map_err(|e| kernel("the next-hop cache")(&e))?;
                    let zero = aya::maps::PerCpuValues::try_from(vec![[0u8; 32]; ncpus])
                        .map_err(|e| kernel("the next-hop cache")(&e))?;
                    nh.set(slot, zero, 0)
                        .map_err(|e| kernel("the next-hop cache")(&e))?;
                }
                self.array::<DEST_LEN>("dests", "the real servers")?
                    .set(slot, record.bytes(), 0)
                    .map_err(|e| kernel("the real servers")(&e))
            }
            Write::ClearLocality { index } => {
                let mut map: HashMap<&mut MapData, [u8; 20], [u8; 88]> =
                    HashMap::try_from(map_mut(&mut self.ebpf, "locality", "the lblc cache")?)
                        .map_err(|e| kernel("the lblc cache")(&e))?;
                let mine: Vec<[u8; 20]> = map
                    .keys()
                    .filter_map(Result::ok)
                    .filter(|k| u32::from_ne_bytes([k[16], k[17], k[18], k[19]]) == index)
                    .collect();
                for k in mine {
                    let _ = map.remove(&k);
                }
                Ok(())
            }
            Write::Svc { index, record } => {
                let mut b = [0u8; SVC_LEN];
                b.copy_from_slice(&record);
                self.array::<SVC_LEN>("svc_conf", "the services")?
                    .set(index, b, 0)
                    .map_err(|e| kernel("the services")(&e))
            }
            Write::Sched { index, change } => {
                let mut arr = self.array::<SCHED_LEN>("svc_sched", "the scheduler state")?;
                let state = match change {
                    SchedChange::Reset(mut s, steps) => {
                        for (mw, di) in steps {
                            adjust_wrr(&mut s, mw, di);
                        }
                        s
                    }
                    SchedChange::Adjust { steps, rr_last } => {
                        let cur = arr
                            .get(&index, 0)
                            .map_err(|e| kernel("the scheduler state")(&e))?;
                        let mut s = SchedState::from_bytes(&cur);
                        for (mw, di) in steps {
                            adjust_wrr(&mut s, mw, di);
                        }
                        if let Some((was, now)) = rr_last
                            && s.rr_last == was
                        {
                            s.rr_last = now;
                        }
                        s
                    }
                };
                arr.set(index, state.bytes(), 0)
                    .map_err(|e| kernel("the scheduler state")(&e))
            }
            Write::Bucket {
                index,
                bucket,
                dest,
            } => {
                let mut map: HashMap<&mut MapData, u32, u32> =
                    HashMap::try_from(map_mut(&mut self.ebpf, "lookup", "the hash tables")?)
                        .map_err(|e| kernel("the hash tables")(&e))?;
                let k = (index << 20) | (bucket & 0xfffff);
                match dest {
                    Some(d) => map
                        .insert(k, d, 0)
                        .map_err(|e| kernel("the hash tables")(&e)),
                    None => {
                        let _ = map.remove(&k);
                        Ok(())
                    }
                }
            }
            Write::Key { key, index } => {
                let Some(k) = service_key(&key) else {
                    return Ok(());
                };
                let mut map = self.services()?;
                match index {
                    Some(i) => map
                        .insert(k, i, 0)
                        .map_err(|e| kernel("adding a service")(&e)),
                    None => {
                        let _ = map.remove(&k);
                        Ok(())
                    }
                }
            }
        }
    }

    fn services(&mut self) -> Result<HashMap<&mut MapData, [u8; 20], u32>, XdpError> {
        HashMap::try_from(map_mut(&mut self.ebpf, "services", "the services map")?)
            .map_err(|e| kernel("the services map")(&e))
    }

    /// Install connections another director synced: each bound to this
    /// director's service and real server of the same addresses, with the
    /// message's state and timeout. Entries of a service or real server not
    /// published here are counted (`unknown`) and dropped.
    ///
    /// # Errors
    /// The kernel refusing a write or the run.
    pub fn install(&mut self, flows: &[SyncedFlow]) -> Result<Installed, XdpError> {
        let mut done = Installed::default();
        let mut recs: Vec<[u8; SYNC_REC_LEN]> = Vec::new();
        for f in flows {
            match self.sync_record(f) {
                Some(r) => recs.push(r),
                None => done.unknown += 1,
            }
        }
        for chunk in recs.chunks(SYNC_MAX) {
            {
                let mut arr: Array<&mut MapData, [u8; SYNC_REC_LEN]> =
                    self.array("sync_in", "the synced flows")?;
                for (i, r) in chunk.iter().enumerate() {
                    arr.set(i as u32, r, 0)
                        .map_err(|e| kernel("writing the synced flows")(&e))?;
                }
            }
            let prog = tc(&self.ebpf, INSTALLER, "installing the synced flows")?;
            let mut frame = [0u8; 64];
            frame[..4].copy_from_slice(&(chunk.len() as u32).to_ne_bytes());
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&frame);
            prog.test_run(opts)
                .map_err(|e| kernel("installing the synced flows")(&e))?;
            let result: Array<&MapData, u64> =
                Array::try_from(map(&self.ebpf, "sync_result", "the install's result")?)
                    .map_err(|e| kernel("the install's result")(&e))?;
            let get = |i| result.get(&i, 0).unwrap_or(0);
            done.added += get(0);
            done.updated += get(1);
            done.templates += get(2);
        }
        Ok(done)
    }

    /// Report flows for connection sync (`on`: this director sends), at
    /// IPVS's default threshold and period ([`SYNC_THRESHOLD`],
    /// [`SYNC_PERIOD`]).
    ///
    /// # Errors
    /// The kernel refusing the write.
    pub fn set_sync_sending(&mut self, on: bool) -> Result<(), XdpError> {
        let mut conf = [0u8; 16];
        conf[..4].copy_from_slice(&u32::from(on).to_ne_bytes());
        conf[4..8].copy_from_slice(&SYNC_THRESHOLD.to_ne_bytes());
        conf[8..12].copy_from_slice(&SYNC_PERIOD.to_ne_bytes());
        self.array::<16>("sync_conf", "the sync settings")?
            .set(0, conf, 0)
            .map_err(|e| kernel("the sync settings")(&e))
    }

    /// The ring buffer of the program's sync reports, to read from another
    /// thread. There is one: a second call is refused.
    ///
    /// # Errors
    /// Already taken, or the kernel refusing the map.
    pub fn take_sync_reports(&mut self) -> Result<SyncReports, XdpError> {
        let map = self
            .ebpf
            .take_map("sync_out")
            .ok_or_else(|| XdpError::Kernel {
                what: "the sync reports",
                why: "already taken (one reader)".into(),
            })?;
        let ring = aya::maps::RingBuf::try_from(map).map_err(|e| kernel("the sync reports")(&e))?;
        Ok(SyncReports::new(ring))
    }

    /// The published table as a sender reads the program's reports.
    pub fn sync_view(&self) -> SyncView {
        SyncView::of(&self.layout)
    }

    /// Sync reports made and lost to a full ring, summed over the CPUs.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn sync_report_counts(&self) -> Result<(u64, u64), XdpError> {
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map(&self.ebpf, "sync_stats", "the sync counters")?)
                .map_err(|e| kernel("the sync counters")(&e))?;
        let sum = |i: u32| -> Result<u64, XdpError> {
            Ok(arr
                .get(&i, 0)
                .map_err(|e| kernel("the sync counters")(&e))?
                .iter()
                .sum())
        };
        Ok((sum(0)?, sum(1)?))
    }

    /// `struct sync_rec` for a synced flow, or `None` when this director
    /// has no such service or real server.
    fn sync_record(&self, f: &SyncedFlow) -> Option<[u8; SYNC_REC_LEN]> {
        let key = |port| ServiceKey::Addr {
            proto: f.proto,
            addr: f.virt.0,
            port,
        };
        let svc = self
            .layout
            .services
            .get(&key(f.virt.1))
            .or_else(|| self.layout.services.get(&key(0)))?;
        let slot = svc.dests.iter().map(|(_, slot)| *slot).find(|slot| {
            self.layout
                .records
                .get(slot)
                .is_some_and(|r| r.addr == f.dest.0 && (r.port == f.dest.1 || r.port == 0))
        })?;
        Some(records::sync_rec(f, slot, svc.index))
    }

    /// Remove the flows whose timers ran out,
    /// taking them off their real servers' counts. Retired real servers
    /// whose last flow is gone free their slots.
    ///
    /// # Errors
    /// The kernel refusing the run or a read.
    pub fn sweep(&mut self) -> Result<Sweep, XdpError> {
        let prog = tc(&self.ebpf, SWEEPER, "sweeping the flows")?;
        let frame = [0u8; 64];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&frame);
        prog.test_run(opts)
            .map_err(|e| kernel("sweeping the flows")(&e))?;
        let result: Array<&MapData, u64> =
            Array::try_from(map(&self.ebpf, "sweep_result", "the sweep's result")?)
                .map_err(|e| kernel("the sweep's result")(&e))?;
        let get = |i| result.get(&i, 0).unwrap_or(0);
        let sweep = Sweep {
            seen: get(0),
            expired: get(1),
        };
        for slot in self.layout.retired.clone() {
            let c = self.dest_conns_of_slot(slot)?;
            if c.active == 0 && c.inactive == 0 && c.persist == 0 {
                self.layout.release(slot);
            }
        }
        Ok(sweep)
    }

    fn dest_conns_of_slot(&self, slot: u32) -> Result<DestConns, XdpError> {
        let arr: Array<&MapData, [u32; 4]> =
            Array::try_from(map(&self.ebpf, "dest_conns", "the connection counts")?)
                .map_err(|e| kernel("the connection counts")(&e))?;
        arr.get(&slot, 0)
            .map(DestConns::from_words)
            .map_err(|e| kernel("the connection counts")(&e))
    }

    fn slot(&self, key: &ServiceKey, id: fulcrum_core::DestId) -> Option<u32> {
        self.layout.slots.get(&(*key, id)).copied()
    }

    /// The next hops the program met without a neighbour (MAC address)
    /// since the last call, each with its interface's index, taken off the
    /// program's list: the caller has the kernel resolve them (a
    /// neighbour request with `NTF_USE`), and the program forwards to them
    /// from then on.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn take_unresolved(&mut self) -> Result<Vec<(u32, std::net::IpAddr)>, XdpError> {
        let mut m: HashMap<&mut MapData, [u8; NEIGH_KEY_LEN], u64> = HashMap::try_from(map_mut(
            &mut self.ebpf,
            "need_neigh",
            "the unresolved next hops",
        )?)
        .map_err(|e| kernel("the unresolved next hops")(&e))?;
        let keys: Vec<[u8; NEIGH_KEY_LEN]> = m.keys().filter_map(Result::ok).collect();
        let mut out = Vec::new();
        for k in keys {
            let _ = m.remove(&k);
            let ifindex = u32::from_ne_bytes([k[16], k[17], k[18], k[19]]);
            if let Some(addr) = records::addr_of(&k[..16], k[20]) {
                out.push((ifindex, addr));
            }
        }
        Ok(out)
    }

    /// A real server's connection counts, as the program keeps them;
    /// `None` when the plane does not hold it.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn dest_conns(
        &self,
        key: &ServiceKey,
        id: fulcrum_core::DestId,
    ) -> Result<Option<DestConns>, XdpError> {
        match self.slot(key, id) {
            Some(s) => self.dest_conns_of_slot(s).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a real server is overloaded (its upper threshold reached).
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn overloaded(&self, key: &ServiceKey, id: fulcrum_core::DestId) -> Result<bool, XdpError> {
        let Some(slot) = self.slot(key, id) else {
            return Ok(false);
        };
        let c = self.dest_conns_of_slot(slot)?;
        let epoch = self.layout.records.get(&slot).map_or(0, |r| r.epoch);
        Ok(c.overload == epoch + 1)
    }

    fn counters(&self, name: &str, index: u32) -> Result<Counters, XdpError> {
        let arr: PerCpuArray<&MapData, [u64; 5]> =
            PerCpuArray::try_from(map(&self.ebpf, name, "the counters")?)
                .map_err(|e| kernel("the counters")(&e))?;
        let per_cpu = arr
            .get(&index, 0)
            .map_err(|e| kernel("reading counters")(&e))?;
        Ok(per_cpu.iter().fold(Counters::default(), |a, c| Counters {
            conns: a.conns + c[0],
            inpkts: a.inpkts + c[1],
            outpkts: a.outpkts + c[2],
            inbytes: a.inbytes + c[3],
            outbytes: a.outbytes + c[4],
        }))
    }

    /// A service's counters, summed over the CPUs; `None` when the plane
    /// does not forward it.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn service_counters(&self, key: &ServiceKey) -> Result<Option<Counters>, XdpError> {
        match self.layout.services.get(key) {
            Some(s) => self.counters("svc_stats", s.index).map(Some),
            None => Ok(None),
        }
    }

    /// A real server's counters, summed over the CPUs.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn dest_counters(
        &self,
        key: &ServiceKey,
        id: fulcrum_core::DestId,
    ) -> Result<Option<Counters>, XdpError> {
        match self.slot(key, id) {
            Some(s) => self.counters("dest_stats", s).map(Some),
            None => Ok(None),
        }
    }

    /// Bring the table's counts and counters (every published service and
    /// real server) to what the program counted.
    ///
    /// # Errors
    /// The kernel refusing a read.
    pub fn observe(&self, table: &mut Table) -> Result<(), XdpError> {
        for (key, svc) in &self.layout.services {
            let c = self.counters("svc_stats", svc.index)?;
            let mut dests = Vec::with_capacity(svc.dests.len());
            for (id, slot) in &svc.dests {
                let n = self.dest_conns_of_slot(*slot)?;
                let epoch = self.layout.records.get(slot).map_or(0, |r| r.epoch);
                let d = self.counters("dest_stats", *slot)?;
                dests.push((
                    *id,
                    fulcrum_core::Observed {
                        activeconns: n.active,
                        inactconns: n.inactive,
                        persistconns: n.persist,
                        overload: n.overload == epoch + 1,
                        counters: d,
                    },
                ));
            }
            table.observe(key, c, dests);
        }
        Ok(())
    }

    /// `ipvsadm -Z`: the counters of one service (and its real servers),
    /// or of all, back to zero.
    ///
    /// # Errors
    /// The kernel refusing a write.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), XdpError> {
        let mut svcs = Vec::new();
        let mut slots = Vec::new();
        for (k, s) in &self.layout.services {
            if key.is_none_or(|want| want == k) {
                svcs.push(s.index);
                slots.extend(s.dests.iter().map(|(_, slot)| *slot));
            }
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| kernel("counting the CPUs")(&e))?;
        for (name, list) in [("svc_stats", svcs), ("dest_stats", slots)] {
            let mut arr: PerCpuArray<&mut MapData, [u64; 5]> =
                PerCpuArray::try_from(map_mut(&mut self.ebpf, name, "the counters")?)
                    .map_err(|e| kernel("the counters")(&e))?;
            for i in list {
                let zero = aya::maps::PerCpuValues::try_from(vec![[0u64; 5]; ncpus])
                    .map_err(|e| kernel("the counters")(&e))?;
                arr.set(i, zero, 0)
                    .map_err(|e| kernel("zeroing the counters")(&e))?;
            }
        }
        Ok(())
    }

    /// The flows as `ipvsadm -L -c` lists them: client, virtual and real
    /// server, state and seconds left; expired flows the sweeper has not
    /// reached yet are left out.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn connections(&self) -> Result<Vec<fulcrum_core::conn::ConnEntry>, XdpError> {
        let offset: u64 = Array::<&MapData, u64>::try_from(map(&self.ebpf, "clock", "the clock")?)
            .map_err(|e| kernel("the clock")(&e))?
            .get(&0, 0)
            .unwrap_or(0);
        let now = kernel_clock_ns() + offset;
        let mut out = Vec::new();
        for f in self.flows()? {
            if f.expires_ns <= now {
                continue;
            }
            let Some(d) = self.layout.records.get(&f.dest) else {
                continue;
            };
            let state = if f.state == ConnState::Udp as u8 {
                ConnState::Udp
            } else {
                ConnState::from_tcp_index(f.state).unwrap_or(ConnState::None)
            };
            out.push(fulcrum_core::conn::ConnEntry {
                proto: match f.proto {
                    6 => "TCP",
                    17 => "UDP",
                    _ => "SCTP",
                }
                .to_string(),
                caddr: f.client.0,
                cport: f.client.1,
                vaddr: f.virt.0,
                vport: f.virt.1,
                daddr: d.addr,
                dport: if d.port == 0 { f.virt.1 } else { d.port },
                state: state.name().to_string(),
                expires: (f.expires_ns - now).div_ceil(1_000_000_000),
                pe: None,
            });
        }
        // Persistence templates, as ipvsadm lists them: the client network,
        // port 0, state NONE.
        let m: HashMap<&MapData, [u8; TMPL_KEY_LEN], [u8; 16]> =
            HashMap::try_from(map(&self.ebpf, "templates", "the templates")?)
                .map_err(|e| kernel("the templates")(&e))?;
        for (k, v) in m.iter().filter_map(Result::ok) {
            let Some(family) = self
                .layout
                .services
                .iter()
                .find(|(_, s)| s.index == u32::from_ne_bytes([k[32], k[33], k[34], k[35]]))
                .map(|(key, _)| {
                    if key.family() == fulcrum_core::Family::V4 {
                        4
                    } else {
                        6
                    }
                })
            else {
                continue;
            };
            let Some(t) = TemplateRecord::parse(&k, &v, family) else {
                continue;
            };
            let Some(d) = self.layout.records.get(&t.dest) else {
                continue;
            };
            if t.expires_ns <= now {
                continue;
            }
            out.push(fulcrum_core::conn::ConnEntry {
                proto: match t.proto {
                    6 => "TCP",
                    17 => "UDP",
                    _ => "SCTP",
                }
                .to_string(),
                caddr: t.snet,
                cport: 0,
                vaddr: t.virt.0,
                vport: t.virt.1,
                daddr: d.addr,
                dport: if t.virt.1 == 0 { 0 } else { d.port },
                state: ConnState::None.name().to_string(),
                expires: (t.expires_ns - now).div_ceil(1_000_000_000),
                pe: None,
            });
        }
        Ok(out)
    }

    /// Every flow in the table (expired ones the sweeper has not reached
    /// included), with the slot of its real server.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn flows(&self) -> Result<Vec<FlowRecord>, XdpError> {
        let mut out = Vec::new();
        let t4: Array<&MapData, [u8; BUCKET4_LEN]> =
            Array::try_from(map(&self.ebpf, "ftab4", "the IPv4 flow table")?)
                .map_err(|e| kernel("the IPv4 flow table")(&e))?;
        for b in t4.iter() {
            let b = b.map_err(|e| kernel("reading the IPv4 flow table")(&e))?;
            out.extend(FlowRecord::parse_bucket4(&b));
        }
        let t6: Array<&MapData, [u8; BUCKET6_LEN]> =
            Array::try_from(map(&self.ebpf, "ftab6", "the IPv6 flow table")?)
                .map_err(|e| kernel("the IPv6 flow table")(&e))?;
        for b in t6.iter() {
            let b = b.map_err(|e| kernel("reading the IPv6 flow table")(&e))?;
            out.extend(FlowRecord::parse_bucket6(&b));
        }
        Ok(out)
    }

    /// The packets the program did not forward, by why, summed over the
    /// CPUs.
    ///
    /// # Errors
    /// The kernel refusing the read.
    pub fn exceptions(&self) -> Result<Vec<(Exception, u64)>, XdpError> {
        let map = map(&self.ebpf, "exceptions", "the exceptions map")?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| kernel("the exceptions map")(&e))?;
        Exception::ALL
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let v = arr
                    .get(&(i as u32), 0)
                    .map_err(|err| kernel("reading exceptions")(&err))?;
                Ok((*e, v.iter().sum()))
            })
            .collect()
    }

    /// Attach the program to `interface` (of this thread's network
    /// namespace): in the driver, or — when the driver refuses — in the
    /// kernel's generic path, which the answer says (the caller warns).
    /// It stays attached until the plane is dropped.
    ///
    /// # Errors
    /// A name that is not an interface's, no such interface, or the kernel
    /// refusing both modes (the error of the generic attempt).
    pub fn attach(&mut self, interface: &str) -> Result<Attached, XdpError> {
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ', '\0', ':'])
        {
            return Err(XdpError::BadInterface(interface.to_string()));
        }
        let prog = xdp_mut(&mut self.ebpf, PROGRAM, "attaching the XDP program")?;
        if prog.attach(interface, XdpMode::Driver).is_ok() {
            return Ok(Attached::Native);
        }
        prog.attach(interface, XdpMode::Skb)
            .map(|_| Attached::Generic)
            .map_err(|e| XdpError::Kernel {
                what: "attaching the XDP program",
                why: format!("{interface}: {e}"),
            })
    }

    /// Run the program `times` times on `frame` in the kernel (tests and
    /// benchmarks: one system call); returns the last verdict.
    ///
    /// # Errors
    /// The kernel refusing the run.
    pub fn test_run_repeat(&self, frame: &[u8], times: u32) -> Result<u32, XdpError> {
        let prog = xdp(&self.ebpf, PROGRAM, "running the XDP program")?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = times;
        let r = prog
            .test_run(opts)
            .map_err(|e| kernel("running the XDP program")(&e))?;
        Ok(r.return_value)
    }

    /// Run the program on one frame in the kernel (`BPF_PROG_TEST_RUN`, no
    /// interface needed): its verdict and the frame as it left.
    ///
    /// # Errors
    /// The kernel refusing the run.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let prog = xdp(&self.ebpf, PROGRAM, "running the XDP program")?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        let r = prog
            .test_run(opts)
            .map_err(|e| kernel("running the XDP program")(&e))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_are_laid_out_as_the_program_reads_them() {
        let k = service_key(&ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.100".parse().unwrap(),
            port: 80,
        })
        .unwrap();
        assert_eq!(&k[..8], &[4, 6, 0, 80, 10, 0, 0, 100]);
        assert!(k[8..].iter().all(|b| *b == 0));
        let k = service_key(&ServiceKey::Addr {
            proto: Protocol::Sctp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 5060,
        })
        .unwrap();
        assert_eq!(&k[..4], &[6, 132, 0x13, 0xc4]);
        assert_eq!(&k[4..6], &[0x20, 0x01]);
        assert_eq!(k[19], 1);
        assert_eq!(
            service_key(&ServiceKey::Fwmark {
                mark: 1,
                family: fulcrum_core::Family::V4
            }),
            None
        );
    }
}

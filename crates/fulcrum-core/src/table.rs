//! The IPVS table: virtual services, their dests and the connection table,
//! with the kernel's rules for changing them (`ip_vs_ctl.c`) and for
//! scheduling new connections (`ip_vs_core.c`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::addr::{Family, Netmask};
use crate::conn::{Conn, ConnId, ConnProto, ConnTable, TemplateKey};
use crate::dest::{Dest, DestId, Forwarding};
use crate::sched::{DestChange, Flow, SchedOptions, SchedulerKind, SharedScheduler, new_scheduler};
use crate::service::{Protocol, SchedFlags, Service, ServiceKey};
use crate::state::{ConnState, Direction, TcpFlags, Timeouts, tcp_transition};

/// The FTP control port, whose persistence templates ignore ports.
const FTP_PORT: u16 = 21;

/// The largest weight: the kernel keeps it in an `int`.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// A failed table change. Each variant is one of the kernel's answers; the
/// comment names the errno ipvsadm turns into its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// EEXIST on add-service.
    #[error("Service already exists")]
    ServiceExists,
    /// ESRCH on edit/delete/zero of a service.
    #[error("No such service")]
    NoSuchService,
    /// ESRCH on a dest operation.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// EEXIST on add-dest.
    #[error("Destination already exists")]
    DestExists,
    /// ENOENT on edit/delete-dest.
    #[error("No such destination")]
    NoSuchDest,
    /// ENOENT: the persistence engine is unknown (only `sip` exists).
    #[error("Scheduler or persistence engine not found")]
    UnknownPersistenceEngine,
    /// EINVAL: port 0 without persistence.
    #[error("port zero is only supported in persistent services")]
    PortZeroNotPersistent,
    /// EINVAL: one-packet scheduling on a TCP/SCTP service.
    #[error("one-packet scheduling is only for UDP and fwmark services")]
    OnePacketNotUdp,
    /// EINVAL: a dest of another family that is not tunnelled.
    #[error("a real server of another address family must use tunnelling")]
    FamilyMismatch,
    /// ERANGE: lower threshold above the upper one.
    #[error("lower threshold is higher than upper threshold")]
    ThresholdOrder,
    /// ERANGE: weight above `INT_MAX` (the kernel's `int` weight).
    #[error("weight must be 0..2147483647")]
    WeightRange,
    /// EINVAL: the scheduler cannot take another dest (mh).
    #[error("the scheduler's table is full ({0} real servers)")]
    TooManyDests(usize),
}

/// Everything that defines a virtual service (`ipvsadm -A/-E`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags.
    pub flags: SchedFlags,
    /// Persistence timeout (seconds), if persistent.
    pub persistent: Option<u32>,
    /// Persistence granularity.
    pub netmask: Netmask,
    /// One-packet scheduling.
    pub one_packet: bool,
    /// Persistence engine.
    pub pe_name: Option<String>,
}

impl ServiceSpec {
    /// A spec with ipvsadm's defaults for everything but key and scheduler.
    pub fn new(key: ServiceKey, scheduler: SchedulerKind) -> ServiceSpec {
        ServiceSpec {
            key,
            scheduler,
            flags: SchedFlags::default(),
            persistent: None,
            netmask: Netmask::host(key.family()),
            one_packet: false,
            pe_name: None,
        }
    }
}

/// Everything that defines a dest (`ipvsadm -a/-e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSpec {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: Forwarding,
    /// Weight.
    pub weight: u32,
    /// Upper threshold.
    pub u_threshold: u32,
    /// Lower threshold.
    pub l_threshold: u32,
}

impl DestSpec {
    /// A spec with ipvsadm's defaults except address, port and forwarding.
    pub fn new(addr: IpAddr, port: u16, fwd: Forwarding) -> DestSpec {
        DestSpec {
            addr,
            port,
            fwd,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }
}

/// Where a new connection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// The connection entry; `None` for one-packet scheduling, which keeps
    /// no entry.
    pub conn: Option<ConnId>,
    /// The chosen dest.
    pub dest: DestId,
    /// Its address.
    pub daddr: IpAddr,
    /// The port to forward to.
    pub dport: u16,
}

/// What a data plane that keeps its own connections and counters (XDP)
/// counted for one real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Connections in ESTABLISHED.
    pub activeconns: u32,
    /// Connections in other states.
    pub inactconns: u32,
    /// Persistence templates.
    pub persistconns: u32,
    /// The upper threshold was reached.
    pub overload: bool,
    /// Traffic counters (cumulative).
    pub counters: crate::estimator::Counters,
}

/// The whole IPVS state of one director.
#[derive(Debug, Default)]
pub struct Table {
    services: Vec<Service>,
    timeouts: Timeouts,
    opts: SchedOptions,
    conns: ConnTable,
    /// The `expire_quiescent_template` sysctl: a template whose dest has
    /// weight 0 is not reused.
    pub expire_quiescent_template: bool,
}

impl Table {
    /// An empty table with default timeouts and scheduler options.
    pub fn new() -> Table {
        Table::default()
    }

    /// An empty table with the given scheduler tunables.
    pub fn with_options(opts: SchedOptions) -> Table {
        Table {
            opts,
            ..Table::default()
        }
    }

    /// Bring a service's counters and its real servers' counts to what a
    /// data plane that keeps them itself (XDP) counted, so listings,
    /// status, rates and metrics read them as on the other planes. Real
    /// servers not named keep theirs.
    pub fn observe(
        &mut self,
        key: &ServiceKey,
        counters: crate::estimator::Counters,
        dests: impl IntoIterator<Item = (DestId, Observed)>,
    ) {
        let Some(i) = self.service_index(key) else {
            return;
        };
        let svc = &mut self.services[i];
        svc.stats.counters = counters;
        for (id, o) in dests {
            if let Some(d) = svc.dest_by_id_mut(id) {
                d.activeconns = o.activeconns;
                d.inactconns = o.inactconns;
                d.persistconns = o.persistconns;
                d.overload = o.overload;
                d.stats.counters = o.counters;
            }
        }
    }

    /// The scheduler tunables the table was made with.
    pub fn options(&self) -> &SchedOptions {
        &self.opts
    }

    /// Services in creation order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// A service by key.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.key == *key)
    }

    fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.key == *key)
    }

    /// The connection timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// `--set tcp tcpfin udp` (zero keeps a value).
    pub fn set_timeouts(&mut self, tcp: Duration, tcpfin: Duration, udp: Duration) {
        self.timeouts.set(tcp, tcpfin, udp);
    }

    /// The connection table.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    fn check_service(spec: &ServiceSpec) -> Result<(), TableError> {
        if let ServiceKey::Addr { proto, port, .. } = spec.key {
            if port == 0 && spec.persistent.is_none() {
                return Err(TableError::PortZeroNotPersistent);
            }
            if spec.one_packet && proto != Protocol::Udp {
                return Err(TableError::OnePacketNotUdp);
            }
        }
        match spec.pe_name.as_deref() {
            None | Some("sip") => Ok(()),
            Some(_) => Err(TableError::UnknownPersistenceEngine),
        }
    }

    /// `-A`: add a virtual service.
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<(), TableError> {
        Self::check_service(&spec)?;
        if self.service_index(&spec.key).is_some() {
            return Err(TableError::ServiceExists);
        }
        self.services.push(Service {
            key: spec.key,
            scheduler: SharedScheduler::new(new_scheduler(spec.scheduler, &[], &self.opts)),
            flags: spec.flags,
            persistent: spec.persistent,
            netmask: spec.netmask,
            one_packet: spec.one_packet,
            pe_name: spec.pe_name,
            dests: Vec::new(),
            stats: Default::default(),
            next_dest_id: 0,
        });
        Ok(())
    }

    /// `-E`: replace a service's definition. Dests, counters and connections
    /// stay; a different scheduler starts fresh, the same one keeps its state.
    pub fn edit_service(&mut self, spec: ServiceSpec) -> Result<(), TableError> {
        Self::check_service(&spec)?;
        let i = self
            .service_index(&spec.key)
            .ok_or(TableError::NoSuchService)?;
        let svc = &mut self.services[i];
        if let Some(cap) = new_scheduler(spec.scheduler, &[], &self.opts).capacity()
            && svc.dests.len() > cap
        {
            return Err(TableError::TooManyDests(cap));
        }
        if svc.scheduler.kind() != spec.scheduler {
            svc.scheduler
                .replace(new_scheduler(spec.scheduler, &svc.dests, &self.opts));
        }
        svc.flags = spec.flags;
        svc.persistent = spec.persistent;
        svc.netmask = spec.netmask;
        svc.one_packet = spec.one_packet;
        svc.pe_name = spec.pe_name;
        Ok(())
    }

    /// `-D`: delete a service. Its connections stay until they expire.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), TableError> {
        let i = self.service_index(key).ok_or(TableError::NoSuchService)?;
        self.services.remove(i);
        Ok(())
    }

    /// `-C`: delete every service.
    pub fn flush(&mut self) {
        self.services.clear();
    }

    /// `-Z`: zero the counters of one service and its dests, or of all.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), TableError> {
        let zero = |s: &mut Service| {
            s.stats.zero();
            s.dests.iter_mut().for_each(|d| d.stats.zero());
        };
        match key {
            Some(k) => {
                let i = self.service_index(k).ok_or(TableError::NoSuchService)?;
                zero(&mut self.services[i]);
            }
            None => self.services.iter_mut().for_each(zero),
        }
        Ok(())
    }

    fn check_dest(svc: &Service, spec: &DestSpec) -> Result<(), TableError> {
        if spec.weight > MAX_WEIGHT {
            return Err(TableError::WeightRange);
        }
        if spec.l_threshold > spec.u_threshold {
            return Err(TableError::ThresholdOrder);
        }
        if Family::of(&spec.addr) != svc.key.family()
            && !matches!(spec.fwd, Forwarding::Tunnel { .. })
        {
            return Err(TableError::FamilyMismatch);
        }
        Ok(())
    }

    /// `-a`: add a dest at the head of the service's list.
    pub fn add_dest(&mut self, key: &ServiceKey, spec: DestSpec) -> Result<DestId, TableError> {
        let i = self
            .service_index(key)
            .ok_or(TableError::ServiceNotDefined)?;
        let svc = &mut self.services[i];
        Self::check_dest(svc, &spec)?;
        if svc.dest(&spec.addr, spec.port).is_some() {
            return Err(TableError::DestExists);
        }
        if let Some(cap) = svc.scheduler.lock().capacity()
            && svc.dests.len() + 1 > cap
        {
            return Err(TableError::TooManyDests(cap));
        }
        svc.next_dest_id += 1;
        let id = DestId(svc.next_dest_id);
        let mut d = Dest::new(id, spec.addr, spec.port, spec.fwd, spec.weight);
        d.u_threshold = spec.u_threshold;
        d.l_threshold = spec.l_threshold;
        svc.dests.insert(0, d);
        svc.scheduler
            .lock()
            .update(&svc.dests, DestChange::Added(id));
        Ok(id)
    }

    /// `-e`: replace a dest's weight, forwarding and thresholds.
    pub fn edit_dest(&mut self, key: &ServiceKey, spec: DestSpec) -> Result<(), TableError> {
        let i = self
            .service_index(key)
            .ok_or(TableError::ServiceNotDefined)?;
        let svc = &mut self.services[i];
        Self::check_dest(svc, &spec)?;
        let d = svc
            .dests
            .iter_mut()
            .find(|d| d.addr == spec.addr && d.port == spec.port)
            .ok_or(TableError::NoSuchDest)?;
        d.weight = spec.weight;
        if spec.weight > 0 {
            d.last_weight = spec.weight;
        }
        d.fwd = spec.fwd;
        // __ip_vs_update_dest: a raised or removed upper threshold clears
        // OVERLOAD at once.
        if spec.u_threshold == 0 || spec.u_threshold > d.u_threshold {
            d.overload = false;
        }
        d.u_threshold = spec.u_threshold;
        d.l_threshold = spec.l_threshold;
        let id = d.id;
        svc.scheduler
            .lock()
            .update(&svc.dests, DestChange::Updated(id));
        Ok(())
    }

    /// `-d`: remove a dest. Its connections stay until they expire.
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
    ) -> Result<(), TableError> {
        let i = self
            .service_index(key)
            .ok_or(TableError::ServiceNotDefined)?;
        let svc = &mut self.services[i];
        let index = svc
            .dests
            .iter()
            .position(|d| d.addr == *addr && d.port == port)
            .ok_or(TableError::NoSuchDest)?;
        let d = svc.dests.remove(index);
        svc.scheduler
            .lock()
            .update(&svc.dests, DestChange::Removed { id: d.id, index });
        Ok(())
    }

    /// Every 2 seconds: advance all rate estimators.
    pub fn tick_estimators(&mut self) {
        for s in &mut self.services {
            s.stats.tick();
            s.dests.iter_mut().for_each(|d| d.stats.tick());
        }
    }

    /// Every 60 seconds: scheduler caches' garbage collection.
    pub fn collect_garbage(&mut self, now: Duration) {
        for s in &mut self.services {
            s.scheduler.lock().collect_garbage(&s.dests, now);
        }
    }

    fn dest_mut(&mut self, svc: &ServiceKey, dest: DestId) -> Option<&mut Dest> {
        let i = self.service_index(svc)?;
        self.services[i].dest_by_id_mut(dest)
    }

    /// `ip_vs_bind_dest`: count the entry and apply the upper threshold.
    fn bind(&mut self, conn: &Conn) {
        if let Some(d) = self.dest_mut(&conn.service, conn.dest) {
            if conn.template {
                d.persistconns += 1;
            } else if conn.inactive {
                d.inactconns += 1;
            } else {
                d.activeconns += 1;
            }
            d.check_overload_on_bind();
        }
    }

    /// `ip_vs_unbind_dest`: uncount the entry and apply the lower threshold.
    fn unbind(&mut self, conn: &Conn) {
        if let Some(d) = self.dest_mut(&conn.service, conn.dest) {
            if conn.template {
                d.persistconns = d.persistconns.saturating_sub(1);
            } else if conn.inactive {
                d.inactconns = d.inactconns.saturating_sub(1);
            } else {
                d.activeconns = d.activeconns.saturating_sub(1);
            }
            d.check_overload_on_unbind();
        }
    }

    fn remove_entry(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.entries.remove(&id)?;
        if conn.template {
            self.conns.templates.retain(|_, v| *v != id);
        }
        if let Some(ct) = conn.control().and_then(|c| self.conns.entries.get_mut(&c)) {
            ct.n_control = ct.n_control.saturating_sub(1);
        }
        self.unbind(&conn);
        Some(conn)
    }

    /// Schedule a new connection for a packet that matched `key` and has no
    /// entry yet (`ip_vs_schedule`, with `ip_vs_sched_persist` for persistent
    /// services). `None` means "no destination available".
    pub fn schedule(
        &mut self,
        key: &ServiceKey,
        proto: Protocol,
        flow: &Flow,
        now: Duration,
    ) -> Option<Scheduled> {
        let si = self.service_index(key)?;
        let (dest_id, template) = if self.services[si].persistent.is_some() {
            self.schedule_persistent(si, proto, flow, now)?
        } else {
            let svc = &mut self.services[si];
            let i = svc
                .scheduler
                .lock()
                .schedule(&svc.dests, flow, svc.flags, now)?;
            (svc.dests[i].id, None)
        };
        self.open(si, dest_id, template, proto, flow, None, now)
    }

    /// Make the entry of a new connection scheduled to `dest_id` (with the
    /// persistence template that chose it, if any), and count it: the tail
    /// of `ip_vs_schedule`. `id` is the entry's id when the data plane chose
    /// it ([`Table::adopt`]).
    #[allow(clippy::too_many_arguments, reason = "ip_vs_schedule's own inputs")]
    fn open(
        &mut self,
        si: usize,
        dest_id: DestId,
        template: Option<ConnId>,
        proto: Protocol,
        flow: &Flow,
        id: Option<ConnId>,
        now: Duration,
    ) -> Option<Scheduled> {
        let key = self.services[si].key;
        let svc = &mut self.services[si];
        let one_packet = svc.one_packet && proto == Protocol::Udp;
        let d = svc.dest_by_id_mut(dest_id)?;
        let dport = if d.port != 0 { d.port } else { flow.dport };
        let daddr = d.addr;
        d.stats.counters.conns += 1;
        svc.stats.counters.conns += 1;
        let state = match proto {
            Protocol::Udp => ConnState::Udp,
            Protocol::Tcp | Protocol::Sctp => ConnState::None,
        };
        let timeout = self.timeouts.of(state);
        let mut conn = Conn {
            proto: ConnProto::L4(proto),
            caddr: flow.saddr,
            cport: flow.sport,
            vaddr: flow.daddr,
            vport: flow.dport,
            daddr,
            dport,
            service: key,
            dest: dest_id,
            state,
            inactive: true,
            template: false,
            control: template.map_or(0, |t| t.0),
            n_control: 0,
            timeout_ms: 0,
            expires_ms: 0,
        };
        conn.arm(timeout, now);
        self.bind(&conn);
        if one_packet {
            // The entry lives for one datagram only and is never hashed.
            self.unbind(&conn);
            return Some(Scheduled {
                conn: None,
                dest: dest_id,
                daddr,
                dport,
            });
        }
        let id = match id {
            Some(id) => {
                self.conns.entries.insert(id, conn);
                id
            }
            None => self.conns.insert(conn),
        };
        if let Some(ct) = template.and_then(|t| self.conns.entries.get_mut(&t)) {
            ct.n_control += 1;
        }
        Some(Scheduled {
            conn: Some(id),
            dest: dest_id,
            daddr,
            dport,
        })
    }

    /// A connection that a data plane scheduled itself from a
    /// [`snapshot`](crate::snapshot) of this table, with an id it took from
    /// [`Table::conn_ids`]: make its entry and count it as
    /// [`Table::schedule`] would have. `None` when the service or the real
    /// server went away meanwhile (the connection then has no entry, as if
    /// it had never been seen).
    pub fn adopt(
        &mut self,
        key: &ServiceKey,
        proto: Protocol,
        flow: &Flow,
        dest: DestId,
        id: ConnId,
        now: Duration,
    ) -> Option<Scheduled> {
        let si = self.service_index(key)?;
        if self.conns.entries.contains_key(&id) {
            return None;
        }
        self.open(si, dest, None, proto, flow, Some(id), now)
    }

    /// Where connection ids come from: a data plane that opens entries
    /// itself takes them here, so they never collide with the table's.
    pub fn conn_ids(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.conns.next_id.clone()
    }

    fn schedule_persistent(
        &mut self,
        si: usize,
        proto: Protocol,
        flow: &Flow,
        now: Duration,
    ) -> Option<(DestId, Option<ConnId>)> {
        let svc = &self.services[si];
        let snet = svc.netmask.apply(&flow.saddr);
        let svc_port = svc.key.port();
        let (tproto, vaddr, vport) = if flow.dport == svc_port {
            let vport = if svc_port != FTP_PORT { flow.dport } else { 0 };
            (ConnProto::L4(proto), flow.daddr, vport)
        } else if let ServiceKey::Fwmark { mark, .. } = svc.key {
            (ConnProto::Ip, IpAddr::V4(Ipv4Addr::from(mark)), 0)
        } else {
            (ConnProto::L4(proto), flow.daddr, 0)
        };
        let tkey = TemplateKey {
            service: svc.key,
            proto: tproto,
            snet,
            vaddr,
            vport,
        };
        // ip_vs_check_template: the dest must still be in the service, and
        // with expire_quiescent_template it must not be quiesced.
        if let Some(&tid) = self.conns.templates.get(&tkey) {
            let ct = &self.conns.entries[&tid];
            let usable = svc
                .dest_by_id(ct.dest)
                .is_some_and(|d| !(self.expire_quiescent_template && d.weight == 0));
            if usable {
                let dest = ct.dest;
                let ct = self.conns.entries.get_mut(&tid)?;
                ct.rearm(now);
                return Some((dest, Some(tid)));
            }
            // The template is dead: unhash it so a new one can be made; it
            // lingers only as the control of its existing connections.
            self.conns.templates.remove(&tkey);
            if let Some(ct) = self.conns.entries.get(&tid).cloned() {
                self.unbind(&ct);
                if let Some(ct) = self.conns.entries.get_mut(&tid) {
                    ct.dest = DestId(u64::MAX);
                }
            }
        }
        let svc = &mut self.services[si];
        let i = svc
            .scheduler
            .lock()
            .schedule(&svc.dests, flow, svc.flags, now)?;
        let d = &svc.dests[i];
        let dport = if flow.dport == svc_port && svc_port != FTP_PORT {
            d.port
        } else {
            0
        };
        let timeout = Duration::from_secs(u64::from(svc.persistent.unwrap_or(0)));
        let mut ct = Conn {
            proto: tproto,
            caddr: snet,
            cport: 0,
            vaddr,
            vport,
            daddr: d.addr,
            dport,
            service: svc.key,
            dest: d.id,
            state: ConnState::None,
            inactive: true,
            template: true,
            control: 0,
            n_control: 0,
            timeout_ms: 0,
            expires_ms: 0,
        };
        ct.arm(timeout, now);
        let dest = d.id;
        self.bind(&ct);
        let tid = self.conns.insert(ct);
        self.conns.templates.insert(tkey, tid);
        Some((dest, Some(tid)))
    }

    fn set_state_inner(&mut self, id: ConnId, new_state: ConnState, now: Duration) {
        let Some(conn) = self.conns.entries.get_mut(&id) else {
            return;
        };
        let was_inactive = conn.inactive;
        let (svc, dest) = (conn.service, conn.dest);
        conn.state = new_state;
        conn.arm(self.timeouts.of(new_state), now);
        // set_tcp_state: only ESTABLISHED counts as active.
        let now_inactive = new_state != ConnState::Established;
        conn.inactive = now_inactive;
        if was_inactive != now_inactive
            && let Some(d) = self.dest_mut(&svc, dest)
        {
            if now_inactive {
                d.activeconns = d.activeconns.saturating_sub(1);
                d.inactconns += 1;
            } else {
                d.inactconns = d.inactconns.saturating_sub(1);
                d.activeconns += 1;
            }
        }
    }

    /// A packet of an existing connection: TCP state transition (for TCP),
    /// counters, and the timer re-armed with the state's timeout.
    pub fn packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp: Option<TcpFlags>,
        bytes: u64,
        now: Duration,
    ) {
        let Some(conn) = self.conns.entries.get(&id) else {
            return;
        };
        let (svc, dest) = (conn.service, conn.dest);
        self.transition(id, dir, tcp, now);
        let bump = |s: &mut crate::estimator::Stats| {
            if dir == Direction::Output {
                s.counters.outpkts += 1;
                s.counters.outbytes += bytes;
            } else {
                s.counters.inpkts += 1;
                s.counters.inbytes += bytes;
            }
        };
        if let Some(si) = self.service_index(&svc) {
            bump(&mut self.services[si].stats);
            if let Some(d) = self.services[si].dest_by_id_mut(dest) {
                bump(&mut d.stats);
            }
        }
    }

    /// A segment's effect on a connection without counting it: the TCP
    /// transition (none for UDP, `tcp = None`) and the timer re-armed with the
    /// state's timeout. For data planes that count traffic separately.
    pub fn transition(&mut self, id: ConnId, dir: Direction, tcp: Option<TcpFlags>, now: Duration) {
        let Some(conn) = self.conns.entries.get(&id) else {
            return;
        };
        let new_state = match tcp {
            Some(flags) => tcp_transition(conn.state, dir, flags),
            None => conn.state,
        };
        self.set_state_inner(id, new_state, now);
    }

    /// Set a connection's state directly, for data planes that see socket
    /// states rather than segments (the proxy). Counters move as for a
    /// transition.
    pub fn set_state(&mut self, id: ConnId, state: ConnState, now: Duration) {
        self.set_state_inner(id, state, now);
    }

    /// Add traffic to a connection's counters without a state change (the
    /// proxy reports bytes and segments in batches).
    pub fn account(&mut self, id: ConnId, inpkts: u64, inbytes: u64, outpkts: u64, outbytes: u64) {
        let Some(conn) = self.conns.entries.get(&id) else {
            return;
        };
        let (svc, dest) = (conn.service, conn.dest);
        let add = |s: &mut crate::estimator::Stats| {
            s.counters.inpkts += inpkts;
            s.counters.inbytes += inbytes;
            s.counters.outpkts += outpkts;
            s.counters.outbytes += outbytes;
        };
        if let Some(si) = self.service_index(&svc) {
            add(&mut self.services[si].stats);
            if let Some(d) = self.services[si].dest_by_id_mut(dest) {
                add(&mut d.stats);
            }
        }
    }

    /// Drop every entry whose timer ran out (`ip_vs_conn_expire`). A template
    /// that still controls connections is re-armed instead; a connection
    /// table left mostly empty is shrunk. Returns the ids removed.
    pub fn expire(&mut self, now: Duration) -> Vec<ConnId> {
        // Fire the timers in the order they ran out, as the kernel's would.
        let mut due: Vec<(Duration, ConnId)> = self
            .conns
            .entries
            .iter()
            .filter(|(_, c)| c.expires() <= now)
            .map(|(id, c)| (c.expires(), *id))
            .collect();
        due.sort();
        let mut removed = Vec::new();
        for (fired, id) in due {
            let Some(c) = self.conns.entries.get_mut(&id) else {
                continue;
            };
            if c.template && c.n_control > 0 {
                // Re-armed from the moment its timer fired.
                c.rearm(fired);
                continue;
            }
            if self.remove_entry(id).is_some() {
                removed.push(id);
            }
        }
        if !removed.is_empty() {
            self.conns.compact();
        }
        removed
    }

    /// The earliest expiry in the table, for the shell's timer.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.conns.entries.values().map(Conn::expires).min()
    }
}

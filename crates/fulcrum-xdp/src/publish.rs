//! What the controller's table becomes in the program's maps: which index
//! each service has, which slot each real server has, and what changed
//! since the last publication — so a change touches only what differs and
//! never an existing flow (a flow holds its real server's slot, which stays
//! until the flow's last packet, even after the real server is deleted).

use std::collections::{HashMap, VecDeque};

use fulcrum_core::sched::SchedOptions;
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{DestId, Forwarding, Service, ServiceKey, Table};

use crate::records::{
    DestRecord, MAX_DESTS, MAX_SERVICES, MAX_SVC_DESTS, SVC_SCHED1, SVC_SCHED2, SchedState,
    SvcRecord, sched_number,
};

/// A service as last published.
#[derive(Debug, Clone)]
pub(crate) struct SvcPub {
    pub(crate) index: u32,
    pub(crate) kind: SchedulerKind,
    /// Real servers in list order, with their slots.
    pub(crate) dests: Vec<(DestId, u32)>,
    /// The sh/dh/mh table as published (list indexes).
    pub(crate) buckets: Vec<Option<u32>>,
    pub(crate) record: Vec<u8>,
    /// Real servers in list order, with their weights.
    pub(crate) weights: Vec<(DestId, u32)>,
    /// Persistence: the timeout in seconds (0: none) and the netmask.
    pub(crate) persist: (u32, fulcrum_core::Netmask),
}

fn svc_weights(svc: &Service) -> Vec<u32> {
    svc.dests.iter().map(|d| d.weight).collect()
}

/// Hands out numbers, reusing freed ones last (so a number freed now is
/// not soon another's while stale references may remain).
#[derive(Debug)]
pub(crate) struct Numbers {
    next: u32,
    limit: u32,
    free: VecDeque<u32>,
}

impl Numbers {
    pub(crate) fn new(limit: u32) -> Numbers {
        Numbers {
            next: 0,
            limit,
            free: VecDeque::new(),
        }
    }

    pub(crate) fn take(&mut self) -> Option<u32> {
        if self.next < self.limit {
            self.next += 1;
            return Some(self.next - 1);
        }
        self.free.pop_front()
    }

    pub(crate) fn give_back(&mut self, n: u32) {
        self.free.push_back(n);
    }
}

/// A write the plane must make into the maps.
#[derive(Debug, PartialEq)]
pub(crate) enum Write {
    /// A real server's record; `fresh` when the slot is newly handed out
    /// (its counters start at zero).
    Dest {
        slot: u32,
        record: DestRecord,
        fresh: bool,
    },
    /// A service's record.
    Svc { index: u32, record: Vec<u8> },
    /// A service's lblc/lblcr cache entries go (its scheduler was bound
    /// anew).
    ClearLocality { index: u32 },
    /// The scheduler state: `Reset` writes it, `Adjust` reads the
    /// program's and changes it as the scheduler's update hook would.
    Sched { index: u32, change: SchedChange },
    /// One bucket of a service's sh/dh/mh table (`None` removes it).
    Bucket {
        index: u32,
        bucket: u32,
        dest: Option<u32>,
    },
    /// The `services` map entry of a key (`None` removes it).
    Key { key: ServiceKey, index: Option<u32> },
}

/// How a service's scheduler state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchedChange {
    /// Bound anew (new service, or another scheduler), then the wrr
    /// update hook once per `(mw, di)` step.
    Reset(SchedState, Vec<(i64, i64)>),
    /// The destination list changed: wrr's update hook once per step (the
    /// constants of each list on the way, one real server changed at a
    /// time), and rr's new "last" when the old one was removed
    /// (`Some((was, now))`, slot + 1; 0 for none).
    Adjust {
        steps: Vec<(i64, i64)>,
        rr_last: Option<(u32, u32)>,
    },
}

/// Why the XDP plane cannot forward a service (the service alone, before
/// its real servers), said for people; `None` when it can.
pub fn refuses_service(key: &ServiceKey) -> Option<String> {
    if matches!(key, ServiceKey::Fwmark { .. }) {
        return Some(format!(
            "{key}: firewall-mark services need the ipvs data plane (XDP runs before anything marks a packet)"
        ));
    }
    None
}

/// Why the XDP plane cannot reach a real server of `key` at `addr` by
/// `fwd`; `None` when it can.
pub fn refuses_dest(
    key: &ServiceKey,
    addr: &std::net::IpAddr,
    port: u16,
    fwd: &Forwarding,
) -> Option<String> {
    if let ServiceKey::Addr {
        proto: fulcrum_core::Protocol::Sctp,
        port: vport,
        ..
    } = key
        && *fwd == Forwarding::Masq
        && port != 0
        && port != *vport
    {
        return Some(format!(
            "{key}: real server {addr}:{port} takes SCTP on another port; the xdp data plane does not recompute SCTP's CRC (keep the virtual server's port, or use `dataplane = ipvs`)"
        ));
    }
    match fwd {
        Forwarding::Masq | Forwarding::Route => {}
        Forwarding::Tunnel {
            kind: fulcrum_core::TunnelType::Ipip,
            ..
        }
        | Forwarding::Tunnel {
            kind: fulcrum_core::TunnelType::Gue,
            csum: fulcrum_core::TunnelCsum::NoCsum,
            ..
        } => {}
        Forwarding::Tunnel {
            kind: fulcrum_core::TunnelType::Gue,
            ..
        } => {
            return Some(format!(
                "{key}: real server {addr} is tunnelled by gue with a checksum, which the xdp data plane does not compute (use `tunnel_checksum = none`, or `dataplane = ipvs`)"
            ));
        }
        Forwarding::Tunnel { kind, .. } => {
            return Some(format!(
                "{key}: real server {addr} is tunnelled by {}, which the xdp data plane does not do (ipip or gue; or `dataplane = ipvs`)",
                kind.name()
            ));
        }
        Forwarding::Local => {
            return Some(format!(
                "{key}: real server {addr} is local, which the xdp data plane does not forward"
            ));
        }
    }
    if addr.is_ipv4() != (key.family() == fulcrum_core::Family::V4) {
        return Some(format!(
            "{key}: real server {addr} is of the other address family; the xdp data plane does not translate between IPv4 and IPv6"
        ));
    }
    None
}

/// Why a service is not forwarded by this plane.
pub(crate) fn refusal(svc: &Service) -> Option<String> {
    if let Some(why) = refuses_service(&svc.key) {
        return Some(why);
    }
    if svc.dests.len() > MAX_SVC_DESTS {
        return Some(format!(
            "{}: {} real servers; the xdp data plane holds at most {MAX_SVC_DESTS} per virtual server",
            svc.key,
            svc.dests.len()
        ));
    }
    svc.dests
        .iter()
        .find_map(|d| refuses_dest(&svc.key, &d.addr, d.port, &d.fwd))
}

/// wrr's `mw` and `di` for a list of weights (as
/// WeightedRoundRobin::recompute).
fn wrr_constants(weights: impl Iterator<Item = u32> + Clone) -> (i64, i64) {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = weights
        .clone()
        .map(i64::from)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g == 0 { w } else { gcd(w, g) });
    let di = if g == 0 { 1 } else { g };
    let max = weights.map(i64::from).max().unwrap_or(0);
    (max - (di - 1), di)
}

/// The state a scheduler starts with (its `init_service`) over `weights`.
pub(crate) fn reset_state(weights: &[u32], opts: &SchedOptions) -> SchedState {
    let (mw, _) = wrr_constants(weights.iter().copied());
    SchedState {
        wrr_cw: mw,
        wrr_cl: -1,
        rr_last: 0,
        rng: opts.seed,
    }
}

/// The wrr constants of each list on the way from `old` to `new` (ids
/// with weights, list order), one real server at a time as the table's
/// hooks saw them: removals, then changed weights, then additions (oldest
/// first).
fn wrr_steps(old: &[(DestId, u32)], new: &[(DestId, u32)], edited: &[DestId]) -> Vec<(i64, i64)> {
    let mut cur: Vec<(DestId, u32)> = old.to_vec();
    let mut steps = Vec::new();
    let step = |cur: &[(DestId, u32)]| wrr_constants(cur.iter().map(|(_, w)| *w));
    for (id, _) in old {
        if !new.iter().any(|(n, _)| n == id) {
            cur.retain(|(c, _)| c != id);
            steps.push(step(&cur));
        }
    }
    for (id, w) in new {
        if let Some(c) = cur.iter_mut().find(|(c, _)| c == id)
            && (c.1 != *w || edited.contains(id))
        {
            c.1 = *w;
            steps.push(step(&cur));
        }
    }
    for (id, w) in new.iter().rev() {
        if !cur.iter().any(|(c, _)| c == id) {
            cur.insert(0, (*id, *w));
            steps.push(step(&cur));
        }
    }
    steps
}

/// wrr's update hook on the program's state.
pub(crate) fn adjust_wrr(state: &mut SchedState, mw: i64, di: i64) {
    state.wrr_cl = -1;
    if state.wrr_cw > mw || state.wrr_cw == 0 {
        state.wrr_cw = mw;
    } else if di > 1 {
        state.wrr_cw = (state.wrr_cw / di) * di + 1;
    }
}

/// The table as published, and what to write to make the maps follow it.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) services: HashMap<ServiceKey, SvcPub>,
    pub(crate) slots: HashMap<(ServiceKey, DestId), u32>,
    pub(crate) records: HashMap<u32, DestRecord>,
    /// Slots of deleted real servers, kept while flows may use them.
    pub(crate) retired: Vec<u32>,
    svc_numbers: Numbers,
    slot_numbers: Numbers,
}

impl Layout {
    pub(crate) fn new() -> Layout {
        Layout {
            services: HashMap::new(),
            slots: HashMap::new(),
            records: HashMap::new(),
            retired: Vec::new(),
            svc_numbers: Numbers::new(MAX_SERVICES),
            slot_numbers: Numbers::new(MAX_DESTS),
        }
    }

    /// A deleted real server's slot: marked, so no template places new
    /// connections on it, and kept while flows may use it.
    fn retire(&mut self, slot: u32, writes: &mut Vec<Write>) {
        if let Some(r) = self.records.get_mut(&slot) {
            r.retired = true;
            writes.push(Write::Dest {
                slot,
                record: r.clone(),
                fresh: false,
            });
        }
        self.retired.push(slot);
    }

    /// A retired slot no flow uses any more goes back to the pool.
    pub(crate) fn release(&mut self, slot: u32) {
        self.retired.retain(|s| *s != slot);
        self.records.remove(&slot);
        self.slot_numbers.give_back(slot);
    }

    /// The writes that bring the maps from the last publication to
    /// `table`, and the services refused (with why). A refused service is
    /// not forwarded (taken out if it was).
    pub(crate) fn plan(
        &mut self,
        table: &Table,
        source: &dyn Fn(&std::net::IpAddr) -> Option<std::net::IpAddr>,
    ) -> (Vec<Write>, Vec<String>) {
        let mut writes = Vec::new();
        let mut refused = Vec::new();
        let mut seen: Vec<ServiceKey> = Vec::new();
        for svc in table.services() {
            if let Some(why) = refusal(svc) {
                refused.push(why);
                continue;
            }
            match self.plan_service(svc, table.options(), source, &mut writes) {
                Ok(()) => seen.push(svc.key),
                Err(why) => refused.push(why),
            }
        }
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(old) = self.services.remove(&key) {
                writes.push(Write::Key { key, index: None });
                for (b, d) in old.buckets.iter().enumerate() {
                    if d.is_some() {
                        writes.push(Write::Bucket {
                            index: old.index,
                            bucket: b as u32,
                            dest: None,
                        });
                    }
                }
                for (id, slot) in old.dests {
                    self.slots.remove(&(key, id));
                    self.retire(slot, &mut writes);
                }
                self.svc_numbers.give_back(old.index);
            }
        }
        (writes, refused)
    }

    fn plan_service(
        &mut self,
        svc: &Service,
        opts: &SchedOptions,
        source: &dyn Fn(&std::net::IpAddr) -> Option<std::net::IpAddr>,
        writes: &mut Vec<Write>,
    ) -> Result<(), String> {
        let key = svc.key;
        // Tunnels need the director's address towards each real server:
        // asked of the kernel once, when the real server arrives.
        let mut tun_src = HashMap::new();
        for d in &svc.dests {
            if matches!(d.fwd, Forwarding::Tunnel { .. }) {
                let known = self
                    .slots
                    .get(&(key, d.id))
                    .and_then(|s| self.records.get(s))
                    .and_then(|r| r.tun_src);
                let src = known.or_else(|| source(&d.addr)).ok_or_else(|| {
                    format!(
                        "{key}: no route to tunnelled real server {}: the director needs one to send from",
                        d.addr
                    )
                })?;
                tun_src.insert(d.id, src);
            }
        }
        let old = self.services.get(&key).cloned();
        let index = match &old {
            Some(o) => o.index,
            None => self.svc_numbers.take().ok_or_else(|| {
                format!("{key}: the xdp data plane holds at most {MAX_SERVICES} virtual servers")
            })?,
        };
        // Slots: kept for real servers that stay, new ones for the rest.
        let mut dests = Vec::with_capacity(svc.dests.len());
        let mut dest_changed = false;
        let mut edited = Vec::new();
        for d in &svc.dests {
            let (slot, fresh) = match self.slots.get(&(key, d.id)) {
                Some(s) => (*s, false),
                None => {
                    let Some(s) = self.slot_numbers.take() else {
                        if old.is_none() {
                            self.svc_numbers.give_back(index);
                        }
                        return Err(format!(
                            "{key}: no room for real server {}: the xdp data plane holds at most {MAX_DESTS} real servers (deleted ones count until their flows end)",
                            d.addr
                        ));
                    };
                    self.slots.insert((key, d.id), s);
                    (s, true)
                }
            };
            let before = self.records.get(&slot);
            // A raised or removed upper threshold clears OVERLOAD at once
            // (__ip_vs_update_dest), by a new epoch.
            let epoch = match before {
                Some(b) if d.u_threshold == 0 || d.u_threshold > b.u_threshold => b.epoch + 1,
                Some(b) => b.epoch,
                None => 0,
            };
            let mut record = DestRecord {
                addr: d.addr,
                fwd: d.fwd,
                port: d.port,
                weight: d.weight,
                u_threshold: d.u_threshold,
                l_threshold: d.l_threshold,
                epoch,
                svc: index,
                tun_src: tun_src.get(&d.id).copied(),
                retired: false,
            };
            if let Some(b) = before
                && b.u_threshold == record.u_threshold
                && b.l_threshold == record.l_threshold
            {
                // Nothing about thresholds changed: no new epoch.
                record.epoch = b.epoch;
            }
            if before != Some(&record) {
                dest_changed = true;
                if !fresh {
                    edited.push(d.id);
                }
                writes.push(Write::Dest {
                    slot,
                    record: record.clone(),
                    fresh,
                });
                self.records.insert(slot, record);
            }
            dests.push((d.id, slot));
        }
        // Real servers gone from the list: their slots retire.
        if let Some(o) = &old {
            for (id, slot) in &o.dests {
                if !dests.iter().any(|(i, _)| i == id) {
                    self.slots.remove(&(key, *id));
                    self.retire(*slot, writes);
                }
            }
        }

        let kind = svc.scheduler.kind();
        let weights: Vec<(DestId, u32)> = svc.dests.iter().map(|d| (d.id, d.weight)).collect();
        let (mw, di) = wrr_constants(weights.iter().map(|(_, w)| *w));
        let flags = if svc.flags.sched1 { SVC_SCHED1 } else { 0 }
            | if svc.flags.sched2 { SVC_SCHED2 } else { 0 };
        let record = SvcRecord {
            sched: sched_number(kind),
            flags,
            wrr_mw: mw.clamp(0, i64::from(u32::MAX)) as u32,
            wrr_di: di.clamp(1, i64::from(u32::MAX)) as u32,
            mh_m: svc.scheduler.lock().buckets().map_or(0, |b| b.len() as u32),
            persist: svc.persistent.unwrap_or(0),
            port: key.port(),
            netmask: crate::records::netmask16(&svc.netmask),
            lblc_expire: opts.lblc_expiration.as_secs().min(u64::from(u32::MAX)) as u32,
            slots: dests.iter().map(|(_, s)| *s).collect(),
        }
        .bytes()
        .to_vec();
        if old.as_ref().map(|o| &o.record) != Some(&record) {
            writes.push(Write::Svc {
                index,
                record: record.clone(),
            });
        }

        // The scheduler's state, as its hooks would leave it.
        match &old {
            Some(o) if o.kind == kind => {
                let ids: Vec<DestId> = dests.iter().map(|(i, _)| *i).collect();
                let old_ids: Vec<DestId> = o.dests.iter().map(|(i, _)| *i).collect();
                if ids != old_ids || dest_changed {
                    let steps = wrr_steps(&o.weights, &weights, &edited);
                    // rr: a removed last pick moves back to the one before it.
                    let mut rr_last = None;
                    for (pos, (id, slot)) in o.dests.iter().enumerate() {
                        if !ids.contains(id) {
                            let before = pos
                                .checked_sub(1)
                                .and_then(|p| dests.get(p))
                                .map_or(0, |(_, s)| s + 1);
                            rr_last = Some((slot + 1, before));
                        }
                    }
                    writes.push(Write::Sched {
                        index,
                        change: SchedChange::Adjust { steps, rr_last },
                    });
                }
            }
            // Another scheduler bound to the list as it is.
            Some(_) => {
                writes.push(Write::ClearLocality { index });
                writes.push(Write::Sched {
                    index,
                    change: SchedChange::Reset(reset_state(&svc_weights(svc), opts), vec![]),
                });
            }
            // A new service: bound to an empty list, then its real servers
            // added one by one, oldest first.
            None => {
                writes.push(Write::ClearLocality { index });
                writes.push(Write::Sched {
                    index,
                    change: SchedChange::Reset(
                        reset_state(&[], opts),
                        wrr_steps(&[], &weights, &[]),
                    ),
                });
            }
        }

        // sh, dh: the table fulcrum-core computed.
        let buckets: Vec<Option<u32>> = svc
            .scheduler
            .lock()
            .buckets()
            .map(<[Option<u32>]>::to_vec)
            .unwrap_or_default();
        let old_buckets = old.as_ref().map(|o| o.buckets.clone()).unwrap_or_default();
        for b in 0..buckets.len().max(old_buckets.len()) {
            let new = buckets.get(b).copied().flatten();
            if old_buckets.get(b).copied().flatten() != new || old.is_none() {
                writes.push(Write::Bucket {
                    index,
                    bucket: b as u32,
                    dest: new,
                });
            }
        }

        if old.is_none() {
            writes.push(Write::Key {
                key,
                index: Some(index),
            });
        }
        self.services.insert(
            key,
            SvcPub {
                index,
                kind,
                dests,
                buckets,
                record,
                weights,
                persist: (svc.persistent.unwrap_or(0), svc.netmask),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_core::{DestSpec, Protocol, ServiceSpec};

    fn key() -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        }
    }

    fn table(kind: SchedulerKind, weights: &[u32]) -> Table {
        let mut t = Table::new();
        t.add_service(ServiceSpec::new(key(), kind)).unwrap();
        for (i, w) in weights.iter().enumerate() {
            let mut d = DestSpec::new(
                format!("10.0.0.{}", i + 1).parse().unwrap(),
                80,
                Forwarding::Masq,
            );
            d.weight = *w;
            t.add_dest(&key(), d).unwrap();
        }
        t
    }

    #[test]
    fn a_second_publication_of_the_same_table_writes_nothing() {
        let t = table(SchedulerKind::Wrr, &[3, 2]);
        let mut l = Layout::new();
        let (w, refused) = l.plan(&t, &|_| None);
        assert!(refused.is_empty());
        assert!(
            w.iter()
                .any(|w| matches!(w, Write::Key { index: Some(0), .. }))
        );
        assert_eq!(
            w.iter().filter(|w| matches!(w, Write::Dest { .. })).count(),
            2
        );
        let (w, _) = l.plan(&t, &|_| None);
        assert_eq!(w, vec![]);
    }

    #[test]
    fn a_deleted_real_server_keeps_its_slot_until_released() {
        let mut t = table(SchedulerKind::Rr, &[1, 1]);
        let mut l = Layout::new();
        l.plan(&t, &|_| None);
        t.delete_dest(&key(), &"10.0.0.1".parse().unwrap(), 80)
            .unwrap();
        let (w, _) = l.plan(&t, &|_| None);
        assert_eq!(l.retired.len(), 1);
        assert!(w.iter().any(|w| matches!(w, Write::Sched { .. })));
        let slot = l.retired[0];
        l.release(slot);
        // The next real server does not get the released slot while fresh
        // numbers remain.
        let mut d = DestSpec::new("10.0.0.9".parse().unwrap(), 80, Forwarding::Masq);
        d.weight = 1;
        t.add_dest(&key(), d).unwrap();
        let (w, _) = l.plan(&t, &|_| None);
        assert!(w.iter().any(|w| matches!(
            w,
            Write::Dest {
                slot: 2,
                fresh: true,
                ..
            }
        )));
    }

    #[test]
    fn what_the_plane_cannot_forward_is_refused_by_name() {
        let mut t = table(SchedulerKind::Wlc, &[1]);
        let mut l = Layout::new();
        let mut d = DestSpec::new("10.0.0.7".parse().unwrap(), 80, Forwarding::TUNNEL);
        d.weight = 1;
        t.add_dest(&key(), d).unwrap();
        let (_, refused) = l.plan(&t, &|_| None);
        assert!(
            refused[0].contains("no route to tunnelled real server 10.0.0.7"),
            "{refused:?}"
        );
        let (_, refused) = l.plan(&t, &|_| Some("10.0.0.254".parse().unwrap()));
        assert!(refused.is_empty(), "{refused:?}");
        // GUE without a checksum goes; with one, or GRE, is refused.
        let tunnel = |kind, csum| Forwarding::Tunnel {
            kind,
            port: 6080,
            csum,
        };
        use fulcrum_core::{TunnelCsum, TunnelType};
        let mut d = DestSpec::new(
            "10.0.0.8".parse().unwrap(),
            80,
            tunnel(TunnelType::Gue, TunnelCsum::NoCsum),
        );
        d.weight = 1;
        t.add_dest(&key(), d).unwrap();
        let (_, refused) = l.plan(&t, &|_| Some("10.0.0.254".parse().unwrap()));
        assert!(refused.is_empty(), "{refused:?}");
        for (addr, kind, csum, why) in [
            (
                "10.0.0.9",
                TunnelType::Gue,
                TunnelCsum::Csum,
                "gue with a checksum",
            ),
            (
                "10.0.0.10",
                TunnelType::Gre,
                TunnelCsum::NoCsum,
                "tunnelled by gre",
            ),
        ] {
            let mut t = table(SchedulerKind::Wlc, &[1]);
            let mut d = DestSpec::new(addr.parse().unwrap(), 80, tunnel(kind, csum));
            d.weight = 1;
            t.add_dest(&key(), d).unwrap();
            let (_, refused) = Layout::new().plan(&t, &|_| Some("10.0.0.254".parse().unwrap()));
            assert!(refused[0].contains(why), "{refused:?}");
        }
    }

    #[test]
    fn wrr_state_follows_the_kernel_update_hook() {
        let mut s = SchedState {
            wrr_cw: 7,
            wrr_cl: 2,
            rr_last: 0,
            rng: 0,
        };
        adjust_wrr(&mut s, 4, 1);
        assert_eq!((s.wrr_cw, s.wrr_cl), (4, -1));
        s.wrr_cw = 5;
        adjust_wrr(&mut s, 10, 2);
        assert_eq!(s.wrr_cw, 5);
        s.wrr_cw = 4;
        adjust_wrr(&mut s, 10, 2);
        assert_eq!(s.wrr_cw, 5);
    }
}

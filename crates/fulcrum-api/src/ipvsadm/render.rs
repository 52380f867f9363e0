//! ipvsadm's listings, byte for byte (`print_title`, `print_service_entry`,
//! `print_conn`, `print_largenum`, `list_timeout`, `list_daemon`).

use std::fmt::Write as _;
use std::net::IpAddr;

use fulcrum_core::estimator::{Counters, Rates};
use fulcrum_core::{
    Family, Forwarding, Netmask, Protocol, SchedFlags, Service, ServiceKey, TunnelCsum, TunnelType,
};

use super::parse::Format;
use super::resolve::Resolver;
pub use fulcrum_core::conn::ConnEntry;
use fulcrum_core::{SyncDaemon, SyncRole};

/// The first line of `-L`: the IPVS version and the size of the
/// connection table (`ipvs_getinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// `(major << 16) | (minor << 8) | patch`.
    pub version: u32,
    /// Connection table size.
    pub size: u32,
}

impl Default for Header {
    /// `IP_VS_VERSION_CODE` 0x010201 and the default table size.
    fn default() -> Header {
        Header {
            version: 0x0001_0201,
            size: 4096,
        }
    }
}

/// A service as a listing sees it (`ipvs_service_entry_t`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceEntry {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler name.
    pub scheduler: String,
    /// Scheduler flags.
    pub flags: SchedFlags,
    /// Persistence timeout.
    pub persistent: Option<u32>,
    /// Persistence mask.
    pub netmask: Netmask,
    /// One-packet scheduling.
    pub one_packet: bool,
    /// Persistence engine.
    pub pe_name: Option<String>,
    /// Counters.
    pub counters: Counters,
    /// Rates.
    pub rates: Rates,
    /// Dests, in table order.
    pub dests: Vec<DestEntry>,
}

/// A dest as a listing sees it (`ipvs_dest_entry_t`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs, reason = "fields mirror ipvs_dest_entry_t")]
pub struct DestEntry {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: Forwarding,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub activeconns: u32,
    pub inactconns: u32,
    pub persistconns: u32,
    pub counters: Counters,
    pub rates: Rates,
}

impl ServiceEntry {
    /// The listing view of a table service.
    pub fn from_service(s: &Service) -> ServiceEntry {
        ServiceEntry {
            key: s.key,
            scheduler: s.scheduler.kind().name().to_string(),
            flags: s.flags,
            persistent: s.persistent,
            netmask: s.netmask,
            one_packet: s.one_packet,
            pe_name: s.pe_name.clone(),
            counters: s.stats.counters,
            rates: s.stats.est.rates(),
            dests: s
                .dests
                .iter()
                .map(|d| DestEntry {
                    addr: d.addr,
                    port: d.port,
                    fwd: d.fwd,
                    weight: d.weight,
                    u_threshold: d.u_threshold,
                    l_threshold: d.l_threshold,
                    activeconns: d.activeconns,
                    inactconns: d.inactconns,
                    persistconns: d.persistconns,
                    counters: d.stats.counters,
                    rates: d.stats.est.rates(),
                })
                .collect(),
        }
    }

    fn protocol(&self) -> Protocol {
        match self.key {
            ServiceKey::Addr { proto, .. } => proto,
            // ipvsadm sets TCP on fwmark services "to a sane value".
            ServiceKey::Fwmark { .. } => Protocol::Tcp,
        }
    }
}

/// `print_largenum`: K/M/G/T scaling, or `--exact`.
pub fn print_largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = match i {
        _ if i < 100_000_000 => write!(out, "{i:>9}"),
        _ if i < 1_000_000_000 => write!(out, "{:>8}K", i / 1000),
        _ if i < 100_000_000_000 => write!(out, "{:>8}M", i / 1_000_000),
        _ if i < 100_000_000_000_000 => write!(out, "{:>8}G", i / 1_000_000_000),
        _ => write!(out, "{:>8}T", i / 1_000_000_000_000),
    };
}

fn print_title(out: &mut String, f: &Format) {
    let row = |out: &mut String, cols: [&str; 5]| {
        let _ = write!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", cols[0], cols[1], cols[2], cols[3], cols[4]
        );
    };
    if f.stats {
        row(out, ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]);
    } else if f.rate {
        row(out, ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]);
    } else if f.thresholds {
        let _ = write!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        );
    } else if f.persistent_conn {
        let _ = write!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        );
    } else if f.tun_info {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n");
    } else if !f.rule {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    }
}

/// `addrport_to_anyname` (into a 60-byte buffer, so at most 59 characters).
fn addrport(
    addr: &IpAddr,
    port: u16,
    proto: Option<Protocol>,
    f: &Format,
    r: &dyn Resolver,
) -> String {
    let (l, rb) = if matches!(addr, IpAddr::V4(_)) {
        ("", "")
    } else {
        ("[", "]")
    };
    let mut s = if f.numeric {
        format!("{l}{addr}{rb}:{port}")
    } else {
        let host = r.addr_to_host(addr).unwrap_or_else(|| addr.to_string());
        let serv = proto
            .and_then(|p| r.port_to_service(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{l}{host}{rb}:{serv}")
    };
    truncate(&mut s, 59);
    s
}

fn truncate(s: &mut String, n: usize) {
    if s.len() > n {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn sched_flags(e: &ServiceEntry) -> String {
    let names: [&str; 3] = match e.scheduler.as_str() {
        "sh" => ["sh-fallback", "sh-port", ""],
        "mh" => ["mh-fallback", "mh-port", ""],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    let set = [e.flags.sched1, e.flags.sched2, e.flags.sched3];
    names
        .iter()
        .zip(set)
        .filter(|(n, s)| *s && !n.is_empty())
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn mask_text(m: &Netmask) -> Option<String> {
    match m {
        Netmask::V4(u32::MAX) | Netmask::V6(128) => None,
        Netmask::V4(v) => Some(std::net::Ipv4Addr::from(*v).to_string()),
        Netmask::V6(p) => Some(p.to_string()),
    }
}

fn tun_info(fwd: &Forwarding) -> Option<String> {
    let csum = |c: &TunnelCsum| match c {
        TunnelCsum::NoCsum => "-c",
        TunnelCsum::Csum => "+c",
        TunnelCsum::RemCsum => "r+c",
    };
    match fwd {
        Forwarding::Tunnel {
            kind: TunnelType::Ipip,
            ..
        } => Some("ipip".into()),
        Forwarding::Tunnel {
            kind: TunnelType::Gue,
            port,
            csum: c,
        } => Some(format!("gue:{port}:{}", csum(c))),
        Forwarding::Tunnel {
            kind: TunnelType::Gre,
            csum: c,
            ..
        } => Some(format!("gre:{}", csum(c))),
        _ => None,
    }
}

fn fwd_switch(fwd: &Forwarding) -> &'static str {
    match fwd {
        Forwarding::Masq => "-m",
        Forwarding::Tunnel { .. } => "-i",
        Forwarding::Local | Forwarding::Route => "-g",
    }
}

fn print_service_entry(out: &mut String, e: &ServiceEntry, f: &Format, r: &dyn Resolver) {
    let proto = e.protocol();
    let svc_name = match e.key {
        // ipvsadm 1.31 (the release Debian ships) prints marks with %d.
        ServiceKey::Fwmark { mark, family } => {
            let m = mark as i32;
            match (f.rule, family) {
                (true, Family::V6) => format!("-f {m} -6"),
                (true, Family::V4) => format!("-f {m}"),
                (false, Family::V6) => format!("FWM  {m} IPv6"),
                (false, Family::V4) => format!("FWM  {m}"),
            }
        }
        ServiceKey::Addr { proto, addr, port } => {
            let vname = addrport(&addr, port, Some(proto), f, r);
            if f.rule {
                let stype = match proto {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                format!("{stype} {vname}")
            } else {
                let mut s = format!("{:<4} {vname}", proto.name());
                if addr.is_ipv4() {
                    truncate(&mut s, 33);
                }
                s
            }
        }
    };

    if f.rule {
        let _ = write!(out, "-A {svc_name} -s {}", e.scheduler);
        if let Some(t) = e.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = mask_text(&e.netmask) {
                let _ = write!(out, " -M {m}");
            }
        }
        if let Some(pe) = &e.pe_name {
            let _ = write!(out, " --pe {pe}");
        }
        if e.one_packet {
            out.push_str(" -o");
        }
        if e.flags.any() {
            let _ = write!(out, " -b {}", sched_flags(e));
        }
    } else if f.stats || f.rate {
        let _ = write!(out, "{svc_name:<33}");
        let c = &e.counters;
        let rt = &e.rates;
        let vals = if f.stats {
            [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes]
        } else {
            [rt.cps, rt.inpps, rt.outpps, rt.inbps, rt.outbps]
        };
        for v in vals {
            print_largenum(out, v, f.exact);
        }
    } else {
        let _ = write!(out, "{svc_name} {}", e.scheduler);
        if e.flags.any() {
            let _ = write!(out, " ({})", sched_flags(e));
        }
        if let Some(t) = e.persistent {
            let _ = write!(out, " persistent {t}");
            if let Some(m) = mask_text(&e.netmask) {
                let _ = write!(out, " mask {m}");
            }
            if let Some(pe) = &e.pe_name {
                let _ = write!(out, " pe {pe}");
            }
        }
        if e.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut dests: Vec<&DestEntry> = e.dests.iter().collect();
    if !f.nosort {
        glibc_msort(&mut dests, &|a: &&DestEntry, b: &&DestEntry| {
            cmp_dests(a, b)
        });
    }
    for d in dests {
        let mut dname = addrport(&d.addr, d.port, Some(proto), f, r);
        if !f.rule && d.addr.is_ipv4() {
            truncate(&mut dname, 28);
        }
        if f.rule {
            let _ = write!(
                out,
                "-a {svc_name} -r {dname} {} -w {}",
                fwd_switch(&d.fwd),
                d.weight
            );
            match d.fwd {
                Forwarding::Tunnel {
                    kind: TunnelType::Ipip,
                    ..
                } => {
                    out.push_str(" --tun-type ipip");
                }
                Forwarding::Tunnel {
                    kind: TunnelType::Gue,
                    port,
                    csum,
                } => {
                    let _ = write!(out, " --tun-type gue --tun-port {port} {}", csum_opt(&csum));
                }
                Forwarding::Tunnel {
                    kind: TunnelType::Gre,
                    csum,
                    ..
                } => {
                    let _ = write!(out, " --tun-type gre {}", csum_opt(&csum));
                }
                _ => {}
            }
            out.push('\n');
        } else if f.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let c = &d.counters;
            for v in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
                print_largenum(out, v, f.exact);
            }
            out.push('\n');
        } else if f.rate {
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                d.rates.cps, d.rates.inpps, d.rates.outpps
            );
            print_largenum(out, d.rates.inbps, f.exact);
            print_largenum(out, d.rates.outbps, f.exact);
            out.push('\n');
        } else if f.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_threshold, d.l_threshold, d.activeconns, d.inactconns
            );
        } else if f.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, d.persistconns, d.activeconns, d.inactconns
            );
        } else if f.tun_info {
            let ti = tun_info(&d.fwd).unwrap_or_else(|| "n/a".into());
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
                d.fwd.name(),
                d.weight,
                d.activeconns,
                d.inactconns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.fwd.name(),
                d.weight,
                d.activeconns,
                d.inactconns
            );
        }
    }
}

fn csum_opt(c: &TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "--tun-nocsum",
        TunnelCsum::Csum => "--tun-csum",
        TunnelCsum::RemCsum => "--tun-remcsum",
    }
}

/// libipvs compares with `int r = a - b` on unsigned values: the sign of the
/// wrapped 32-bit difference.
fn wrap(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn words(a: &IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v) => [u32::from(*v), 0, 0, 0],
        IpAddr::V6(v) => {
            let o = v.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

fn cmp_addr(v6: bool, a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    if v6 {
        for i in 0..4 {
            let r = wrap(wa[i], wb[i]);
            if r != 0 {
                return r;
            }
        }
        0
    } else {
        wrap(wa[0], wb[0])
    }
}

/// `ipvs_cmp_services`.
fn cmp_services(a: &ServiceEntry, b: &ServiceEntry) -> i32 {
    let r = wrap(a.key.fwmark(), b.key.fwmark());
    if r != 0 {
        return r;
    }
    let (fa, fb) = (a.key.family(), b.key.family());
    let r = i32::from(fa.af()) - i32::from(fb.af());
    if r != 0 {
        return r;
    }
    let r = i32::from(a.protocol().number()) - i32::from(b.protocol().number());
    if r != 0 {
        return r;
    }
    let zero = IpAddr::V4(0.into());
    let addr = |e: &ServiceEntry| match e.key {
        ServiceKey::Addr { addr, .. } => addr,
        ServiceKey::Fwmark { .. } => zero,
    };
    let r = cmp_addr(fa == Family::V6, &addr(a), &addr(b));
    if r != 0 {
        return r;
    }
    i32::from(a.key.port()) - i32::from(b.key.port())
}

/// `ipvs_cmp_dests`.
fn cmp_dests(a: &DestEntry, b: &DestEntry) -> i32 {
    let r = cmp_addr(a.addr.is_ipv6(), &a.addr, &b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// glibc's `qsort` for these sizes: a top-down merge sort taking from the
/// left run while `cmp <= 0`. Reproduced so that even the non-transitive
/// libipvs comparators order entries exactly as ipvsadm does.
fn glibc_msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut v[..n1], cmp);
    glibc_msort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// Sort services (and each one's dests) as ipvsadm does before printing.
pub fn sort_entries(entries: &mut [ServiceEntry]) {
    glibc_msort(entries, &cmp_services);
}

/// `-L`/`-S` output for services. With `header` the version line comes
/// first (`list_all` prints it, `list_service` does not; `-S` never does).
pub fn render_list(
    entries: &[ServiceEntry],
    f: &Format,
    header: Option<Header>,
    r: &dyn Resolver,
) -> String {
    let mut out = String::new();
    if let Some(h) = header.filter(|_| !f.rule) {
        let v = h.version;
        let _ = writeln!(
            out,
            "IP Virtual Server version {}.{}.{} (size={})",
            v >> 16,
            (v >> 8) & 0xff,
            v & 0xff,
            h.size
        );
    }
    let mut v: Vec<ServiceEntry> = entries.to_vec();
    if !f.nosort {
        sort_entries(&mut v);
    }
    print_title(&mut out, f);
    for e in &v {
        print_service_entry(&mut out, e, f, r);
    }
    out
}

/// `-L -c`: the connection table.
pub fn render_conns(conns: &[ConnEntry], f: &Format, r: &dyn Resolver) -> String {
    let mut out = String::from("IPVS connection entries\n");
    // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" (with the PE columns)
    // or "pro expire %-11s %-18s %-18s %s\n", filled with the titles.
    if f.persistent_conn {
        out.push_str("pro expire state       source             virtual            destination        pe name          pe_data\n");
    } else {
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    for c in conns {
        let proto = match c.proto.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        };
        let cname = addrport(&c.caddr, c.cport, proto, f, r);
        let vname = addrport(&c.vaddr, c.vport, proto, f, r);
        let dname = addrport(&c.daddr, c.dport, proto, f, r);
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        match (&c.pe, f.persistent_conn) {
            (Some((name, data)), true) => {
                let _ = writeln!(
                    out,
                    "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {name:<18} {data}",
                    c.proto, c.state
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}",
                    c.proto, c.state
                );
            }
        }
    }
    out
}

/// `--timeout`.
pub fn render_timeout(tcp: u64, tcpfin: u64, udp: u64) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

/// `--daemon`: master first, then backup.
pub fn render_daemons(daemons: &[SyncDaemon]) -> String {
    let mut out = String::new();
    for want in [SyncRole::Master, SyncRole::Backup] {
        for d in daemons.iter().filter(|d| d.role == want) {
            let role = if want == SyncRole::Master {
                "master"
            } else {
                "backup"
            };
            let _ = write!(
                out,
                "{role} sync daemon (mcast={}, syncid={}",
                d.mcast_ifn, d.syncid
            );
            if d.sync_maxlen != 0 {
                let _ = write!(out, ", maxlen={}", d.sync_maxlen);
            }
            if let Some(g) = d.mcast_group {
                let _ = write!(out, ", group={g}");
            }
            if d.mcast_port != 0 {
                let _ = write!(out, ", port={}", d.mcast_port);
            }
            if d.mcast_ttl != 0 {
                let _ = write!(out, ", ttl={}", d.mcast_ttl);
            }
            out.push_str(")\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_scaling() {
        let cases: [(u64, &str); 6] = [
            (99_999_999, " 99999999"),
            (100_000_000, "  100000K"),
            (999_999_999, "  999999K"),
            (1_000_000_000, "    1000M"),
            (123_456_789_012_345, "     123T"),
            (99_999_999_999_999, "   99999G"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            print_largenum(&mut s, v, false);
            assert_eq!(s, want, "{v}");
        }
        let mut s = String::new();
        print_largenum(&mut s, 5, true);
        print_largenum(&mut s, 1_234_567_890, true);
        assert_eq!(s, "        5 1234567890");
    }

    #[test]
    fn sorting_wraps_like_libipvs() {
        // 10.0.0.1 - 192.168.0.1 wraps to a positive int: 10/8 sorts after.
        assert!(wrap(0x0A00_0001, 0xC0A8_0001) > 0);
        let mut v = vec![0x0A00_0001u32, 0xC0A8_0001, 0x0A00_0002];
        glibc_msort(&mut v, &|a: &u32, b: &u32| wrap(*a, *b));
        assert_eq!(v, vec![0xC0A8_0001, 0x0A00_0001, 0x0A00_0002]);
    }
}

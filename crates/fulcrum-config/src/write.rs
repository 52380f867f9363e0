//! The writer: [`Config`] back to lvs.cf text, in the layout piranha
//! generates. `parse(write(c)) == c` for every configuration that validates.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::*;

/// A value as lvs.cf writes it: bare when it can be, else quoted with
/// escapes.
pub(crate) fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !"#\"{}\\".contains(c));
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn bool01(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn addr_dev(a: &AddrDev) -> String {
    match &a.dev {
        Some(d) => format!("{} {d}", a.addr),
        None => a.addr.to_string(),
    }
}

fn host_port(h: &HostPort) -> String {
    match (h.addr, h.port) {
        (a, None) => a.to_string(),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
    }
}

fn load_monitor(m: &LoadMonitor) -> String {
    match m {
        LoadMonitor::None => "none".into(),
        LoadMonitor::Uptime => "uptime".into(),
        LoadMonitor::Rup => "rup".into(),
        LoadMonitor::Ruptime => "ruptime".into(),
        LoadMonitor::Agent => "agent".into(),
        LoadMonitor::Program(p) => quote(p),
    }
}

struct Out {
    s: String,
    indent: usize,
}

impl Out {
    fn kv(&mut self, k: &str, v: Option<String>) {
        if let Some(v) = v {
            let _ = writeln!(self.s, "{}{k} = {v}", "\t".repeat(self.indent));
        }
    }
}

/// Write a configuration as lvs.cf text.
pub fn write(cfg: &Config) -> String {
    let mut o = Out {
        s: String::new(),
        indent: 0,
    };
    let g = &cfg.global;
    o.kv("serial_no", g.serial_no.map(|v| v.to_string()));
    o.kv("primary", g.primary.as_ref().map(|h| quote(&h.to_string())));
    o.kv(
        "primary_private",
        g.primary_private.as_ref().map(|h| quote(&h.to_string())),
    );
    o.kv("primary_shared", g.primary_shared.as_deref().map(quote));
    o.kv("backup", g.backup.as_ref().map(|h| quote(&h.to_string())));
    o.kv(
        "backup_private",
        g.backup_private.as_ref().map(|h| quote(&h.to_string())),
    );
    o.kv("backup_shared", g.backup_shared.as_deref().map(quote));
    o.kv("backup_active", g.backup_active.map(|b| bool01(b).into()));
    o.kv("heartbeat", g.heartbeat.map(|b| bool01(b).into()));
    o.kv("heartbeat_port", g.heartbeat_port.map(|v| v.to_string()));
    o.kv("keepalive", g.keepalive.map(|v| v.to_string()));
    o.kv("deadtime", g.deadtime.map(|v| v.to_string()));
    o.kv(
        "rsh_command",
        g.rsh_command.map(|r| match r {
            RshCommand::Rsh => "rsh".into(),
            RshCommand::Ssh => "ssh".into(),
        }),
    );
    o.kv("network", g.network.map(|r| r.name().into()));
    o.kv("nat_router", g.nat_router.as_ref().map(addr_dev));
    o.kv("nat_nmask", g.nat_nmask.map(|m| m.to_string()));
    o.kv(
        "reservation_conflict_action",
        g.reservation_conflict_action.as_deref().map(quote),
    );
    o.kv("debug_level", g.debug_level.as_deref().map(quote));
    o.kv("sync", g.sync.map(|b| bool01(b).into()));
    o.kv("ipvsadm", g.ipvsadm.as_deref().map(quote));
    o.kv("active_cmd", g.active_cmd.as_deref().map(quote));
    o.kv("inactive_cmd", g.inactive_cmd.as_deref().map(quote));
    o.kv("monitor_links", g.monitor_links.map(|b| bool01(b).into()));
    o.kv("hard_shutdown", g.hard_shutdown.map(|b| bool01(b).into()));
    o.kv("syncdaemon", g.syncdaemon.map(|b| bool01(b).into()));
    o.kv("syncd_iface", g.syncd_iface.as_deref().map(quote));
    o.kv("syncd_id", g.syncd_id.map(|v| v.to_string()));
    o.kv("syncd_role", g.syncd_role.map(|r| r.name().into()));
    o.kv("syncd_maxlen", g.syncd_maxlen.map(|v| v.to_string()));
    o.kv("syncd_group", g.syncd_group.map(|v| v.to_string()));
    o.kv("syncd_port", g.syncd_port.map(|v| v.to_string()));
    o.kv("syncd_ttl", g.syncd_ttl.map(|v| v.to_string()));
    o.kv("syncd_auth", g.syncd_auth.map(|b| bool01(b).into()));
    o.kv("tcp_timeout", g.tcp_timeout.map(|v| v.to_string()));
    o.kv("tcpfin_timeout", g.tcpfin_timeout.map(|v| v.to_string()));
    o.kv("udp_timeout", g.udp_timeout.map(|v| v.to_string()));
    o.kv("max_connections", g.max_connections.map(|v| v.to_string()));
    o.kv("drain_timeout", g.drain_timeout.map(|v| v.to_string()));
    o.kv("dataplane", g.dataplane.map(|d| d.name().into()));
    o.kv("user", g.user.as_deref().map(quote));
    o.kv("priority", g.priority.map(|v| v.to_string()));
    o.kv("preempt", g.preempt.map(|b| bool01(b).into()));
    o.kv("nice_failback", g.nice_failback.map(|b| bool01(b).into()));
    o.kv("preempt_delay", g.preempt_delay.map(|v| v.to_string()));
    o.kv(
        "vrrp_version",
        g.vrrp_version.map(|v| match v {
            VrrpVersion::V2 => "2".into(),
            VrrpVersion::V3 => "3".into(),
        }),
    );
    o.kv(
        "virtual_router_id",
        g.virtual_router_id.map(|v| v.to_string()),
    );
    for p in &g.peer {
        o.kv("peer", Some(p.to_string()));
    }
    o.kv("auth_key_file", g.auth_key_file.as_deref().map(quote));
    o.kv("notify_script", g.notify_script.as_deref().map(quote));
    o.kv("garp_count", g.garp_count.map(|v| v.to_string()));
    o.kv("garp_delay", g.garp_delay.map(|v| v.to_string()));
    for p in &g.ping_node {
        o.kv("ping_node", Some(p.to_string()));
    }
    for m in &g.notify_email {
        o.kv("notify_email", Some(m.clone()));
    }
    o.kv("notify_email_from", g.notify_email_from.clone());
    o.kv("smtp_server", g.smtp_server.as_ref().map(host_port));
    o.kv("vrrp_multicast", g.vrrp_multicast.map(|b| bool01(b).into()));
    o.kv("console", g.console.as_ref().map(host_port));
    o.kv("console_users", g.console_users.as_deref().map(quote));
    o.kv("console_tls_cert", g.console_tls_cert.as_deref().map(quote));
    o.kv("console_tls_key", g.console_tls_key.as_deref().map(quote));

    for v in &cfg.virtuals {
        let _ = writeln!(o.s, "\nvirtual {} {{", v.name);
        o.indent = 1;
        o.kv("address", v.address.as_ref().map(addr_dev));
        o.kv("active", v.active.map(|b| bool01(b).into()));
        o.kv("vip_nmask", v.vip_nmask.map(|m| m.to_string()));
        o.kv("sorry_server", v.sorry_server.as_ref().map(host_port));
        o.kv("fwmark", v.fwmark.map(|m| m.to_string()));
        o.kv("protocol", v.protocol.map(|p| p.to_string()));
        o.kv("port", v.port.map(|p| p.to_string()));
        o.kv("scheduler", v.scheduler.map(|s| s.name().into()));
        if !v.sched_flags.is_empty() {
            let f: Vec<&str> = v.sched_flags.iter().map(|f| f.name()).collect();
            o.kv("sched_flags", Some(f.join(",")));
        }
        o.kv("persistent", v.persistent.map(|p| p.to_string()));
        o.kv(
            "pmask",
            v.pmask.map(|m| match m {
                Pmask::V4(a) => a.to_string(),
                Pmask::V6(p) => p.to_string(),
            }),
        );
        o.kv("one_packet", v.one_packet.map(|b| bool01(b).into()));
        o.kv("transparent", v.transparent.map(|b| bool01(b).into()));
        o.kv("forwarding", v.forwarding.map(|r| r.name().into()));
        tunnel(&mut o, &v.tunnel);
        o.kv("send", v.send.as_deref().map(quote));
        o.kv("expect", v.expect.as_deref().map(quote));
        o.kv("use_regex", v.use_regex.map(|b| bool01(b).into()));
        o.kv("send_program", v.send_program.as_deref().map(quote));
        o.kv("load_monitor", v.load_monitor.as_ref().map(load_monitor));
        o.kv("timeout", v.timeout.map(|s| s.to_string()));
        o.kv("reentry", v.reentry.map(|s| s.to_string()));
        o.kv("quiesce_server", v.quiesce_server.map(|b| bool01(b).into()));
        o.kv("checktype", v.checktype.map(|c| c.name().into()));
        o.kv("check_interval", v.check_interval.map(|s| s.to_string()));
        o.kv("rise", v.rise.map(|r| r.to_string()));
        o.kv("fall", v.fall.map(|f| f.to_string()));
        o.kv("agent_port", v.agent_port.map(|p| p.to_string()));
        o.kv("misc_dynamic", v.misc_dynamic.map(|b| bool01(b).into()));
        o.kv("load_interval", v.load_interval.map(|s| s.to_string()));
        o.kv("max_connections", v.max_connections.map(|v| v.to_string()));
        o.kv("request", v.request.clone());
        o.kv("receive", v.receive.as_deref().map(quote));
        o.kv("digest", v.digest.clone());
        o.kv("status_code", v.status_code.as_ref().map(|s| s.to_string()));
        o.kv("virtualhost", v.virtualhost.clone());
        o.kv("tls_ca", v.tls_ca.as_deref().map(quote));
        o.kv("client_monitor", v.client_monitor.as_deref().map(quote));
        o.kv("master", v.master.as_deref().map(quote));
        o.kv("dirs", v.dirs.as_deref().map(quote));
        for s in &v.servers {
            let _ = writeln!(o.s, "\n\tserver {} {{", s.name);
            o.indent = 2;
            o.kv("address", s.address.map(|a| a.to_string()));
            o.kv("active", s.active.map(|b| bool01(b).into()));
            o.kv("weight", s.weight.map(|w| w.to_string()));
            o.kv("port", s.port.map(|p| p.to_string()));
            o.kv("forwarding", s.forwarding.map(|r| r.name().into()));
            tunnel(&mut o, &s.tunnel);
            o.kv("uthreshold", s.uthreshold.map(|t| t.to_string()));
            o.kv("lthreshold", s.lthreshold.map(|t| t.to_string()));
            o.kv("proxy_protocol", s.proxy_protocol.map(|p| p.name().into()));
            o.kv("checktype", s.checktype.map(|c| c.name().into()));
            o.indent = 1;
            o.s.push_str("\t}\n");
        }
        o.indent = 0;
        o.s.push_str("}\n");
    }
    o.s
}

fn tunnel(o: &mut Out, t: &TunnelKeys) {
    o.kv("tunnel_type", t.kind.map(|k| k.name().into()));
    o.kv("tunnel_port", t.port.map(|p| p.to_string()));
    o.kv(
        "tunnel_checksum",
        t.checksum.map(|c| {
            match c {
                fulcrum_core::TunnelCsum::NoCsum => "none",
                fulcrum_core::TunnelCsum::Csum => "csum",
                fulcrum_core::TunnelCsum::RemCsum => "remcsum",
            }
            .into()
        }),
    );
}

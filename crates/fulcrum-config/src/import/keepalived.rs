//! keepalived.conf → lvs.cf.

use std::collections::HashMap;

use super::{Imported, Note, Out, ServerOut, VirtualOut, host_port, value};

/// A statement: its words, its line, and its block if it has one.
#[derive(Debug, Clone)]
struct Node {
    words: Vec<String>,
    line: usize,
    block: Option<Vec<Node>>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

/// Words, braces and quoted strings with their lines; `!` and `#` start
/// comments.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        let mut chars = line.chars().peekable();
        let mut word = String::new();
        let flush = |w: &mut String, out: &mut Vec<(Tok, usize)>| {
            if !w.is_empty() {
                out.push((Tok::Word(std::mem::take(w)), n));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '!' | '#' if word.is_empty() => break,
                '"' => {
                    flush(&mut word, &mut out);
                    let mut q = String::new();
                    for c in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        q.push(c);
                    }
                    out.push((Tok::Word(q), n));
                }
                '{' => {
                    flush(&mut word, &mut out);
                    out.push((Tok::Open, n));
                }
                '}' => {
                    flush(&mut word, &mut out);
                    out.push((Tok::Close, n));
                }
                c if c.is_whitespace() => flush(&mut word, &mut out),
                c => word.push(c),
            }
        }
        flush(&mut word, &mut out);
    }
    out
}

/// Statements from tokens: a statement's words are on one line; a `{`
/// (on that line or the next) opens its block.
/// The statements up to the `}` that closes the block (`true`), or to the
/// end.
fn tree(toks: &[(Tok, usize)], pos: &mut usize, notes: &mut Vec<Note>) -> (Vec<Node>, bool) {
    let mut nodes: Vec<Node> = Vec::new();
    while *pos < toks.len() {
        match &toks[*pos] {
            (Tok::Close, _) => {
                *pos += 1;
                return (nodes, true);
            }
            (Tok::Open, line) => {
                let line = *line;
                *pos += 1;
                let (block, closed) = tree(toks, pos, notes);
                if !closed {
                    notes.push(Note {
                        line,
                        message: "this `{` is never closed: the file may be cut short".into(),
                    });
                }
                match nodes.last_mut() {
                    Some(last) if last.block.is_none() => last.block = Some(block),
                    _ => notes.push(Note {
                        line,
                        message: "a `{` with no statement before it: its block is skipped".into(),
                    }),
                }
            }
            (Tok::Word(_), line) => {
                let line = *line;
                let mut words = Vec::new();
                while let Some((Tok::Word(w), l)) = toks.get(*pos) {
                    if *l != line {
                        break;
                    }
                    words.push(w.clone());
                    *pos += 1;
                }
                nodes.push(Node {
                    words,
                    line,
                    block: None,
                });
            }
        }
    }
    (nodes, false)
}

struct Ctx {
    notes: Vec<Note>,
}

impl Ctx {
    fn note(&mut self, n: &Node, message: impl Into<String>) {
        self.notes.push(Note {
            line: n.line,
            message: message.into(),
        });
    }

    fn ignored(&mut self, n: &Node, why: &str) {
        let what = n.words.join(" ");
        self.note(n, format!("`{what}`: {why}"));
    }
}

/// A virtual address of the VRRP instance: the address and its device
/// (`label` when given, as lvs.cf writes `eth0:1`).
#[derive(Debug, Clone)]
struct Vip {
    addr: String,
    dev: Option<String>,
    line: usize,
    used: bool,
}

/// What a real server's checker says, as lvs.cf keys of its virtual
/// server (`checktype` may also go on the server).
#[derive(Debug, Clone, Default, PartialEq)]
struct Check {
    checktype: Option<&'static str>,
    keys: Vec<(String, String)>,
}

fn check_of(n: &Node, port: &str, cx: &mut Ctx) -> Option<Check> {
    let kind = match n.key() {
        "TCP_CHECK" => "connect",
        "HTTP_GET" => "http_get",
        "SSL_GET" => "https_get",
        "MISC_CHECK" => "external",
        "SMTP_CHECK" => "smtp",
        "DNS_CHECK" => "dns",
        "PING_CHECK" => "ping",
        "UDP_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
            cx.ignored(
                n,
                "no equivalent check in lvs.cf; the real server is checked with a connect check",
            );
            "connect"
        }
        _ => return None,
    };
    let mut c = Check {
        checktype: Some(kind),
        keys: Vec::new(),
    };
    let mut urls = 0;
    for s in n.children() {
        let a1 = s.arg(1).unwrap_or_default().to_string();
        match s.key() {
            "connect_timeout" | "misc_timeout" => c.keys.push(("timeout".into(), value(&a1))),
            "retry" | "nb_get_retry" => {
                let n = a1.parse::<u32>().unwrap_or(1).max(1);
                c.keys.push(("fall".into(), n.to_string()));
            }
            "connect_port" if a1 != port => cx.ignored(
                s,
                "lvs.cf checks a real server on its own port; check this port with an external check (`send_program`)",
            ),
            "connect_port" => {}
            "misc_path" => c.keys.push(("send_program".into(), value(&a1))),
            "misc_dynamic" => c.keys.push(("misc_dynamic".into(), "1".into())),
            "url" => {
                urls += 1;
                if urls > 1 {
                    cx.ignored(s, "lvs.cf checks one URL per virtual server; the first is kept");
                    continue;
                }
                for u in s.children() {
                    let v = u.arg(1).unwrap_or_default();
                    match u.key() {
                        "path" => c.keys.push(("request".into(), value(v))),
                        "digest" => c.keys.push(("digest".into(), value(v))),
                        "status_code" => c.keys.push(("status_code".into(), value(v))),
                        "virtualhost" => c.keys.push(("virtualhost".into(), value(v))),
                        _ => cx.ignored(u, "no equivalent in lvs.cf's HTTP check; left out"),
                    }
                }
            }
            "delay_before_retry" | "warmup" | "bindto" | "bind_port" | "user" | "helo_name"
            | "fwmark" | "connect_ip" => cx.ignored(
                s,
                "no equivalent in lvs.cf (checks run every `check_interval`); left out",
            ),
            _ => cx.ignored(s, "not understood; left out"),
        }
    }
    Some(c)
}

/// keepalived's address range `192.168.200.3-10` (the last part of an IPv4
/// address): every address of it; anything else as it is.
fn expand_range(a: &str) -> Vec<String> {
    let range = a.rsplit_once('.').and_then(|(net, last)| {
        let (lo, hi) = last.split_once('-')?;
        let (lo, hi) = (lo.parse::<u8>().ok()?, hi.parse::<u8>().ok()?);
        (lo <= hi && format!("{net}.0").parse::<std::net::Ipv4Addr>().is_ok())
            .then(|| (lo..=hi).map(|x| format!("{net}.{x}")).collect())
    });
    range.unwrap_or_else(|| vec![a.to_string()])
}

fn forwarding(kind: &str) -> Option<&'static str> {
    match kind.to_ascii_uppercase().as_str() {
        "NAT" => Some("nat"),
        "DR" => Some("direct"),
        "TUN" => Some("tunnel"),
        _ => None,
    }
}

/// Import a keepalived.conf.
pub fn keepalived(src: &str) -> Imported {
    let mut cx = Ctx { notes: Vec::new() };
    let toks = tokens(src);
    let mut pos = 0;
    let mut nodes = Vec::new();
    loop {
        let (more, stray) = tree(&toks, &mut pos, &mut cx.notes);
        nodes.extend(more);
        if !stray {
            break;
        }
        if let Some((_, line)) = toks.get(pos - 1) {
            cx.notes.push(Note {
                line: *line,
                message: "a `}` that closes no block: ignored".into(),
            });
        }
    }
    let mut out = Out::default();
    let mut vips: Vec<Vip> = Vec::new();
    let mut groups: HashMap<String, &Node> = HashMap::new();
    let mut instance_seen = false;
    let mut failover: Vec<(String, String)> = Vec::new();
    let mut sync: Vec<(String, String)> = Vec::new();
    for n in &nodes {
        match n.key() {
            "global_defs" => global_defs(n, &mut out, &mut sync, &mut cx),
            "vrrp_instance" if instance_seen => cx.note(
                n,
                format!(
                    "a second VRRP instance (`{}`): Fulcrum's directors run one virtual router; left out",
                    n.arg(1).unwrap_or_default()
                ),
            ),
            "vrrp_instance" => {
                instance_seen = true;
                vrrp_instance(n, &mut failover, &mut vips, &mut cx);
            }
            "virtual_server_group" => {
                if let Some(name) = n.arg(1) {
                    groups.insert(name.to_string(), n);
                }
            }
            "virtual_server" => {}
            "include" => cx.ignored(
                n,
                "included files are not read: import each and merge the results",
            ),
            "vrrp_sync_group" | "vrrp_script" | "vrrp_track_file" | "track_file" => cx.ignored(
                n,
                "no equivalent in lvs.cf (for reachability, see `ping_node` and `monitor_links`); left out",
            ),
            "static_ipaddress" | "static_routes" | "static_rules" => cx.ignored(
                n,
                "Fulcrum manages only the addresses its virtual servers use; configure the host's own with the system",
            ),
            _ => cx.ignored(n, "not understood; left out"),
        }
    }
    // Virtual servers after the instance: their addresses take its devices.
    let mut count = 0;
    for n in nodes.iter().filter(|n| n.key() == "virtual_server") {
        let members: Vec<(Vec<String>, usize)> = match (n.arg(1), n.arg(2)) {
            (Some("group"), Some(g)) => match groups.get(g) {
                Some(gn) => {
                    cx.note(
                        n,
                        format!("virtual_server_group `{g}`: one lvs.cf virtual server per member"),
                    );
                    gn.children()
                        .iter()
                        .flat_map(|m| {
                            expand_range(m.key())
                                .into_iter()
                                .map(|a| {
                                    let mut w = m.words.clone();
                                    w[0] = a;
                                    (w, m.line)
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect()
                }
                None => {
                    cx.note(
                        n,
                        format!("there is no virtual_server_group `{g}`; left out"),
                    );
                    continue;
                }
            },
            _ => vec![(n.words[1..].to_vec(), n.line)],
        };
        for (m, _) in members {
            count += 1;
            if let Some(v) = virtual_server(n, &m, count, &mut vips, &mut cx) {
                out.virtuals.push(v);
            }
        }
    }
    for v in vips.iter().filter(|v| !v.used) {
        cx.notes.push(Note {
            line: v.line,
            message: format!(
                "virtual address {} is used by no virtual server: lvs.cf brings up only the virtual servers' addresses (and `nat_router`); left out",
                v.addr
            ),
        });
    }
    out.global.extend(failover);
    out.global.extend(sync);
    cx.notes.sort_by_key(|n| n.line);
    // A note repeated for each member of a group is said once.
    cx.notes.dedup();
    Imported {
        text: out.render(
            "Imported from keepalived.conf by `fulcrum import`: check it with `fulcrum check`.\nSettings with no lvs.cf equivalent were reported on standard error.",
        ),
        notes: cx.notes,
    }
}

fn global_defs(n: &Node, out: &mut Out, sync: &mut Vec<(String, String)>, cx: &mut Ctx) {
    for s in n.children() {
        let a1 = s.arg(1).unwrap_or_default();
        match s.key() {
            "notification_email" => {
                for m in s.children() {
                    if m.key().contains('@') {
                        out.global.push(("notify_email".into(), value(m.key())));
                    } else {
                        cx.ignored(
                            m,
                            "not a mail address (USER@HOST): lvs.cf's `notify_email` needs one; left out",
                        );
                    }
                }
            }
            "notification_email_from" => {
                out.global.push(("notify_email_from".into(), value(a1)));
            }
            "smtp_server" => {
                let v = match s.arg(2) {
                    Some(p) => host_port(a1, p),
                    None => a1.to_string(),
                };
                out.global.push(("smtp_server".into(), v));
            }
            "vrrp_version" => out.global.push(("vrrp_version".into(), value(a1))),
            "lvs_timeouts" => {
                let mut w = s.words[1..].iter();
                while let (Some(k), Some(v)) = (w.next(), w.next()) {
                    let key = match k.as_str() {
                        "tcp" => "tcp_timeout",
                        "tcpfin" => "tcpfin_timeout",
                        "udp" => "udp_timeout",
                        other => {
                            cx.note(
                                s,
                                format!("lvs_timeouts `{other}` is not understood; left out"),
                            );
                            continue;
                        }
                    };
                    out.global.push((key.into(), value(v)));
                }
            }
            "lvs_sync_daemon" => {
                sync.push(("syncdaemon".into(), "1".into()));
                sync.push(("syncd_iface".into(), value(a1)));
                sync.push(("syncd_role".into(), "auto".into()));
                let mut w = s.words.iter().skip(3);
                while let Some(k) = w.next() {
                    let key = match k.as_str() {
                        "id" => "syncd_id",
                        "maxlen" => "syncd_maxlen",
                        "port" => "syncd_port",
                        "ttl" => "syncd_ttl",
                        "group" => "syncd_group",
                        _ => continue,
                    };
                    if let Some(v) = w.next() {
                        sync.push((key.into(), value(v)));
                    }
                }
            }
            "router_id"
            | "smtp_connect_timeout"
            | "script_user"
            | "enable_script_security"
            | "vrrp_skip_check_adv_addr"
            | "vrrp_strict"
            | "vrrp_garp_interval"
            | "vrrp_gna_interval"
            | "vrrp_mcast_group4"
            | "vrrp_mcast_group6"
            | "vrrp_garp_master_delay"
            | "vrrp_garp_master_repeat"
            | "enable_traps"
            | "enable_snmp_keepalived"
            | "dynamic_interfaces"
            | "max_auto_priority" => {
                cx.ignored(s, "no equivalent in lvs.cf; left out");
            }
            _ => cx.ignored(s, "not understood; left out"),
        }
    }
}

fn vrrp_instance(
    n: &Node,
    failover: &mut Vec<(String, String)>,
    vips: &mut Vec<Vip>,
    cx: &mut Ctx,
) {
    let mut state = "BACKUP".to_string();
    let mut src: Option<String> = None;
    let mut peers: Vec<String> = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut iface: Option<String> = None;
    let mut advert = 1.0f64;
    for s in n.children() {
        let a1 = s.arg(1).unwrap_or_default();
        match s.key() {
            "state" => state = a1.to_ascii_uppercase(),
            "interface" => iface = Some(a1.to_string()),
            "virtual_router_id" => keys.push(("virtual_router_id".into(), value(a1))),
            "priority" => keys.push(("priority".into(), value(a1))),
            "advert_int" => {
                advert = a1.parse().unwrap_or(1.0);
                keys.push(("keepalive".into(), value(a1)));
            }
            "nopreempt" => keys.push(("preempt".into(), "0".into())),
            "preempt_delay" => keys.push(("preempt_delay".into(), value(a1))),
            "notify" => keys.push(("notify_script".into(), value(a1))),
            "garp_master_delay" => keys.push(("garp_delay".into(), value(a1))),
            "garp_master_repeat" => keys.push(("garp_count".into(), value(a1))),
            "unicast_src_ip" => src = Some(a1.to_string()),
            "unicast_peer" => peers.extend(s.children().iter().map(|p| p.key().to_string())),
            "track_interface" => {
                keys.push(("monitor_links".into(), "1".into()));
                cx.ignored(
                    s,
                    "became `monitor_links = 1`: Fulcrum watches the links of the addresses it uses, not a list",
                );
            }
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                for a in s.children() {
                    let addr = a.key().split('/').next().unwrap_or_default().to_string();
                    let mut dev = None;
                    let mut label = None;
                    let mut w = a.words.iter().skip(1);
                    while let Some(k) = w.next() {
                        match k.as_str() {
                            "dev" => dev = w.next().cloned(),
                            "label" => label = w.next().cloned(),
                            _ => {}
                        }
                    }
                    vips.push(Vip {
                        addr,
                        dev: label.or(dev).or_else(|| iface.clone()),
                        line: a.line,
                        used: false,
                    });
                }
            }
            "authentication" => cx.ignored(
                s,
                "Fulcrum authenticates adverts with an HMAC key, not a password: put a secret of 16 bytes or more in a file and set `auth_key_file` on every director",
            ),
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => cx.ignored(
                s,
                "Fulcrum runs one `notify_script` with the new state as an argument (keepalived's `notify`); left out",
            ),
            "track_script" | "virtual_routes" | "virtual_rules" | "smtp_alert" | "dont_track_primary"
            | "use_vmac" | "vmac_xmit_base" | "native_ipv6" | "accept" | "no_accept"
            | "strict_mode" | "lvs_sync_daemon_interface" => {
                cx.ignored(s, "no equivalent in lvs.cf; left out");
            }
            _ => cx.ignored(s, "not understood; left out"),
        }
    }
    match (src, peers.as_slice()) {
        (Some(me), [first, rest @ ..]) => {
            let (primary, backup) = if state == "MASTER" {
                (me, first.clone())
            } else {
                (first.clone(), me)
            };
            failover.push(("backup_active".into(), "1".into()));
            failover.push(("primary".into(), value(&primary)));
            failover.push(("backup".into(), value(&backup)));
            for p in rest {
                failover.push(("peer".into(), value(p)));
            }
            failover.extend(keys);
            failover.push((
                "deadtime".into(),
                format!("{}", (advert * 3.0).max(advert + 1.0)),
            ));
        }
        _ => {
            cx.note(
                n,
                "failover left out: this instance names no director addresses (no `unicast_src_ip` and `unicast_peer`); add `backup_active = 1`, `primary = ADDRESS`, `backup = ADDRESS` (and `vrrp_multicast = 1` to keep multicast adverts)",
            );
        }
    }
}

fn virtual_server(
    n: &Node,
    words: &[String],
    count: usize,
    vips: &mut [Vip],
    cx: &mut Ctx,
) -> Option<VirtualOut> {
    let mut v = VirtualOut {
        name: format!("vs{count}"),
        origin: format!("virtual_server {} (line {})", words.join(" "), n.line),
        ..Default::default()
    };
    v.keys.push(("active".into(), "1".into()));
    let port;
    match words {
        [kw, mark] if kw == "fwmark" => {
            v.keys.push(("fwmark".into(), value(mark)));
            port = "0".to_string();
            // An fwmark service has no address of its own; lvs.cf gives it
            // the instance's first virtual address.
            match vips.first_mut() {
                Some(vip) => {
                    vip.used = true;
                    let dev = vip.dev.as_ref().map_or(String::new(), |d| format!(" {d}"));
                    v.keys
                        .push(("address".into(), format!("{}{dev}", vip.addr)));
                }
                None => {
                    cx.note(n, "an fwmark service needs an address in lvs.cf and the VRRP instance has none; left out");
                    return None;
                }
            }
        }
        [addr, p, ..] => {
            port = p.clone();
            let dev = vips
                .iter_mut()
                .find(|x| x.addr == *addr)
                .and_then(|x| {
                    x.used = true;
                    x.dev.clone()
                })
                .map_or(String::new(), |d| format!(" {d}"));
            v.keys.push(("address".into(), format!("{addr}{dev}")));
            v.keys.push(("port".into(), value(p)));
        }
        _ => {
            cx.note(
                n,
                "a virtual_server needs `ADDRESS PORT` or `fwmark N`; left out",
            );
            return None;
        }
    }
    let mut check: Option<(Check, usize)> = None;
    let mut quiesce = (0, 0);
    let mut servers = 0;
    for s in n.children() {
        let a1 = s.arg(1).unwrap_or_default();
        match s.key() {
            "delay_loop" => v.keys.push(("check_interval".into(), value(a1))),
            "lb_algo" | "lvs_sched" => v.keys.push(("scheduler".into(), value(a1))),
            "lb_kind" | "lvs_method" => match forwarding(a1) {
                Some(f) => v.keys.push(("forwarding".into(), f.into())),
                None => cx.ignored(s, "not a forwarding method (NAT, DR, TUN); left out"),
            },
            "persistence_timeout" => v.keys.push(("persistent".into(), value(a1))),
            "persistence_granularity" => v.keys.push(("pmask".into(), value(a1))),
            "protocol" => v.keys.push(("protocol".into(), a1.to_ascii_lowercase())),
            "sorry_server" => match s.arg(2) {
                Some(p) => v.keys.push(("sorry_server".into(), host_port(a1, p))),
                None => v.keys.push(("sorry_server".into(), host_port(a1, &port))),
            },
            "virtualhost" => v.keys.push(("virtualhost".into(), value(a1))),
            "ops" => v.keys.push(("one_packet".into(), "1".into())),
            "real_server" => {
                servers += 1;
                let mut r = ServerOut {
                    name: format!("rs{servers}"),
                    ..Default::default()
                };
                r.keys.push(("address".into(), value(a1)));
                let rport = s.arg(2).unwrap_or(&port).to_string();
                if rport != port {
                    r.keys.push(("port".into(), value(&rport)));
                }
                r.keys.push(("active".into(), "1".into()));
                let mut inhibit = false;
                for k in s.children() {
                    let b1 = k.arg(1).unwrap_or_default();
                    if let Some(c) = check_of(k, &rport, cx) {
                        match &check {
                            None => {
                                v.keys.extend(c.keys.clone());
                                if let Some(t) = c.checktype {
                                    v.keys.push(("checktype".into(), t.into()));
                                }
                                check = Some((c, k.line));
                            }
                            Some((first, line)) if first.keys != c.keys => {
                                if first.checktype != c.checktype
                                    && let Some(t) = c.checktype
                                {
                                    r.keys.push(("checktype".into(), t.into()));
                                }
                                cx.note(
                                    k,
                                    format!("lvs.cf checks every real server of a virtual server with the same settings: those of line {line} apply to this one too"),
                                );
                            }
                            Some((first, _)) => {
                                if first.checktype != c.checktype
                                    && let Some(t) = c.checktype
                                {
                                    r.keys.push(("checktype".into(), t.into()));
                                }
                            }
                        }
                        continue;
                    }
                    match k.key() {
                        "weight" => r.keys.push(("weight".into(), value(b1))),
                        "uthreshold" | "lthreshold" => r.keys.push((k.key().into(), value(b1))),
                        "inhibit_on_failure" => inhibit = true,
                        "lb_kind" | "lvs_method" => match forwarding(b1) {
                            Some(f) => r.keys.push(("forwarding".into(), f.into())),
                            None => cx.ignored(k, "not a forwarding method; left out"),
                        },
                        "notify_up" | "notify_down" | "delay_before_retry" | "retry" | "alpha"
                        | "smtp_alert" => {
                            cx.ignored(k, "no equivalent in lvs.cf; left out");
                        }
                        _ => cx.ignored(k, "not understood; left out"),
                    }
                }
                if inhibit {
                    quiesce.0 += 1;
                } else {
                    quiesce.1 += 1;
                }
                v.servers.push(r);
            }
            "quorum" | "quorum_up" | "quorum_down" | "hysteresis" | "alpha" | "omega"
            | "ha_suspend" | "retry" | "delay_before_retry" | "smtp_alert" | "lvs_flags"
            | "persistence_engine" | "ip_family" => {
                cx.ignored(s, "no equivalent in lvs.cf; left out");
            }
            _ => cx.ignored(s, "not understood; left out"),
        }
    }
    if quiesce.0 > 0 {
        v.keys.push(("quiesce_server".into(), "1".into()));
        if quiesce.1 > 0 {
            cx.note(
                n,
                "some real servers have `inhibit_on_failure` and some not: lvs.cf quiesces all or none of a virtual server's; all are quiesced (`quiesce_server = 1`)",
            );
        }
    }
    if !v.keys.iter().any(|(k, _)| k == "checktype") {
        v.keys.push(("checktype".into(), "off".into()));
        if servers > 0 {
            cx.note(
                n,
                "no checker on its real servers: as keepalived, they are never checked (`checktype = off`)",
            );
        }
    }
    Some(v)
}

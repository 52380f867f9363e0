//! Lowering: from the syntax tree to a [`Config`], checking every key and
//! value and the relations between them. Every problem is collected; nothing
//! stops at the first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{Family, Protocol, ServiceKey, TunnelCsum, TunnelType};

use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::model::*;
use crate::syntax::{Node, Token};

/// Keys of the global section.
pub const GLOBAL_KEYS: &[&str] = &[
    "serial_no",
    "primary",
    "primary_private",
    "primary_shared",
    "backup",
    "backup_private",
    "backup_shared",
    "backup_active",
    "service",
    "heartbeat",
    "heartbeat_port",
    "keepalive",
    "deadtime",
    "network",
    "nat_router",
    "nat_nmask",
    "reservation_conflict_action",
    "debug_level",
    "rsh_command",
    "sync",
    "ipvsadm",
    "active_cmd",
    "inactive_cmd",
    "monitor_links",
    "hard_shutdown",
    "syncdaemon",
    "syncd_iface",
    "syncd_id",
    "syncd_role",
    "syncd_maxlen",
    "syncd_group",
    "syncd_port",
    "syncd_ttl",
    "syncd_auth",
    "tcp_timeout",
    "tcpfin_timeout",
    "udp_timeout",
    "max_connections",
    "drain_timeout",
    "user",
    "dataplane",
    "priority",
    "preempt",
    "nice_failback",
    "preempt_delay",
    "vrrp_version",
    "virtual_router_id",
    "peer",
    "auth_key_file",
    "notify_script",
    "garp_count",
    "garp_delay",
    "ping_node",
    "notify_email",
    "notify_email_from",
    "smtp_server",
    "vrrp_multicast",
    "console",
    "console_users",
    "console_tls_cert",
    "console_tls_key",
];

/// Keys that may be given more than once (each adds to a list).
const REPEATABLE_KEYS: &[&str] = &["peer", "ping_node", "notify_email"];

/// Keys of a `virtual` block.
pub const VIRTUAL_KEYS: &[&str] = &[
    "active",
    "address",
    "vip_nmask",
    "sorry_server",
    "fallback",
    "fwmark",
    "protocol",
    "port",
    "scheduler",
    "sched_flags",
    "persistent",
    "pmask",
    "one_packet",
    "forwarding",
    "tunnel_type",
    "tunnel_port",
    "tunnel_checksum",
    "send",
    "expect",
    "use_regex",
    "send_program",
    "load_monitor",
    "timeout",
    "reentry",
    "quiesce_server",
    "client_monitor",
    "master",
    "dirs",
    "checktype",
    "check_interval",
    "rise",
    "fall",
    "agent_port",
    "misc_dynamic",
    "load_interval",
    "request",
    "receive",
    "digest",
    "status_code",
    "virtualhost",
    "tls_ca",
    "max_connections",
    "transparent",
];

/// Keys of a `server` block.
pub const SERVER_KEYS: &[&str] = &[
    "address",
    "active",
    "weight",
    "port",
    "forwarding",
    "tunnel_type",
    "tunnel_port",
    "tunnel_checksum",
    "uthreshold",
    "lthreshold",
    "proxy_protocol",
    "checktype",
];

/// The most connections a `max_connections` may allow.
const MAX_CONNECTIONS: u32 = 100_000_000;

/// The longest persistence timeout ipvsadm accepts (31 days).
const MAX_TIMEOUT: u32 = 86400 * 31;

/// An assignment with its tokens.
struct Assign<'a> {
    key: &'a Token,
    values: &'a [Token],
}

type Res<T> = Result<T, Diagnostic>;

impl Assign<'_> {
    fn key(&self) -> &str {
        &self.key.text
    }

    fn span(&self) -> Span {
        let first = self.values.first().map_or(self.key.span, |t| t.span);
        let last = self.values.last().map_or(self.key.span, |t| t.span);
        Span {
            line: first.line,
            col: first.col,
            len: last.col + last.len - first.col,
        }
    }

    fn err(&self, msg: impl Into<String>, hint: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.span(), msg).hint(hint)
    }

    fn one(&self) -> Res<&Token> {
        match self.values {
            [t] => Ok(t),
            _ => Err(self.err(
                format!(
                    "`{}` takes one value, not {}",
                    self.key(),
                    self.values.len()
                ),
                "quote the value if it contains spaces",
            )),
        }
    }

    fn text(&self) -> String {
        self.values
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn bool(&self) -> Res<bool> {
        match self.one()?.text.as_str() {
            "0" => Ok(false),
            "1" => Ok(true),
            v => Err(self.err(
                format!("`{}` must be 0 or 1, not `{v}`", self.key()),
                "write 1 to enable, 0 to disable",
            )),
        }
    }

    fn number<T: TryFrom<u64> + Copy + std::fmt::Display>(
        &self,
        min: u64,
        max: u64,
        what: &str,
    ) -> Res<T> {
        let v = &self.one()?.text;
        let n: Option<u64> = v.parse().ok();
        match n {
            Some(n) if (min..=max).contains(&n) => {
                T::try_from(n).map_err(|_| self.err("number out of range", ""))
            }
            _ => Err(self.err(
                format!("invalid {what} `{v}` for `{}`", self.key()),
                format!("use a whole number from {min} to {max}"),
            )),
        }
    }

    fn ip(&self, tok: &Token) -> Res<IpAddr> {
        parse_ip(&tok.text).ok_or_else(|| {
            Diagnostic::error(
                tok.span,
                format!("invalid IP address `{}` for `{}`", tok.text, self.key()),
            )
            .hint("write an IPv4 address like 192.168.1.3 or an IPv6 address like 2001:db8::3")
        })
    }

    fn seconds(&self, allow_zero: bool) -> Res<Seconds> {
        let v = &self.one()?.text;
        match parse_seconds(v) {
            Some(s) if allow_zero || !s.0.is_zero() => Ok(s),
            Some(_) => Err(self.err(
                format!("`{}` must be more than 0 seconds", self.key()),
                "use a positive number of seconds, e.g. 2 or 0.5",
            )),
            None => Err(self.err(
                format!("invalid duration `{v}` for `{}`", self.key()),
                "write seconds as a number, with at most 6 decimals (e.g. 10, 0.35)",
            )),
        }
    }

    /// Seconds from 0 to `max`.
    fn seconds_up_to(&self, max: u64) -> Res<Seconds> {
        match self.seconds(true)? {
            s if s.0 > Duration::from_secs(max) => Err(self.err(
                format!("`{}` is {s} s; the limit is {max}", self.key()),
                format!("use 0 to {max} seconds"),
            )),
            s => Ok(s),
        }
    }

    fn ipv4_mask(&self) -> Res<Ipv4Addr> {
        let v = &self.one()?.text;
        v.parse::<Ipv4Addr>().map_err(|_| {
            self.err(
                format!("invalid netmask `{v}` for `{}`", self.key()),
                "write a dotted netmask such as 255.255.255.0",
            )
        })
    }

    fn string(&self) -> Res<String> {
        let s = self.text();
        if s.len() > 255 && matches!(self.key(), "send" | "expect") {
            return Err(self.err(
                format!(
                    "`{}` is {} characters; the limit is 255",
                    self.key(),
                    s.len()
                ),
                "shorten the string",
            ));
        }
        Ok(s)
    }

    fn word<T: Copy>(&self, what: &str, table: &[(&str, T)]) -> Res<T> {
        let v = &self.one()?.text;
        if let Some((_, t)) = table.iter().find(|(n, _)| n == v) {
            return Ok(*t);
        }
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        let hint = match did_you_mean(v, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? (one of: {})", names.join(", ")),
            None => format!("use one of: {}", names.join(", ")),
        };
        Err(self.err(format!("unknown {what} `{v}`"), hint))
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    IpAddr::from_str(s).ok()
}

/// Decimal seconds with at most six decimals.
pub(crate) fn parse_seconds(s: &str) -> Option<Seconds> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if s.ends_with('.') {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(Seconds(
        Duration::from_secs(secs).checked_add(Duration::from_micros(micros.into()))?,
    ))
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        })
}

fn valid_device(s: &str) -> bool {
    let dev = s.split(':').next().unwrap_or(s);
    !dev.is_empty()
        && dev.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:@".contains(&b))
}

const ROUTING: &[(&str, Routing)] = &[
    ("nat", Routing::Nat),
    ("direct", Routing::Direct),
    ("tunnel", Routing::Tunnel),
];
const PROTOCOLS: &[(&str, Protocol)] = &[
    ("tcp", Protocol::Tcp),
    ("udp", Protocol::Udp),
    ("sctp", Protocol::Sctp),
];
const DATAPLANES: &[(&str, Dataplane)] = &[
    ("auto", Dataplane::Auto),
    ("proxy", Dataplane::Proxy),
    ("ipvs", Dataplane::Ipvs),
    ("xdp", Dataplane::Xdp),
];
const SYNCD_ROLES: &[(&str, SyncdRole)] = &[
    ("auto", SyncdRole::Auto),
    ("master", SyncdRole::Master),
    ("backup", SyncdRole::Backup),
    ("both", SyncdRole::Both),
];
const VRRP_VERSIONS: &[(&str, VrrpVersion)] = &[("2", VrrpVersion::V2), ("3", VrrpVersion::V3)];
const RSH: &[(&str, RshCommand)] = &[("rsh", RshCommand::Rsh), ("ssh", RshCommand::Ssh)];
const CHECKTYPES: &[(&str, CheckType)] = &[
    ("connect", CheckType::Connect),
    ("negotiate", CheckType::Negotiate),
    ("agent", CheckType::Agent),
    ("external", CheckType::External),
    ("http_get", CheckType::HttpGet),
    ("https_get", CheckType::HttpsGet),
    ("ping", CheckType::Ping),
    ("smtp", CheckType::Smtp),
    ("ftp", CheckType::Ftp),
    ("pop", CheckType::Pop),
    ("imap", CheckType::Imap),
    ("nntp", CheckType::Nntp),
    ("dns", CheckType::Dns),
    ("off", CheckType::Off),
];

impl Assign<'_> {
    fn checktype(&self) -> Res<CheckType> {
        self.word("checktype", CHECKTYPES)
    }
}

const TUNNEL_TYPES: &[(&str, TunnelType)] = &[
    ("ipip", TunnelType::Ipip),
    ("gue", TunnelType::Gue),
    ("gre", TunnelType::Gre),
];
const TUNNEL_CSUMS: &[(&str, TunnelCsum)] = &[
    ("none", TunnelCsum::NoCsum),
    ("csum", TunnelCsum::Csum),
    ("remcsum", TunnelCsum::RemCsum),
];
const PROXY_PROTOCOLS: &[(&str, ProxyProtocolVersion)] = &[
    ("v1", ProxyProtocolVersion::V1),
    ("v2", ProxyProtocolVersion::V2),
];

impl Assign<'_> {
    fn host(&self) -> Res<Host> {
        let t = self.one()?;
        if let Some(ip) = parse_ip(&t.text) {
            return Ok(Host::Addr(ip));
        }
        if valid_hostname(&t.text) && !t.text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Ok(Host::Name(t.text.clone()));
        }
        Err(self.err(
            format!(
                "invalid address or host name `{}` for `{}`",
                t.text,
                self.key()
            ),
            "write an IP address (e.g. 1.2.3.2) or a host name",
        ))
    }

    fn addr_dev(&self) -> Res<AddrDev> {
        match self.values {
            [a] => Ok(AddrDev {
                addr: self.ip(a)?,
                dev: None,
            }),
            [a, d] => {
                let addr = self.ip(a)?;
                if !valid_device(&d.text) {
                    return Err(Diagnostic::error(d.span, format!("invalid device `{}`", d.text))
                        .hint("write the interface, optionally with an alias label, e.g. eth0 or eth0:1"));
                }
                Ok(AddrDev {
                    addr,
                    dev: Some(d.text.clone()),
                })
            }
            _ => Err(self.err(
                format!("`{}` takes an address and an optional device", self.key()),
                "write e.g. `1.2.3.1 eth0:1`",
            )),
        }
    }

    fn port(&self) -> Res<u16> {
        let v = &self.one()?.text;
        match v.as_str() {
            "http" => return Ok(80),
            "https" => return Ok(443),
            "ftp" => return Ok(21),
            _ => {}
        }
        match v.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) => {
                let hint = match did_you_mean(v, ["http", "https", "ftp"]) {
                    Some(s) => {
                        format!("did you mean `{s}`? Otherwise write a number from 0 to 65535")
                    }
                    None => "write a number from 0 to 65535, or http, https or ftp".into(),
                };
                Err(self.err(format!("invalid port `{v}`"), hint))
            }
        }
    }

    fn email(&self) -> Res<String> {
        let t = self.one()?;
        let ok = t.text.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && !d.is_empty() && !t.text.contains(['<', '>', ',', ' '])
        });
        if ok {
            Ok(t.text.clone())
        } else {
            Err(self.err(
                format!("invalid mail address `{}` for `{}`", t.text, self.key()),
                "write one address like ops@example.com per line",
            ))
        }
    }

    fn host_port(&self) -> Res<HostPort> {
        let t = self.one()?;
        let s = &t.text;
        if let Some(ip) = parse_ip(s) {
            return Ok(HostPort {
                addr: ip,
                port: None,
            });
        }
        let split = if let Some(rest) = s.strip_prefix('[') {
            rest.split_once("]:")
        } else {
            s.rsplit_once(':').filter(|(a, _)| !a.contains(':'))
        };
        if let Some((a, p)) = split
            && let (Some(ip), Ok(port)) = (parse_ip(a), p.parse::<u16>())
        {
            return Ok(HostPort {
                addr: ip,
                port: Some(port),
            });
        }
        Err(self.err(
            format!("invalid address `{s}` for `{}`", self.key()),
            "write ADDRESS or ADDRESS:PORT ([ADDRESS]:PORT for IPv6)",
        ))
    }

    /// The single value, if `valid` accepts it; otherwise the error
    /// `problem(value)` with `hint`.
    fn one_that(
        &self,
        valid: impl Fn(&str) -> bool,
        problem: impl Fn(&str) -> String,
        hint: &str,
    ) -> Res<String> {
        let v = &self.one()?.text;
        if valid(v) {
            Ok(v.clone())
        } else {
            Err(self.err(problem(v), hint))
        }
    }

    fn request(&self) -> Res<String> {
        self.one_that(
            |v| {
                !v.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            },
            |v| format!("invalid request `{v}`"),
            "write the path an HTTP check fetches (e.g. /health) or the name a DNS check resolves",
        )
    }

    fn digest(&self) -> Res<String> {
        self.one_that(
            |v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            |v| format!("invalid digest `{v}`: an MD5 digest is 32 hexadecimal digits"),
            "print the digest of the page with `fulcrum genhash -s ADDRESS -p PORT -u PATH`",
        )
        .map(|d| d.to_ascii_lowercase())
    }

    fn status_codes(&self) -> Res<StatusCodes> {
        let v = self.text();
        let bad = || {
            self.err(
                format!("invalid status codes `{v}` for `status_code`"),
                "list codes or ranges from 100 to 599, e.g. 200-299,301",
            )
        };
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        let mut out = Vec::new();
        for part in v.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (code(a).ok_or_else(bad)?, code(b).ok_or_else(bad)?),
                None => {
                    let c = code(part).ok_or_else(bad)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(bad());
            }
            out.push((lo, hi));
        }
        if out.is_empty() {
            return Err(bad());
        }
        Ok(StatusCodes(out))
    }

    fn virtualhost(&self) -> Res<String> {
        self.one_that(
            valid_hostname,
            |v| format!("invalid virtual host `{v}`"),
            "write the host name the real servers serve, e.g. www.example.com",
        )
    }

    fn absolute_path(&self) -> Res<String> {
        let v = self.text();
        if v.starts_with('/') {
            Ok(v)
        } else {
            Err(self.err(
                format!("`{}` must be an absolute path, not `{v}`", self.key()),
                "write the full path, e.g. /etc/fulcrum/ca.pem",
            ))
        }
    }

    fn load_monitor(&self) -> Res<LoadMonitor> {
        let v = &self.one()?.text;
        Ok(match v.as_str() {
            "none" => LoadMonitor::None,
            "uptime" => LoadMonitor::Uptime,
            "rup" => LoadMonitor::Rup,
            "ruptime" => LoadMonitor::Ruptime,
            "agent" => LoadMonitor::Agent,
            p if p.starts_with('/') => LoadMonitor::Program(p.to_string()),
            _ => {
                let names = ["none", "uptime", "rup", "ruptime", "agent"];
                let hint = match did_you_mean(v, names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => {
                        "use none, uptime, rup, ruptime, agent, or an absolute program path".into()
                    }
                };
                return Err(self.err(format!("unknown load monitor `{v}`"), hint));
            }
        })
    }

    fn scheduler(&self) -> Res<SchedulerKind> {
        let v = &self.one()?.text;
        v.parse::<SchedulerKind>().map_err(|_| {
            let all: Vec<&str> = SchedulerKind::names().collect();
            let hint = match did_you_mean(v, all.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of: {}", all.join(" ")),
            };
            self.err(format!("unknown scheduler `{v}`"), hint)
        })
    }

    fn sched_flags(&self, diags: &mut Vec<Diagnostic>) -> Vec<SchedFlag> {
        let mut out = Vec::new();
        for tok in self.values {
            for part in tok.text.split(',').filter(|p| !p.is_empty()) {
                match SchedFlag::ALL.iter().find(|f| f.name() == part) {
                    Some(f) if !out.contains(f) => out.push(*f),
                    Some(_) => {}
                    None => {
                        let hint = match did_you_mean(part, SchedFlag::ALL.iter().map(|f| f.name()))
                        {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "use sh-fallback, sh-port, mh-fallback or mh-port".into(),
                        };
                        diags.push(
                            Diagnostic::error(tok.span, format!("unknown scheduler flag `{part}`"))
                                .hint(hint),
                        );
                    }
                }
            }
        }
        out
    }

    fn pmask(&self) -> Res<Pmask> {
        let v = &self.one()?.text;
        if let Ok(m) = v.parse::<Ipv4Addr>() {
            return Ok(Pmask::V4(m));
        }
        match v.trim_start_matches('/').parse::<u8>() {
            Ok(p @ 1..=128) => Ok(Pmask::V6(p)),
            _ => Err(self.err(
                format!("invalid persistence mask `{v}`"),
                "write a dotted IPv4 mask (255.255.255.0) or an IPv6 prefix length (1-128)",
            )),
        }
    }
}

/// Where each key of a block was first set, for duplicate and cross-check
/// messages.
#[derive(Default)]
struct KeySpans(HashMap<String, Span>);

impl KeySpans {
    fn get(&self, k: &str) -> Option<Span> {
        self.0.get(k).copied()
    }
}

/// Report unknown and duplicate keys; returns false when the assignment
/// must be skipped.
fn admit(
    a: &Assign,
    scope: &str,
    keys: &[&str],
    seen: &mut KeySpans,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let k = a.key();
    if !keys.contains(&k) {
        let elsewhere = [
            ("global section", GLOBAL_KEYS),
            ("`virtual` block", VIRTUAL_KEYS),
            ("`server` block", SERVER_KEYS),
        ]
        .iter()
        .find(|(_, ks)| ks.contains(&k))
        .map(|(n, _)| *n);
        let d = Diagnostic::error(a.key.span, format!("unknown keyword `{k}` in {scope}"));
        let d = match (elsewhere, did_you_mean(k, keys.iter().copied())) {
            (Some(place), _) => d.hint(format!("`{k}` belongs in the {place}")),
            (None, Some(s)) => d.hint(format!("did you mean `{s}`?")),
            (None, None) => d.hint("see docs/config.md for the keys of this section"),
        };
        diags.push(d);
        return false;
    }
    if REPEATABLE_KEYS.contains(&k) {
        seen.0.entry(k.to_string()).or_insert(a.key.span);
        return true;
    }
    if let Some(first) = seen.get(k) {
        diags.push(
            Diagnostic::error(a.key.span, format!("`{k}` is set twice in {scope}"))
                .hint(format!("it was first set at line {}; keep one", first.line)),
        );
        return false;
    }
    seen.0.insert(k.to_string(), a.key.span);
    true
}

fn put<T>(slot: &mut Option<T>, r: Res<T>, diags: &mut Vec<Diagnostic>) {
    match r {
        Ok(v) => *slot = Some(v),
        Err(d) => diags.push(d),
    }
}

fn lower_global(a: &Assign, g: &mut Global, diags: &mut Vec<Diagnostic>) {
    let d = diags;
    match a.key() {
        "serial_no" => put(&mut g.serial_no, a.number(0, u64::MAX, "serial number"), d),
        "primary" => put(&mut g.primary, a.host(), d),
        "primary_private" => put(&mut g.primary_private, a.host(), d),
        "primary_shared" => put(&mut g.primary_shared, a.string(), d),
        "backup" => put(&mut g.backup, a.host(), d),
        "backup_private" => put(&mut g.backup_private, a.host(), d),
        "backup_shared" => put(&mut g.backup_shared, a.string(), d),
        "backup_active" => put(&mut g.backup_active, a.bool(), d),
        "service" => match a.one().map(|t| t.text.as_str()) {
            Ok("lvs") => {}
            Ok("fos") => d.push(a.err(
                "`service = fos` (Piranha's failover services) is not supported by Fulcrum",
                "Fulcrum runs LVS virtual servers; describe each service as a `virtual` block and remove `service = fos`",
            )),
            Ok(v) => d.push(a.err(format!("unknown service `{v}`"), "the only service is `lvs`; remove the line or write `service = lvs`")),
            Err(e) => d.push(e),
        },
        "heartbeat" => put(&mut g.heartbeat, a.bool(), d),
        "heartbeat_port" => put(&mut g.heartbeat_port, a.number(1, 65535, "port"), d),
        "keepalive" => put(&mut g.keepalive, a.seconds(false), d),
        "deadtime" => put(&mut g.deadtime, a.seconds(false), d),
        "network" => put(&mut g.network, a.word("routing method", ROUTING), d),
        "nat_router" => put(&mut g.nat_router, a.addr_dev(), d),
        "nat_nmask" => put(&mut g.nat_nmask, a.ipv4_mask(), d),
        "reservation_conflict_action" => put(&mut g.reservation_conflict_action, a.string(), d),
        "debug_level" => put(&mut g.debug_level, a.string(), d),
        "rsh_command" => put(&mut g.rsh_command, a.word("rsh command", RSH), d),
        "sync" => put(&mut g.sync, a.bool(), d),
        "ipvsadm" => put(&mut g.ipvsadm, a.string(), d),
        "active_cmd" => put(&mut g.active_cmd, a.string(), d),
        "inactive_cmd" => put(&mut g.inactive_cmd, a.string(), d),
        "monitor_links" => put(&mut g.monitor_links, a.bool(), d),
        "hard_shutdown" => put(&mut g.hard_shutdown, a.bool(), d),
        "syncdaemon" => put(&mut g.syncdaemon, a.bool(), d),
        "syncd_iface" => put(&mut g.syncd_iface, a.string(), d),
        "syncd_id" => put(&mut g.syncd_id, a.number(0, 255, "sync id"), d),
        "syncd_role" => put(&mut g.syncd_role, a.word("sync daemon role", SYNCD_ROLES), d),
        "syncd_maxlen" => put(&mut g.syncd_maxlen, a.number(1, 65507, "sync message size"), d),
        "syncd_group" => put(&mut g.syncd_group, a.one().and_then(|t| a.ip(t)), d),
        "syncd_port" => put(&mut g.syncd_port, a.number(1, 65535, "port"), d),
        "syncd_ttl" => put(&mut g.syncd_ttl, a.number(1, 255, "TTL"), d),
        "syncd_auth" => put(&mut g.syncd_auth, a.bool(), d),
        "tcp_timeout" => put(&mut g.tcp_timeout, a.number(0, MAX_TIMEOUT.into(), "timeout"), d),
        "tcpfin_timeout" => put(&mut g.tcpfin_timeout, a.number(0, MAX_TIMEOUT.into(), "timeout"), d),
        "udp_timeout" => put(&mut g.udp_timeout, a.number(0, MAX_TIMEOUT.into(), "timeout"), d),
        "max_connections" => put(&mut g.max_connections, a.number(1, MAX_CONNECTIONS.into(), "connection count"), d),
        "drain_timeout" => put(&mut g.drain_timeout, a.seconds_up_to(3600), d),
        "dataplane" => put(&mut g.dataplane, a.word("data plane", DATAPLANES), d),
        "user" => put(&mut g.user, a.string(), d),
        "priority" => put(&mut g.priority, a.number(1, 255, "priority"), d),
        "preempt" => put(&mut g.preempt, a.bool(), d),
        "nice_failback" => put(&mut g.nice_failback, a.bool(), d),
        "preempt_delay" => put(&mut g.preempt_delay, a.seconds_up_to(1000), d),
        "vrrp_version" => put(&mut g.vrrp_version, a.word("VRRP version", VRRP_VERSIONS), d),
        "virtual_router_id" => put(&mut g.virtual_router_id, a.number(1, 255, "virtual router id"), d),
        "peer" | "ping_node" => {
            let list = if a.key() == "peer" { &mut g.peer } else { &mut g.ping_node };
            for t in a.values {
                match a.ip(t) {
                    Ok(ip) => list.push(ip),
                    Err(e) => d.push(e),
                }
            }
            if a.values.is_empty() {
                d.push(a.err(
                    format!("`{}` needs an address", a.key()),
                    format!("write `{} = ADDRESS`, one line each", a.key()),
                ));
            }
        }
        "auth_key_file" => put(&mut g.auth_key_file, a.string(), d),
        "notify_email" => match a.email() {
            Ok(m) => g.notify_email.push(m),
            Err(e) => d.push(e),
        },
        "notify_email_from" => put(&mut g.notify_email_from, a.email(), d),
        "smtp_server" => put(&mut g.smtp_server, a.host_port(), d),
        "vrrp_multicast" => put(&mut g.vrrp_multicast, a.bool(), d),
        "console" => put(&mut g.console, a.host_port(), d),
        "console_users" => put(&mut g.console_users, a.string(), d),
        "console_tls_cert" => put(&mut g.console_tls_cert, a.string(), d),
        "console_tls_key" => put(&mut g.console_tls_key, a.string(), d),
        "notify_script" => put(&mut g.notify_script, a.string(), d),
        "garp_count" => put(&mut g.garp_count, a.number(1, 100, "announcement count"), d),
        "garp_delay" => put(&mut g.garp_delay, a.seconds_up_to(3600), d),
        _ => unreachable!("admit() filters unknown keys"),
    }
}

fn lower_virtual_key(a: &Assign, v: &mut VirtualServer, diags: &mut Vec<Diagnostic>) {
    let d = diags;
    match a.key() {
        "active" => put(&mut v.active, a.bool(), d),
        "address" => put(&mut v.address, a.addr_dev(), d),
        "vip_nmask" => put(&mut v.vip_nmask, a.ipv4_mask(), d),
        "sorry_server" | "fallback" => put(&mut v.sorry_server, a.host_port(), d),
        "fwmark" => match a.number::<u32>(0, u32::MAX.into(), "firewall mark") {
            Ok(0) => v.fwmark = None,
            r => put(&mut v.fwmark, r, d),
        },
        "protocol" => put(&mut v.protocol, a.word("protocol", PROTOCOLS), d),
        "port" => put(&mut v.port, a.port(), d),
        "scheduler" => put(&mut v.scheduler, a.scheduler(), d),
        "sched_flags" => v.sched_flags = a.sched_flags(d),
        "persistent" => put(
            &mut v.persistent,
            a.number(0, MAX_TIMEOUT.into(), "persistence timeout"),
            d,
        ),
        "pmask" => put(&mut v.pmask, a.pmask(), d),
        "one_packet" => put(&mut v.one_packet, a.bool(), d),
        "transparent" => put(&mut v.transparent, a.bool(), d),
        "forwarding" => put(&mut v.forwarding, a.word("forwarding method", ROUTING), d),
        "tunnel_type" | "tunnel_port" | "tunnel_checksum" => lower_tunnel_key(a, &mut v.tunnel, d),
        "send" => put(&mut v.send, a.string(), d),
        "expect" => put(&mut v.expect, a.string(), d),
        "use_regex" => put(&mut v.use_regex, a.bool(), d),
        "send_program" => put(&mut v.send_program, a.string(), d),
        "load_monitor" => put(&mut v.load_monitor, a.load_monitor(), d),
        "timeout" => put(&mut v.timeout, a.seconds(false), d),
        "reentry" => put(&mut v.reentry, a.seconds(true), d),
        "quiesce_server" => put(&mut v.quiesce_server, a.bool(), d),
        "checktype" => put(&mut v.checktype, a.checktype(), d),
        "check_interval" => put(&mut v.check_interval, a.seconds(false), d),
        "rise" => put(&mut v.rise, a.number(1, 1000, "count"), d),
        "fall" => put(&mut v.fall, a.number(0, 1000, "count"), d),
        "agent_port" => put(&mut v.agent_port, a.number(1, 65535, "port"), d),
        "misc_dynamic" => put(&mut v.misc_dynamic, a.bool(), d),
        "load_interval" => put(&mut v.load_interval, a.seconds(false), d),
        "request" => put(&mut v.request, a.request(), d),
        "receive" => put(&mut v.receive, a.string(), d),
        "digest" => put(&mut v.digest, a.digest(), d),
        "status_code" => put(&mut v.status_code, a.status_codes(), d),
        "virtualhost" => put(&mut v.virtualhost, a.virtualhost(), d),
        "tls_ca" => put(&mut v.tls_ca, a.absolute_path(), d),
        "max_connections" => put(
            &mut v.max_connections,
            a.number(1, MAX_CONNECTIONS.into(), "connection count"),
            d,
        ),
        "client_monitor" => put(&mut v.client_monitor, a.string(), d),
        "master" => put(&mut v.master, a.string(), d),
        "dirs" => put(&mut v.dirs, a.string(), d),
        _ => unreachable!("admit() filters unknown keys"),
    }
}

/// The tunnel keys of real server `s` against IPVS's rules (ipvsadm's
/// type × option matrix) and what the data plane does; `at` finds a key's
/// place (the server's own, else its virtual server's).
fn check_tunnel(
    v: &VirtualServer,
    s: &RealServer,
    routing: Routing,
    plane: Dataplane,
    at: impl Fn(&str) -> Span,
    diags: &mut Vec<Diagnostic>,
) {
    let name = &s.name;
    if routing != Routing::Tunnel {
        if let Some(k) = ["tunnel_type", "tunnel_port", "tunnel_checksum"]
            .into_iter()
            .zip([
                s.tunnel.kind.is_some(),
                s.tunnel.port.is_some(),
                s.tunnel.checksum.is_some(),
            ])
            .find_map(|(k, set)| set.then_some(k))
        {
            diags.push(
                Diagnostic::error(at(k), format!("real server `{name}` sets `{k}` but uses {} routing", routing.name()))
                    .hint("tunnel keys apply to tunnelled real servers: add `forwarding = tunnel`, or remove the key"),
            );
        }
        return;
    }
    let t = s.tunnel.or(&v.tunnel);
    let kind = t.kind.unwrap_or(TunnelType::Ipip);
    let kname = kind.name();
    match (kind, t.port, t.checksum) {
        (TunnelType::Gue, None, _) => diags.push(
            Diagnostic::error(at("tunnel_type"), format!("real server `{name}` is tunnelled by gue without a `tunnel_port`"))
                .hint("add `tunnel_port = PORT`, the UDP port the real server takes GUE on (e.g. 6080, as in `ip fou add port 6080 gue`)"),
        ),
        (TunnelType::Ipip | TunnelType::Gre, Some(_), _) => diags.push(
            Diagnostic::error(at("tunnel_port"), format!("real server `{name}` is tunnelled by {kname}, which has no port"))
                .hint("`tunnel_port` is for gue tunnels: remove it, or set `tunnel_type = gue`"),
        ),
        (TunnelType::Ipip, _, Some(_)) => diags.push(
            Diagnostic::error(at("tunnel_checksum"), format!("real server `{name}` is tunnelled by ipip, which has no checksum"))
                .hint("`tunnel_checksum` is for gue and gre tunnels: remove it"),
        ),
        (TunnelType::Gre, _, Some(TunnelCsum::RemCsum)) => diags.push(
            Diagnostic::error(at("tunnel_checksum"), format!("real server `{name}` is tunnelled by gre, which has no remote checksum"))
                .hint("use `tunnel_checksum = none` or `csum` (remcsum is for gue)"),
        ),
        _ => {}
    }
    if plane == Dataplane::Xdp {
        if kind == TunnelType::Gre {
            diags.push(
                Diagnostic::error(at("tunnel_type"), format!("real server `{name}` is tunnelled by gre, which the `xdp` data plane does not do"))
                    .hint("use `tunnel_type = ipip` or `gue`, or set `dataplane = ipvs`"),
            );
        } else if kind == TunnelType::Gue && t.checksum.is_some_and(|c| c != TunnelCsum::NoCsum) {
            diags.push(
                Diagnostic::error(at("tunnel_checksum"), format!("real server `{name}` asks for a GUE checksum, which the `xdp` data plane does not compute"))
                    .hint("use `tunnel_checksum = none` (IPVS's default), or set `dataplane = ipvs`"),
            );
        }
    }
}

fn lower_tunnel_key(a: &Assign, t: &mut TunnelKeys, d: &mut Vec<Diagnostic>) {
    match a.key() {
        "tunnel_type" => put(&mut t.kind, a.word("tunnel type", TUNNEL_TYPES), d),
        "tunnel_port" => put(&mut t.port, a.number(1, 65535, "port"), d),
        _ => put(&mut t.checksum, a.word("tunnel checksum", TUNNEL_CSUMS), d),
    }
}

fn lower_server_key(a: &Assign, s: &mut RealServer, diags: &mut Vec<Diagnostic>) {
    let d = diags;
    match a.key() {
        "address" => put(&mut s.address, a.one().and_then(|t| a.ip(t)), d),
        "active" => put(&mut s.active, a.bool(), d),
        "weight" => put(&mut s.weight, a.number(0, i32::MAX as u64, "weight"), d),
        "port" => put(&mut s.port, a.port(), d),
        "forwarding" => put(&mut s.forwarding, a.word("forwarding method", ROUTING), d),
        "tunnel_type" | "tunnel_port" | "tunnel_checksum" => lower_tunnel_key(a, &mut s.tunnel, d),
        "uthreshold" => put(
            &mut s.uthreshold,
            a.number(0, i32::MAX as u64, "threshold"),
            d,
        ),
        "lthreshold" => put(
            &mut s.lthreshold,
            a.number(0, i32::MAX as u64, "threshold"),
            d,
        ),
        "checktype" => put(&mut s.checktype, a.checktype(), d),
        "proxy_protocol" => put(
            &mut s.proxy_protocol,
            a.word("PROXY protocol version", PROXY_PROTOCOLS),
            d,
        ),
        _ => unreachable!("admit() filters unknown keys"),
    }
}

/// The name of a `virtual` or `server` block from its header words.
fn block_name(
    kind: &Token,
    words: &[Token],
    diags: &mut Vec<Diagnostic>,
) -> Option<(String, Span)> {
    let words: Vec<&Token> = match (kind.text.as_str(), words) {
        ("virtual", [s, rest @ ..]) if s.text == "server" && !rest.is_empty() => {
            rest.iter().collect()
        }
        (_, w) => w.iter().collect(),
    };
    match words.as_slice() {
        [name] => Some((name.text.clone(), name.span)),
        [] => {
            diags.push(
                Diagnostic::error(kind.span, format!("this `{}` block has no name", kind.text))
                    .hint(format!("write `{} NAME {{` with a unique name", kind.text)),
            );
            None
        }
        [_, second, ..] => {
            diags.push(
                Diagnostic::error(
                    second.span,
                    format!("a `{}` block takes one name", kind.text),
                )
                .hint(format!(
                    "write `{} NAME {{`; names cannot contain spaces",
                    kind.text
                )),
            );
            None
        }
    }
}

struct VirtualInfo {
    header: Span,
    keys: KeySpans,
    servers: Vec<(Span, KeySpans)>,
}

/// Turn a syntax tree into a configuration, appending diagnostics.
pub(crate) fn lower(nodes: &[Node], diags: &mut Vec<Diagnostic>) -> Config {
    let mut cfg = Config::default();
    let mut gseen = KeySpans::default();
    let mut infos: Vec<VirtualInfo> = Vec::new();
    for node in nodes {
        match node {
            Node::Assign { key, values } => {
                let a = Assign { key, values };
                if admit(&a, "the global section", GLOBAL_KEYS, &mut gseen, diags) {
                    lower_global(&a, &mut cfg.global, diags);
                }
            }
            Node::Block {
                kind, words, items, ..
            } => match kind.text.as_str() {
                "virtual" => {
                    let Some((name, header)) = block_name(kind, words, diags) else { continue };
                    let (v, info) = lower_virtual(name, header, items, diags);
                    cfg.virtuals.push(v);
                    infos.push(info);
                }
                "failover" => diags.push(
                    Diagnostic::error(kind.span, "`failover` blocks (Piranha's failover services) are not supported by Fulcrum")
                        .hint("describe the service as a `virtual` block with its real servers, or remove the block"),
                ),
                "server" => diags.push(
                    Diagnostic::error(kind.span, "a `server` block must be inside a `virtual` block")
                        .hint("move it into the virtual server it belongs to"),
                ),
                other => {
                    let d = Diagnostic::error(kind.span, format!("unknown block `{other}`"));
                    diags.push(match did_you_mean(other, ["virtual"]) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint("the global section holds `virtual NAME { … }` blocks"),
                    });
                }
            },
        }
    }
    check_global(&cfg.global, &gseen, diags);
    check_virtuals(&cfg, &infos, diags);
    cfg
}

fn lower_virtual(
    name: String,
    header: Span,
    items: &[Node],
    diags: &mut Vec<Diagnostic>,
) -> (VirtualServer, VirtualInfo) {
    let mut v = VirtualServer {
        name,
        ..Default::default()
    };
    let mut info = VirtualInfo {
        header,
        keys: KeySpans::default(),
        servers: Vec::new(),
    };
    let scope = format!("virtual server `{}`", v.name);
    for item in items {
        match item {
            Node::Assign { key, values } => {
                let a = Assign { key, values };
                if matches!(a.key(), "start_cmd" | "stop_cmd") {
                    diags.push(a.err(format!("`{}` belongs to Piranha's failover services, which Fulcrum does not run", a.key()), "remove the line"));
                    continue;
                }
                if admit(&a, &scope, VIRTUAL_KEYS, &mut info.keys, diags) {
                    lower_virtual_key(&a, &mut v, diags);
                }
            }
            Node::Block {
                kind, words, items, ..
            } if kind.text == "server" => {
                let Some((name, hspan)) = block_name(kind, words, diags) else {
                    continue;
                };
                let mut s = RealServer {
                    name,
                    ..Default::default()
                };
                let mut keys = KeySpans::default();
                let sscope = format!("real server `{}`", s.name);
                for it in items {
                    match it {
                        Node::Assign { key, values } => {
                            let a = Assign { key, values };
                            if admit(&a, &sscope, SERVER_KEYS, &mut keys, diags) {
                                lower_server_key(&a, &mut s, diags);
                            }
                        }
                        Node::Block { kind, .. } => diags.push(
                            Diagnostic::error(
                                kind.span,
                                format!(
                                    "a `{}` block cannot be inside a `server` block",
                                    kind.text
                                ),
                            )
                            .hint("close the server block with `}` first"),
                        ),
                    }
                }
                v.servers.push(s);
                info.servers.push((hspan, keys));
            }
            Node::Block { kind, .. } => {
                let d = Diagnostic::error(
                    kind.span,
                    format!("a `{}` block cannot be inside a `virtual` block", kind.text),
                );
                diags.push(match did_you_mean(&kind.text, ["server"]) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("a virtual server holds keys and `server NAME { … }` blocks"),
                });
            }
        }
    }
    (v, info)
}

fn check_global(g: &Global, seen: &KeySpans, diags: &mut Vec<Diagnostic>) {
    if let (Some(k), Some(dt)) = (g.keepalive, g.deadtime)
        && dt <= k
        && let Some(sp) = seen.get("deadtime")
    {
        diags.push(
            Diagnostic::error(sp, format!("`deadtime` ({dt} s) must be longer than `keepalive` ({k} s)"))
                .hint("otherwise the backup takes over between two heartbeats; make deadtime several keepalives long"),
        );
    }
    check_failover(g, seen, diags);
    check_syncd(g, seen, diags);
    check_console(g, seen, diags);
}

/// The kernel connection-sync daemon's keys.
fn check_syncd(g: &Global, seen: &KeySpans, diags: &mut Vec<Diagnostic>) {
    if g.syncdaemon != Some(true) {
        for k in GLOBAL_KEYS.iter().filter(|k| k.starts_with("syncd_")) {
            if let Some(sp) = seen.get(k) {
                diags.push(
                    Diagnostic::warning(sp, format!("`{k}` has no effect without `syncdaemon = 1`"))
                        .hint("add `syncdaemon = 1` to run the kernel's connection-sync daemon, or remove the key"),
                );
            }
        }
        return;
    }
    if g.dataplane == Some(Dataplane::Proxy)
        && let Some(sp) = seen.get("syncdaemon")
    {
        diags.push(
            Diagnostic::error(sp, "connection synchronisation is for the packet planes: the `proxy` data plane's connections end at the director and cannot move to another")
                .hint("set `dataplane = ipvs` (the kernel's sync daemon) or `dataplane = xdp` (Fulcrum's, on the same wire), or leave the default `auto`, which uses the kernel's IPVS where the host has it; or remove `syncdaemon`"),
        );
    }
    if let (Some(i), Some(sp)) = (&g.syncd_iface, seen.get("syncd_iface"))
        && (i.is_empty() || i.len() > 15 || i.contains(['/', ' ', ':']))
    {
        diags.push(
            Diagnostic::error(sp, format!("`{i}` is not an interface name"))
                .hint("name the interface the directors share for sync, e.g. `eth1` (at most 15 characters, no `/`, `:` or space)"),
        );
    }
    if let (Some(grp), Some(sp)) = (g.syncd_group, seen.get("syncd_group"))
        && !grp.is_multicast()
    {
        diags.push(
            Diagnostic::error(sp, format!("`{grp}` is not a multicast address"))
                .hint("the kernel sends sync messages to a multicast group: 224.0.0.0/4 or ff00::/8 (the default is 224.0.0.81)"),
        );
    }
    if g.syncd_auth == Some(true)
        && let Some(sp) = seen.get("syncd_auth")
    {
        if g.auth_key_file.is_none() {
            diags.push(
                Diagnostic::error(sp, "`syncd_auth = 1` seals the sync messages with `auth_key_file`, which is not set")
                    .hint("create a key (`head -c 32 /dev/urandom | base64 > /etc/fulcrum/ha.key`), copy it to every director, and set `auth_key_file`"),
            );
        }
        if g.dataplane != Some(Dataplane::Xdp) {
            diags.push(
                Diagnostic::error(sp, "the kernel's sync daemons neither seal nor check messages: `syncd_auth` is for Fulcrum's own (the `xdp` data plane)")
                    .hint("set `dataplane = xdp` on every director, or remove `syncd_auth` (kernel IPVS directors then interoperate)"),
            );
        }
    }
}

/// The console's keys.
fn check_console(g: &Global, seen: &KeySpans, diags: &mut Vec<Diagnostic>) {
    if let (Some(c), Some(sp)) = (&g.console, seen.get("console"))
        && c.port.is_none()
    {
        diags.push(
            Diagnostic::error(sp, "`console` needs a port").hint(format!(
                "write `console = {}:8090` (the address and port the console listens on)",
                c.addr
            )),
        );
    }
    for (have, other) in [
        ("console_tls_cert", "console_tls_key"),
        ("console_tls_key", "console_tls_cert"),
    ] {
        let set = |k: &str| match k {
            "console_tls_cert" => g.console_tls_cert.is_some(),
            _ => g.console_tls_key.is_some(),
        };
        if set(have)
            && !set(other)
            && let Some(sp) = seen.get(have)
        {
            diags.push(
                Diagnostic::error(
                    sp,
                    format!("`{have}` is set but not `{other}`: the console's TLS needs both"),
                )
                .hint(format!(
                    "add `{other} = PATH` (PEM), or remove `{have}` to serve plain HTTP"
                )),
            );
        }
    }
    if (g.console_users.is_some() || g.console_tls_cert.is_some())
        && g.console.is_none()
        && let Some(sp) = seen
            .get("console_users")
            .or_else(|| seen.get("console_tls_cert"))
    {
        diags.push(
            Diagnostic::warning(
                sp,
                "the console's settings are given but no `console` address: the console stays off",
            )
            .hint("add `console = ADDR:PORT` to serve it"),
        );
    }
}

/// The failover keys, when `backup_active = 1`.
fn check_failover(g: &Global, seen: &KeySpans, diags: &mut Vec<Diagnostic>) {
    let at = |k: &str| seen.get(k).or_else(|| seen.get("backup_active"));
    if let (Some(p), Some(n), Some(sp)) = (g.preempt, g.nice_failback, seen.get("nice_failback"))
        && p == n
    {
        diags.push(
            Diagnostic::error(
                sp,
                format!(
                    "`preempt = {}` and `nice_failback = {}` contradict each other",
                    u8::from(p),
                    u8::from(n)
                ),
            )
            .hint("`nice_failback = 1` means `preempt = 0`; keep one of the two keys"),
        );
    }
    if !g.failover() {
        return;
    }
    if !g.notify_email.is_empty()
        && g.smtp_server.is_none()
        && let Some(sp) = seen.get("notify_email")
    {
        diags.push(
            Diagnostic::error(
                sp,
                "`notify_email` is set but no `smtp_server` to send through",
            )
            .hint(
                "set `smtp_server = ADDRESS[:PORT]` (a relay that accepts mail from this director)",
            ),
        );
    }
    if g.smtp_server.is_some()
        && g.notify_email.is_empty()
        && let Some(sp) = seen.get("smtp_server")
    {
        diags.push(
            Diagnostic::warning(
                sp,
                "`smtp_server` is set but no `notify_email`: no mail will be sent",
            )
            .hint("add `notify_email = ADDRESS`, one line per recipient"),
        );
    }
    if g.sync == Some(true)
        && g.auth_key_file.is_none()
        && let Some(sp) = seen.get("sync")
    {
        diags.push(
            Diagnostic::error(sp, "`sync = 1` sends lvs.cf between the directors, which needs `auth_key_file`")
                .hint("create a key (`head -c 32 /dev/urandom | base64 > /etc/fulcrum/ha.key`), copy it to every director, and set `auth_key_file`"),
        );
    }
    if g.primary.is_none()
        && let Some(sp) = at("primary")
    {
        diags.push(
            Diagnostic::error(sp, "`backup_active = 1` but no `primary` is given")
                .hint("set `primary = ADDRESS` (the primary director's heartbeat address) and `backup = ADDRESS`"),
        );
    }
    if g.backup.is_none()
        && g.peer.is_empty()
        && let Some(sp) = at("backup")
    {
        diags.push(
            Diagnostic::error(sp, "`backup_active = 1` but no `backup` or `peer` is given")
                .hint("set `backup = ADDRESS` to the backup director's heartbeat address"),
        );
    }
    let k = g.effective_keepalive().0;
    let sp = at("keepalive");
    match g.vrrp_version.unwrap_or_default() {
        VrrpVersion::V2 => {
            if (k.subsec_nanos() != 0 || k.as_secs() == 0 || k.as_secs() > 255)
                && let Some(sp) = sp
            {
                diags.push(
                    Diagnostic::error(sp, format!("`keepalive` ({}) cannot be carried by VRRP version 2", Seconds(k)))
                        .hint("version 2 adverts are whole seconds from 1 to 255; use `vrrp_version = 3` for sub-second intervals"),
                );
            }
            if let Some(a) = g.primary.iter().chain(&g.backup).find_map(|h| match h {
                Host::Addr(a @ IpAddr::V6(_)) => Some(*a),
                _ => None,
            }) && let Some(sp) = seen.get("vrrp_version")
            {
                diags.push(
                    Diagnostic::error(
                        sp,
                        format!("VRRP version 2 is IPv4 only, and director {a} is IPv6"),
                    )
                    .hint("use `vrrp_version = 3`"),
                );
            }
        }
        VrrpVersion::V3 => {
            if (k < Duration::from_millis(10)
                || k > Duration::from_millis(40_950)
                || !k.as_nanos().is_multiple_of(10_000_000))
                && let Some(sp) = sp
            {
                diags.push(
                    Diagnostic::error(
                        sp,
                        format!(
                            "`keepalive` ({}) cannot be carried by VRRP version 3",
                            Seconds(k)
                        ),
                    )
                    .hint("version 3 adverts are in hundredths of a second, from 0.01 to 40.95"),
                );
            }
        }
    }
}

fn check_virtuals(cfg: &Config, infos: &[VirtualInfo], diags: &mut Vec<Diagnostic>) {
    let mut names: HashMap<&str, Span> = HashMap::new();
    let mut keys: HashMap<ServiceKey, (Span, &str)> = HashMap::new();
    for (v, info) in cfg.virtuals.iter().zip(infos) {
        let at = |k: &str| info.keys.get(k).unwrap_or(info.header);
        if let Some(first) = names.get(v.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    info.header,
                    format!("virtual server `{}` is defined twice", v.name),
                )
                .hint(format!(
                    "the first is at line {}; give each virtual server its own name",
                    first.line
                )),
            );
        } else {
            names.insert(&v.name, info.header);
        }
        if v.address.is_none() && v.fwmark.is_none() && info.keys.get("address").is_none() {
            diags.push(
                Diagnostic::error(
                    info.header,
                    format!("virtual server `{}` has no `address`", v.name),
                )
                .hint("add `address = IP [DEVICE:ALIAS]`, e.g. `address = 1.2.3.1 eth0:1`"),
            );
        }
        if v.active.is_none() {
            diags.push(
                Diagnostic::warning(
                    info.header,
                    format!(
                        "virtual server `{}` has no `active` key and stays inactive",
                        v.name
                    ),
                )
                .hint("Piranha's default is 0; add `active = 1` to serve it"),
            );
        }
        let key = v.service_key();
        let family = key.map(|k| k.family());
        if let Some(k) = key {
            if let Some((first, other)) = keys.get(&k) {
                diags.push(
                    Diagnostic::error(at("address"), format!("virtual servers `{other}` and `{}` are the same service ({k})", v.name))
                        .hint(format!("`{other}` is at line {}; change the address, port, protocol or fwmark of one", first.line)),
                );
            } else {
                keys.insert(k, (info.header, &v.name));
            }
        }
        if v.fwmark.is_none() && v.effective_port() == 0 && v.persistent.unwrap_or(0) == 0 {
            diags.push(
                Diagnostic::error(
                    at("port"),
                    format!(
                        "virtual server `{}` listens on port 0 without persistence",
                        v.name
                    ),
                )
                .hint("port 0 (all ports) needs `persistent = SECONDS`; or set a port"),
            );
        }
        if v.one_packet == Some(true)
            && v.fwmark.is_none()
            && v.effective_protocol() != Protocol::Udp
        {
            diags.push(
                Diagnostic::error(
                    at("one_packet"),
                    "one-packet scheduling is only for UDP and fwmark services",
                )
                .hint("set `protocol = udp`, or remove `one_packet`"),
            );
        }
        if v.transparent == Some(true) {
            if v.fwmark.is_none() && v.effective_protocol() != Protocol::Tcp {
                diags.push(
                    Diagnostic::error(
                        at("transparent"),
                        "transparent proxying is for TCP services",
                    )
                    .hint("remove `transparent`, or make the virtual server `protocol = tcp`"),
                );
            } else if cfg.global.effective_dataplane() == Dataplane::Proxy
                && cfg.global.nat_router.is_none()
            {
                diags.push(
                    Diagnostic::warning(
                        at("transparent"),
                        "with `transparent = 1` the real servers see the client's address and must send their replies through this director",
                    )
                    .hint("make the director the real servers' router: set `nat_router` (and that address as the real servers' default route)"),
                );
            }
        }
        if cfg.global.effective_dataplane() == Dataplane::Proxy {
            if v.fwmark.is_some() {
                diags.push(
                    Diagnostic::error(at("fwmark"), "fwmark services need the `ipvs` data plane: the `proxy` data plane sees no packet marks")
                        .hint("remove `dataplane = proxy` (the default, `auto`, uses the kernel's IPVS where the host has it) or set `dataplane = ipvs`; or describe the service by `address` and `port`"),
                );
            }
            if v.protocol == Some(Protocol::Sctp) {
                diags.push(
                    Diagnostic::error(at("protocol"), "SCTP services need the `ipvs` data plane")
                        .hint("remove `dataplane = proxy` (the default, `auto`, uses the kernel's IPVS where the host has it) or set `dataplane = ipvs`; or use tcp or udp"),
                );
            }
        }
        let sched = v.effective_scheduler();
        if cfg.global.effective_dataplane() == Dataplane::Xdp {
            let hint =
                "set `dataplane = ipvs` (the kernel's IPVS) for this virtual server, or change it";
            if v.fwmark.is_some() {
                diags.push(
                    Diagnostic::error(at("fwmark"), "fwmark services need the `ipvs` data plane: XDP runs before anything marks a packet")
                        .hint(hint),
                );
            }
            if v.address.as_ref().is_some_and(|a| a.device().is_none()) {
                diags.push(
                    Diagnostic::error(at("address"), "the `xdp` data plane runs on the interface of the virtual server's address: name it")
                        .hint("write the device after the address, e.g. `address = 192.0.2.10 eth0:1`"),
                );
            }
        }
        for f in &v.sched_flags {
            if f.scheduler() != sched {
                diags.push(
                    Diagnostic::error(
                        at("sched_flags"),
                        format!(
                            "scheduler flag `{}` needs `scheduler = {}`, not {sched}",
                            f.name(),
                            f.scheduler()
                        ),
                    )
                    .hint(format!("remove `{}` or change the scheduler", f.name())),
                );
            }
        }
        match (v.pmask, family) {
            (Some(Pmask::V6(_)), Some(Family::V4)) => diags.push(
                Diagnostic::error(
                    at("pmask"),
                    "an IPv6 prefix length cannot be the persistence mask of an IPv4 service",
                )
                .hint("write a dotted mask such as 255.255.255.0"),
            ),
            (Some(Pmask::V4(_)), Some(Family::V6)) => diags.push(
                Diagnostic::error(
                    at("pmask"),
                    "a dotted mask cannot be the persistence mask of an IPv6 service",
                )
                .hint("write a prefix length from 1 to 128, e.g. 64"),
            ),
            _ => {}
        }
        if let (Some(s), Some(fam)) = (&v.sorry_server, family)
            && Family::of(&s.addr) != fam
        {
            diags.push(
                Diagnostic::error(
                    at(if info.keys.get("fallback").is_some() {
                        "fallback"
                    } else {
                        "sorry_server"
                    }),
                    "the sorry server's address family differs from the service's",
                )
                .hint("use an address of the same family as `address`"),
            );
        }
        let external = v.checktype == Some(CheckType::External)
            || v.servers
                .iter()
                .any(|s| s.checktype == Some(CheckType::External));
        if external && v.send_program.is_none() {
            diags.push(
                Diagnostic::error(at("checktype"), format!("virtual server `{}` has external checks but no `send_program`", v.name))
                    .hint("add `send_program = \"/path/to/check %h %p\"` (%h: the real server's address, %p: its port)"),
            );
        }
        let uses = |kinds: &[CheckType]| {
            v.checktype.is_some_and(|c| kinds.contains(&c))
                || v.servers
                    .iter()
                    .any(|s| s.checktype.is_some_and(|c| kinds.contains(&c)))
        };
        let http_checked = uses(&[CheckType::HttpGet, CheckType::HttpsGet]);
        let dns_checked = uses(&[CheckType::Dns]);
        let tcp_only = [
            CheckType::HttpGet,
            CheckType::HttpsGet,
            CheckType::Smtp,
            CheckType::Ftp,
            CheckType::Pop,
            CheckType::Imap,
            CheckType::Nntp,
        ];
        if uses(&tcp_only) && v.effective_protocol() != fulcrum_core::Protocol::Tcp {
            diags.push(
                Diagnostic::error(at("checktype"), format!("virtual server `{}` is not TCP, so its real servers cannot have HTTP, SMTP, FTP, POP, IMAP or NNTP checks", v.name))
                    .hint("use `checktype = connect`, or `external` with a program that speaks the protocol"),
            );
        }
        if http_checked && v.request.as_ref().is_some_and(|r| !r.starts_with('/')) {
            diags.push(
                Diagnostic::error(
                    at("request"),
                    "an HTTP check's `request` is a path starting with `/`",
                )
                .hint("write the path to fetch, e.g. /health or /index.html?check=1"),
            );
        }
        if dns_checked {
            match &v.request {
                None => diags.push(
                    Diagnostic::error(at("checktype"), format!("virtual server `{}` has DNS checks but no `request`", v.name))
                        .hint("add `request = NAME`, the name the real servers must resolve, e.g. www.example.com"),
                ),
                Some(r) if !valid_hostname(r.trim_end_matches('.')) => diags.push(
                    Diagnostic::error(at("request"), format!("a DNS check's `request` is a name to resolve, not `{r}`"))
                        .hint("write a domain name, e.g. www.example.com"),
                ),
                Some(_) => {}
            }
        }
        // The patterns the checks compile: an invalid one would stop
        // `fulcrum run` (and a reload), so it is an error here, at its line.
        if http_checked
            && let Some(r) = &v.receive
            && let Err(e) = regex::bytes::Regex::new(r)
        {
            diags.push(
                Diagnostic::error(at("receive"), format!("`receive` is not a valid regular expression: {}", regex_error(&e)))
                    .hint("HTTP checks search the body with it: fix the pattern, or escape the character with `\\`"),
            );
        }
        if v.use_regex == Some(true)
            && let Some(e) = v.expect.as_ref().filter(|e| *e != "*")
            && let Err(err) = regex::bytes::Regex::new(e)
        {
            diags.push(
                Diagnostic::error(
                    at("expect"),
                    format!(
                        "`expect` is not a valid regular expression: {}",
                        regex_error(&err)
                    ),
                )
                .hint("fix the pattern, or set `use_regex = 0` to match the text as written"),
            );
        }
        let unused: &[&str] = match (http_checked, dns_checked) {
            (true, _) => &[],
            (false, true) => &["digest", "status_code", "virtualhost", "tls_ca"],
            (false, false) => &[
                "request",
                "receive",
                "digest",
                "status_code",
                "virtualhost",
                "tls_ca",
            ],
        };
        if let Some(k) = unused.iter().find(|k| info.keys.get(k).is_some()) {
            diags.push(
                Diagnostic::warning(
                    at(k),
                    format!("`{k}` is used only by HTTP (and, for `request` and `receive`, DNS) checks, and no real server of `{}` has one", v.name),
                )
                .hint("set `checktype = http_get` (or `https_get`, or `dns`)"),
            );
        }
        if v.misc_dynamic == Some(true) && v.expect.is_some() && v.send_program.is_some() {
            diags.push(
                Diagnostic::warning(at("misc_dynamic"), "`misc_dynamic` has no effect when `expect` is set: the program's output decides, not its exit code")
                    .hint("remove `expect` to let the exit code set the weight"),
            );
        }
        check_servers(cfg, v, info, family, diags);
    }
}

/// The regex crate's error without its drawing of the pattern: the line
/// that says what is wrong.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default())
        .to_string()
}

fn check_servers(
    cfg: &Config,
    v: &VirtualServer,
    info: &VirtualInfo,
    family: Option<Family>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut names: HashMap<&str, Span> = HashMap::new();
    let mut addrs: HashMap<(IpAddr, u16), (Span, &str)> = HashMap::new();
    for (s, (header, keys)) in v.servers.iter().zip(&info.servers) {
        let at = |k: &str| keys.get(k).unwrap_or(*header);
        if let Some(first) = names.get(s.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    *header,
                    format!(
                        "real server `{}` is defined twice in virtual server `{}`",
                        s.name, v.name
                    ),
                )
                .hint(format!(
                    "the first is at line {}; give each real server its own name",
                    first.line
                )),
            );
        } else {
            names.insert(&s.name, *header);
        }
        let Some(addr) = s.address else {
            if keys.get("address").is_some() {
                continue; // invalid, already reported
            }
            diags.push(
                Diagnostic::error(
                    *header,
                    format!("real server `{}` has no `address`", s.name),
                )
                .hint("add `address = IP` with the real server's address on the private network"),
            );
            continue;
        };
        if s.active.is_none() {
            diags.push(
                Diagnostic::warning(
                    *header,
                    format!(
                        "real server `{}` has no `active` key and is not used",
                        s.name
                    ),
                )
                .hint("Piranha's default is 0; add `active = 1` to use it"),
            );
        }
        let routing = v.routing_for(s, &cfg.global);
        if let Some(fam) = family
            && Family::of(&addr) != fam
            && routing != Routing::Tunnel
        {
            diags.push(
                Diagnostic::error(at("address"), format!("real server `{}` is {} but virtual server `{}` is {}", s.name, fam_name(Family::of(&addr)), v.name, fam_name(fam)))
                    .hint("only tunnelled real servers (`forwarding = tunnel`) may use the other address family"),
            );
        }
        if routing == Routing::Tunnel
            && cfg.global.effective_dataplane() == Dataplane::Xdp
            && let Some(fam) = family
            && Family::of(&addr) != fam
        {
            diags.push(
                Diagnostic::error(at("address"), format!("real server `{}` is tunnelled across address families, which the `xdp` data plane does not do yet", s.name))
                    .hint("give the real server an address of the virtual server's family, or set `dataplane = ipvs`"),
            );
        }
        check_tunnel(
            v,
            s,
            routing,
            cfg.global.effective_dataplane(),
            |k| keys.get(k).or_else(|| info.keys.get(k)).unwrap_or(*header),
            diags,
        );
        if routing != Routing::Nat && cfg.global.effective_dataplane() == Dataplane::Proxy {
            let sp = keys
                .get("forwarding")
                .or_else(|| info.keys.get("forwarding"))
                .unwrap_or(*header);
            diags.push(
                Diagnostic::error(sp, format!("real server `{}` uses {} routing, which the `proxy` data plane cannot do", s.name, routing.name()))
                    .hint("remove `dataplane = proxy` (the default, `auto`, uses the kernel's IPVS where the host has it) or set `dataplane = ipvs`; or use `forwarding = nat`"),
            );
        }
        let vport = v.effective_port();
        if let Some(p) = s.port
            && v.fwmark.is_none()
            && p != vport
            && routing != Routing::Nat
        {
            diags.push(
                Diagnostic::error(at("port"), format!("real server `{}` remaps port {vport} to {p}, which {} routing cannot do", s.name, routing.name()))
                    .hint("with direct routing or tunnelling the packet reaches the real server unchanged: use the virtual port, or `forwarding = nat`"),
            );
        }
        if let Some(p) = s.port
            && p != vport
            && routing == Routing::Nat
            && v.effective_protocol() == Protocol::Sctp
            && cfg.global.effective_dataplane() == Dataplane::Xdp
        {
            diags.push(
                Diagnostic::error(at("port"), format!("real server `{}` remaps SCTP port {vport} to {p}, which the `xdp` data plane cannot do (it does not recompute SCTP's CRC)", s.name))
                    .hint("keep the virtual server's port, or set `dataplane = ipvs`"),
            );
        }
        if vport == 21
            && v.fwmark.is_none()
            && v.effective_protocol() == Protocol::Tcp
            && routing != Routing::Nat
        {
            let sp = keys
                .get("forwarding")
                .or_else(|| info.keys.get("forwarding"))
                .unwrap_or(*header);
            diags.push(
                Diagnostic::warning(sp, format!("FTP by {} routing: real server `{}` will get the control connection (port 21) but not the data connections, which go to other ports", routing.name(), s.name))
                    .hint("the kernel's ip_vs_ftp helper follows FTP only through NAT (`forwarding = nat`); otherwise make it a persistent fwmark service covering port 21 and the servers' passive ports"),
            );
        }
        let port = s.port.unwrap_or(if v.fwmark.is_some() { 0 } else { vport });
        if let Some((first, other)) = addrs.get(&(addr, port)) {
            diags.push(
                Diagnostic::error(
                    at("address"),
                    format!(
                        "real servers `{other}` and `{}` are the same destination",
                        s.name
                    ),
                )
                .hint(format!("`{other}` is at line {}; remove one", first.line)),
            );
        } else {
            addrs.insert((addr, port), (*header, &s.name));
        }
        if s.proxy_protocol.is_some() && v.effective_protocol() != Protocol::Tcp {
            diags.push(
                Diagnostic::error(
                    at("proxy_protocol"),
                    format!(
                        "real server `{}` asks for the PROXY protocol, which is for TCP services",
                        s.name
                    ),
                )
                .hint("remove `proxy_protocol`, or make the virtual server `protocol = tcp`"),
            );
        }
        if let Some(l) = s.lthreshold
            && l > s.uthreshold.unwrap_or(0)
        {
            diags.push(
                Diagnostic::error(at("lthreshold"), format!("`lthreshold` ({l}) is above `uthreshold` ({})", s.uthreshold.unwrap_or(0)))
                    .hint("the lower threshold re-opens a server closed at the upper one; set uthreshold above it"),
            );
        }
    }
}

fn fam_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Some(Seconds::from_secs(2)));
        assert_eq!(
            parse_seconds("0.35"),
            Some(Seconds(Duration::from_millis(350)))
        );
        assert_eq!(
            parse_seconds("1.000001"),
            Some(Seconds(Duration::from_micros(1_000_001)))
        );
        assert_eq!(parse_seconds("1.0000001"), None);
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds(".5"), None);
        assert_eq!(parse_seconds("5."), None);
        assert_eq!(Seconds(Duration::from_millis(350)).to_string(), "0.35");
        assert_eq!(Seconds::from_secs(10).to_string(), "10");
    }
}

//! ipvsadm 1.31's command line: popt's option syntax, `process_options`'
//! checks in their order, and the exact messages and exit codes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fulcrum_core::{
    Family, Forwarding, Netmask, Protocol, SchedFlags, ServiceKey, SyncDaemon, SyncRole,
    TunnelCsum, TunnelType,
};

use super::resolve::Resolver;

/// `MAX_TIMEOUT`: 31 days.
pub(super) const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`.
const DEFAULT_PERSISTENT: u32 = 360;

/// A failure, as ipvsadm reports it: text for stderr and the exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdmError {
    /// Exactly what ipvsadm writes to stderr, newlines included.
    pub message: String,
    /// The exit status: 2 for validation errors, 255 for popt errors and
    /// failed operations.
    pub exit_code: i32,
}

fn fail(msg: impl Into<String>) -> AdmError {
    AdmError {
        message: format!("{}\n", msg.into()),
        exit_code: 2,
    }
}

fn tryhelp(program: &str) -> AdmError {
    AdmError {
        message: format!("Try `{program} -h' or '{program} --help' for more information.\n"),
        exit_code: 255,
    }
}

/// A virtual service definition (`-A`, `-E`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SvcArgs {
    /// The service.
    pub key: ServiceKey,
    /// Scheduler name as given (at most 15 characters), `wlc` by default.
    pub scheduler: String,
    /// `-b`.
    pub flags: SchedFlags,
    /// `-p`: the timeout when persistent.
    pub persistent: Option<u32>,
    /// `-M`.
    pub netmask: Netmask,
    /// `-o`.
    pub one_packet: bool,
    /// `--pe`.
    pub pe_name: Option<String>,
}

/// A real server definition (`-a`, `-e`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DestArgs {
    /// Address.
    pub addr: IpAddr,
    /// Port (the service port when not given, and always under DR/TUN).
    pub port: u16,
    /// `-g` (default), `-i` with tunnel options, `-m`.
    pub fwd: Forwarding,
    /// `-w`, default 1.
    pub weight: u32,
    /// `-x`.
    pub u_threshold: u32,
    /// `-y`.
    pub l_threshold: u32,
}

/// What `-L` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ListTarget {
    /// Every service.
    All,
    /// One service, without the version header.
    Service(ServiceKey),
    /// `-c`: the connection table.
    Connections,
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
}

/// Listing format flags (`FMT_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(
    missing_docs,
    reason = "each flag is the ipvsadm option of the same name"
)]
pub struct Format {
    pub numeric: bool,
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

/// `-L`'s arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListArgs {
    /// What to list.
    pub target: ListTarget,
    /// How.
    pub format: Format,
}

/// One ipvsadm command, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdmCommand {
    /// `-A`
    AddService(SvcArgs),
    /// `-E`
    EditService(SvcArgs),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-C`
    Clear,
    /// `-R`: commands follow on standard input.
    Restore,
    /// `-S`
    Save {
        /// `-n`
        numeric: bool,
    },
    /// `-a`
    AddDest(ServiceKey, DestArgs),
    /// `-e`
    EditDest(ServiceKey, DestArgs),
    /// `-d`
    DeleteDest(ServiceKey, IpAddr, u16),
    /// `-L` / `-l`
    List(ListArgs),
    /// `-Z`
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`
    SetTimeout(u32, u32, u32),
    /// `--start-daemon`
    StartDaemon(SyncDaemon),
    /// `--stop-daemon`
    StopDaemon(SyncRole, u8),
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h`: print [`usage`], exit 0.
    Help,
    /// `-v`: print [`version`], exit 0.
    Version,
    /// A command.
    Command(AdmCommand),
}

/// ipvsadm's version line.
pub fn version() -> String {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".to_string()
}

/// ipvsadm's help text for a program name.
pub fn usage(program: &str) -> String {
    let p = program;
    format!(
        "{ver}Usage:\n  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n  {p} -D virtual-service\n  {p} -C\n  {p} -R\n  {p} -S [-n]\n  {p} -a|e virtual-service -r server-address [options]\n  {p} -d virtual-service -r server-address\n  {p} -L|l [virtual-service] [options]\n  {p} -Z [virtual-service]\n  {p} --set tcp tcpfin udp\n  {p} --start-daemon {{master|backup}} [daemon-options]\n  {p} --stop-daemon {{master|backup}}\n  {p} -h\n\n\
Commands:\n\
Either long or short options are allowed.\n  --add-service     -A        add virtual service with options\n  --edit-service    -E        edit virtual service with options\n  --delete-service  -D        delete virtual service\n  --clear           -C        clear the whole table\n  --restore         -R        restore rules from stdin\n  --save            -S        save rules to stdout\n  --add-server      -a        add real server with options\n  --edit-server     -e        edit real server with options\n  --delete-server   -d        delete real server\n  --list            -L|-l     list the table\n  --zero            -Z        zero counters in a service or all services\n  --set tcp tcpfin udp        set connection timeout values\n  --start-daemon              start connection sync daemon\n  --stop-daemon               stop connection sync daemon\n  --help            -h        display this help message\n\n\
virtual-service:\n  --tcp-service|-t  service-address   service-address is host[:port]\n  --udp-service|-u  service-address   service-address is host[:port]\n  --sctp-service    service-address   service-address is host[:port]\n  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n\n\
Options:\n  --ipv6         -6                   fwmark entry uses IPv6\n  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,\n                                      the default scheduler is wlc.\n  --pe            engine              alternate persistence engine may be sip,\n                                      not set by default.\n  --persistent   -p [timeout]         persistent service\n  --netmask      -M netmask           persistent granularity mask\n  --real-server  -r server-address    server-address is host (and port)\n  --gatewaying   -g                   gatewaying (direct routing) (default)\n  --ipip         -i                   ipip encapsulation (tunneling)\n  --masquerading -m                   masquerading (NAT)\n  --tun-type      type                one of ipip|gue|gre,\n                                      the default tunnel type is ipip.\n  --tun-port      port                tunnel destination port\n  --tun-nocsum                        tunnel encapsulation without checksum\n  --tun-csum                          tunnel encapsulation with checksum\n  --tun-remcsum                       tunnel encapsulation with remote checksum\n  --weight       -w weight            capacity of real server\n  --u-threshold  -x uthreshold        upper threshold of connections\n  --l-threshold  -y lthreshold        lower threshold of connections\n  --connection   -c                   output of current IPVS connections\n  --timeout                           output of timeout (tcp tcpfin udp)\n  --daemon                            output of daemon information\n  --stats                             output of statistics information\n  --rate                              output of rate information\n  --exact                             expand numbers (display exact values)\n  --thresholds                        output of thresholds information\n  --persistent-conn                   output of persistent connection info\n  --tun-info                          output of tunnel information\n  --nosort                            disable sorting output of service/server entries\n  --sort                              does nothing, for backwards compatibility\n  --ops          -o                   one-packet scheduling\n  --numeric      -n                   numeric output of addresses and ports\n  --sched-flags  -b flags             scheduler flags (comma-separated)\n\
Daemon Options:\n  --syncid sid                        syncid for connection sync (default=255)\n  --sync-maxlen length                Max sync message length (default=1472)\n  --mcast-interface interface         multicast interface for connection sync\n  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n  --mcast-port port                   UDP port (default=8848)\n  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
        ver = version()
    )
}

// ===== the option table =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    // commands
    Add,
    Edit,
    Del,
    Clear,
    List,
    Zero,
    AddDest,
    EditDest,
    DelDest,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    // options
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    Real,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThresh,
    LThresh,
    Numeric,
    Connection,
    McastIfn,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
}

/// (long name, short name, argument, tag) as in ipvsadm's `options_table`.
const TABLE: &[(&str, Option<char>, Arg, Opt)] = &[
    ("add-service", Some('A'), Arg::None, Opt::Add),
    ("edit-service", Some('E'), Arg::None, Opt::Edit),
    ("delete-service", Some('D'), Arg::None, Opt::Del),
    ("clear", Some('C'), Arg::None, Opt::Clear),
    ("list", Some('L'), Arg::None, Opt::List),
    ("list", Some('l'), Arg::None, Opt::List),
    ("zero", Some('Z'), Arg::None, Opt::Zero),
    ("add-server", Some('a'), Arg::None, Opt::AddDest),
    ("edit-server", Some('e'), Arg::None, Opt::EditDest),
    ("delete-server", Some('d'), Arg::None, Opt::DelDest),
    ("set", None, Arg::None, Opt::Set),
    ("help", Some('h'), Arg::None, Opt::Help),
    ("version", Some('v'), Arg::None, Opt::Version),
    ("restore", Some('R'), Arg::None, Opt::Restore),
    ("save", Some('S'), Arg::None, Opt::Save),
    ("start-daemon", None, Arg::Required, Opt::StartDaemon),
    ("stop-daemon", None, Arg::Required, Opt::StopDaemon),
    ("tcp-service", Some('t'), Arg::Required, Opt::Tcp),
    ("udp-service", Some('u'), Arg::Required, Opt::Udp),
    ("sctp-service", None, Arg::Required, Opt::Sctp),
    ("fwmark-service", Some('f'), Arg::Required, Opt::Fwmark),
    ("scheduler", Some('s'), Arg::Required, Opt::Scheduler),
    ("persistent", Some('p'), Arg::Optional, Opt::Persistent),
    ("netmask", Some('M'), Arg::Required, Opt::Netmask),
    ("real-server", Some('r'), Arg::Required, Opt::Real),
    ("masquerading", Some('m'), Arg::None, Opt::Masq),
    ("ipip", Some('i'), Arg::None, Opt::Ipip),
    ("gatewaying", Some('g'), Arg::None, Opt::Gate),
    ("weight", Some('w'), Arg::Required, Opt::Weight),
    ("u-threshold", Some('x'), Arg::Required, Opt::UThresh),
    ("l-threshold", Some('y'), Arg::Required, Opt::LThresh),
    ("numeric", Some('n'), Arg::None, Opt::Numeric),
    ("connection", Some('c'), Arg::None, Opt::Connection),
    ("mcast-interface", None, Arg::Required, Opt::McastIfn),
    ("syncid", None, Arg::Required, Opt::SyncId),
    ("timeout", None, Arg::None, Opt::Timeout),
    ("daemon", None, Arg::None, Opt::Daemon),
    ("stats", None, Arg::None, Opt::Stats),
    ("rate", None, Arg::None, Opt::Rate),
    ("thresholds", None, Arg::None, Opt::Thresholds),
    ("persistent-conn", None, Arg::None, Opt::PersistentConn),
    ("nosort", None, Arg::None, Opt::NoSort),
    ("sort", None, Arg::None, Opt::Sort),
    ("exact", Some('X'), Arg::None, Opt::Exact),
    ("ipv6", Some('6'), Arg::None, Opt::Ipv6),
    ("ops", Some('o'), Arg::None, Opt::Ops),
    ("pe", None, Arg::Required, Opt::Pe),
    ("sched-flags", Some('b'), Arg::Required, Opt::SchedFlags),
    ("mcast-group", None, Arg::Required, Opt::McastGroup),
    ("mcast-port", None, Arg::Required, Opt::McastPort),
    ("mcast-ttl", None, Arg::Required, Opt::McastTtl),
    ("sync-maxlen", None, Arg::Required, Opt::SyncMaxlen),
    ("tun-info", None, Arg::None, Opt::TunInfo),
    ("tun-type", None, Arg::Required, Opt::TunType),
    ("tun-port", None, Arg::Required, Opt::TunPort),
    ("tun-nocsum", None, Arg::None, Opt::TunNoCsum),
    ("tun-csum", None, Arg::None, Opt::TunCsum),
    ("tun-remcsum", None, Arg::None, Opt::TunRemCsum),
];

/// popt's error codes we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoptError {
    BadOpt,
    NoArg,
}

impl PoptError {
    fn text(self) -> &'static str {
        match self {
            PoptError::BadOpt => "unknown option",
            PoptError::NoArg => "missing argument",
        }
    }
}

enum Next {
    Opt {
        opt: Opt,
        arg: Option<String>,
        text: String,
    },
    Err {
        err: PoptError,
        text: String,
    },
    Done,
}

/// popt's option scanner: long options (`--x`, `--x=v`), clusters of short
/// options (`-Ln`, `-t1.2.3.4:80`), `--`, and arguments collected aside.
struct Popt<'a> {
    argv: &'a [String],
    next: usize,
    cluster: Option<(usize, usize)>, // (argv index, char offset)
    args: Vec<String>,
    only_args: bool,
}

impl<'a> Popt<'a> {
    fn new(argv: &'a [String]) -> Self {
        Popt {
            argv,
            next: 0,
            cluster: None,
            args: Vec::new(),
            only_args: false,
        }
    }

    fn take_following(&mut self, optional: bool) -> Option<String> {
        let a = self.argv.get(self.next)?;
        if optional && a.starts_with('-') {
            return None;
        }
        self.next += 1;
        Some(a.clone())
    }

    fn get(&mut self) -> Next {
        if let Some((i, off)) = self.cluster {
            let word = &self.argv[i];
            let chars: Vec<char> = word.chars().collect();
            let c = chars[off];
            let rest: String = chars[off + 1..].iter().collect();
            self.cluster = None;
            let Some(&(_, _, arg, opt)) = TABLE.iter().find(|(_, s, _, _)| *s == Some(c)) else {
                return Next::Err {
                    err: PoptError::BadOpt,
                    text: word.clone(),
                };
            };
            let text = format!("-{c}");
            match arg {
                Arg::None => {
                    if !rest.is_empty() {
                        self.cluster = Some((i, off + 1));
                    }
                    Next::Opt {
                        opt,
                        arg: None,
                        text,
                    }
                }
                Arg::Required | Arg::Optional if !rest.is_empty() => Next::Opt {
                    opt,
                    arg: Some(rest),
                    text,
                },
                Arg::Required => match self.take_following(false) {
                    Some(v) => Next::Opt {
                        opt,
                        arg: Some(v),
                        text,
                    },
                    None => Next::Err {
                        err: PoptError::NoArg,
                        text,
                    },
                },
                Arg::Optional => Next::Opt {
                    opt,
                    arg: self.take_following(true),
                    text,
                },
            }
        } else {
            loop {
                let Some(word) = self.argv.get(self.next) else {
                    return Next::Done;
                };
                self.next += 1;
                if self.only_args || word == "-" || !word.starts_with('-') {
                    self.args.push(word.clone());
                    continue;
                }
                if word == "--" {
                    self.only_args = true;
                    continue;
                }
                if let Some(long) = word.strip_prefix("--") {
                    let (name, inline) = match long.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_string())),
                        None => (long, None),
                    };
                    let Some(&(_, _, arg, opt)) = TABLE.iter().find(|(l, _, _, _)| *l == name)
                    else {
                        return Next::Err {
                            err: PoptError::BadOpt,
                            text: word.clone(),
                        };
                    };
                    let text = word.clone();
                    return match (arg, inline) {
                        (Arg::None, Some(_)) => Next::Err {
                            err: PoptError::BadOpt,
                            text,
                        },
                        (Arg::None, None) => Next::Opt {
                            opt,
                            arg: None,
                            text,
                        },
                        (_, Some(v)) => Next::Opt {
                            opt,
                            arg: Some(v),
                            text,
                        },
                        (Arg::Required, None) => match self.take_following(false) {
                            Some(v) => Next::Opt {
                                opt,
                                arg: Some(v),
                                text,
                            },
                            None => Next::Err {
                                err: PoptError::NoArg,
                                text,
                            },
                        },
                        (Arg::Optional, None) => Next::Opt {
                            opt,
                            arg: self.take_following(true),
                            text,
                        },
                    };
                }
                self.cluster = Some((self.next - 1, 1));
                return self.get();
            }
        }
    }

    fn rest_args(&mut self) -> Vec<String> {
        while let Some(w) = self.argv.get(self.next) {
            self.next += 1;
            self.args.push(w.clone());
        }
        std::mem::take(&mut self.args)
    }
}

// ===== C library emulation =====

/// `strtol(s, &end, 10)` that must consume the whole string, within a range
/// (`string_to_number`).
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// `atoi`: leading blanks, a sign, then digits up to the first non-digit.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(18)
        .collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg { -v } else { v }
}

/// glibc's `inet_aton`: 1 to 4 parts in decimal, octal (`0…`) or hex
/// (`0x…`), the last part filling the remaining bytes; anything after
/// white space is ignored.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let s = s
        .split(|c: char| c.is_ascii_whitespace())
        .next()
        .unwrap_or("");
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X"))
        {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if p.is_empty() || (radix != 16 && digits.is_empty()) {
            return None;
        }
        let v = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        vals.push(v);
    }
    let n = vals.len();
    let (head, last) = vals.split_at(n - 1);
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let last_max: u64 = match n {
        1 => 0xffff_ffff,
        2 => 0xff_ffff,
        3 => 0xffff,
        _ => 0xff,
    };
    if last[0] > last_max {
        return None;
    }
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i);
    }
    addr |= last[0];
    Some(Ipv4Addr::from(addr as u32))
}

/// `parse_service`: `host[:port]`, `[v6]:port`, or a bare IPv6 address.
fn parse_service(
    buf: &str,
    proto: Option<Protocol>,
    r: &dyn Resolver,
) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None; // str_is_digit, true for "" as well
    }
    let (host, port): (&str, Option<&str>) = if let Some(inner) = buf.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        (h, Some(after.strip_prefix(':')?))
    } else {
        (buf, None)
    };
    let (addr, port) = if let Ok(a) = host.parse::<Ipv6Addr>() {
        (IpAddr::V6(a), port)
    } else {
        let (h, p) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, port),
        };
        let a = inet_aton(h).or_else(|| r.host_to_addr(h))?;
        (IpAddr::V4(a), p)
    };
    let port = match port {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => proto.and_then(|pr| r.service_to_port(p, pr))?,
        }),
    };
    Some((addr, port))
}

fn parse_timeout(arg: Option<&str>, min: i64) -> Result<u32, AdmError> {
    match arg {
        None => Ok(DEFAULT_PERSISTENT),
        Some(a) => string_to_number(a, min, MAX_TIMEOUT)
            .map(|v| v as u32)
            .ok_or_else(|| fail(format!("invalid timeout value `{a}' specified"))),
    }
}

// ===== option bits and the validation matrix =====

const NUMBER_OF_OPT: usize = 34;
const OPTNAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];
mod optc {
    pub(super) const NUMERIC: usize = 0;
    pub(super) const CONNECTION: usize = 1;
    pub(super) const SERVICE: usize = 2;
    pub(super) const SCHEDULER: usize = 3;
    pub(super) const PERSISTENT: usize = 4;
    pub(super) const NETMASK: usize = 5;
    pub(super) const SERVER: usize = 6;
    pub(super) const FORWARD: usize = 7;
    pub(super) const WEIGHT: usize = 8;
    pub(super) const UTHRESHOLD: usize = 9;
    pub(super) const LTHRESHOLD: usize = 10;
    pub(super) const MCAST: usize = 11;
    pub(super) const TIMEOUT: usize = 12;
    pub(super) const DAEMON: usize = 13;
    pub(super) const STATS: usize = 14;
    pub(super) const RATE: usize = 15;
    pub(super) const THRESHOLDS: usize = 16;
    pub(super) const PERSISTENTCONN: usize = 17;
    pub(super) const NOSORT: usize = 18;
    pub(super) const SYNCID: usize = 19;
    pub(super) const EXACT: usize = 20;
    pub(super) const ONEPACKET: usize = 21;
    pub(super) const PE: usize = 22;
    pub(super) const SCHED_FLAGS: usize = 23;
    pub(super) const MCAST_GROUP: usize = 24;
    pub(super) const MCAST_PORT: usize = 25;
    pub(super) const MCAST_TTL: usize = 26;
    pub(super) const SYNC_MAXLEN: usize = 27;
    pub(super) const TUN_INFO: usize = 28;
    pub(super) const TUN_TYPE: usize = 29;
    pub(super) const TUN_PORT: usize = 30;
    pub(super) const TUN_NOCSUM: usize = 31;
    pub(super) const TUN_CSUM: usize = 32;
    pub(super) const TUN_REMCSUM: usize = 33;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        [
            "add-service",
            "edit-service",
            "delete-service",
            "flush",
            "list",
            "add-server",
            "delete-server",
            "edit-server",
            "set",
            "start-daemon",
            "stop-daemon",
            "restore",
            "save",
            "zero",
        ][self.index()]
    }
}

/// `commands_v_options`, row per command in `Cmd` order.
const COMMANDS_V_OPTIONS: [&[u8; NUMBER_OF_OPT]; 14] = [
    /*ADD*/ b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    /*EDIT*/ b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    /*DEL*/ b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*FLUSH*/ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*LIST*/ b" 11xxxxxxxxx11       xxxxxxx xxxxx",
    /*ADDSRV*/ b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    /*DELSRV*/ b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*EDITSRV*/ b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    /*TIMEOUT*/ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*STARTD*/ b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
    /*STOPD*/ b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
    /*RESTORE*/ b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*SAVE*/ b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    /*ZERO*/ b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// `tunnel_types_v_options`: tun-port, nocsum, csum, remcsum.
const TUNNEL_V_OPTIONS: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];
const TUNOPTS: [usize; 4] = [
    optc::TUN_PORT,
    optc::TUN_NOCSUM,
    optc::TUN_CSUM,
    optc::TUN_REMCSUM,
];

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), AdmError> {
    let row = COMMANDS_V_OPTIONS[cmd.index()];
    let mut count = 0;
    let mut last = 0;
    for (j, rule) in row.iter().enumerate() {
        if options & (1 << j) == 0 {
            if *rule == b'+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                )));
            }
        } else {
            if *rule == b'x' {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                )));
            }
            if *rule == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPTNAMES[j],
                    OPTNAMES[last],
                    cmd.name()
                )));
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(kind: TunnelType, options: u64) -> Result<(), AdmError> {
    let i = match kind {
        TunnelType::Ipip => 0,
        TunnelType::Gue => 1,
        TunnelType::Gre => 2,
    };
    let mut count = 0;
    let mut last = 0;
    for (j, k) in TUNOPTS.iter().enumerate() {
        let rule = TUNNEL_V_OPTIONS[i][j];
        if options & (1 << k) == 0 {
            if rule == b'+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPTNAMES[*k],
                    kind.name()
                )));
            }
        } else {
            if rule == b'x' {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPTNAMES[*k],
                    kind.name()
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = *k;
                    continue;
                }
                return Err(fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPTNAMES[*k],
                    OPTNAMES[last],
                    kind.name()
                )));
            }
        }
    }
    Ok(())
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, AdmError> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut f = SchedFlags::default();
    let flags: Vec<&str> = arg.split(',').filter(|s| !s.is_empty()).collect();
    if flags.is_empty() {
        return Err(fail(format!("invalid scheduler flag `{arg}'")));
    }
    for flag in flags {
        let need = match flag {
            "flag-1" => {
                f.sched1 = true;
                None
            }
            "flag-2" => {
                f.sched2 = true;
                None
            }
            "flag-3" => {
                f.sched3 = true;
                None
            }
            "sh-fallback" => {
                f.sched1 = true;
                Some("sh")
            }
            "sh-port" => {
                f.sched2 = true;
                Some("sh")
            }
            "mh-fallback" => {
                f.sched1 = true;
                Some("mh")
            }
            "mh-port" => {
                f.sched2 = true;
                Some("mh")
            }
            _ => return Err(fail(format!("invalid scheduler flag `{flag}'"))),
        };
        if need.is_some_and(|n| n != sched) {
            return Err(fail(format!("incompatible scheduler flag `{flag}'")));
        }
    }
    Ok(f)
}

/// The command entry ipvsadm builds while scanning (`ipvs_command_entry`).
struct Entry {
    cmd: Option<Cmd>,
    daemon_state: Option<SyncRole>,
    proto: Option<Protocol>,
    family: Family,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched: String,
    persistent: Option<u32>,
    netmask: Netmask,
    one_packet: bool,
    pe: Option<String>,
    dest_family: Family,
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    fwd: u8, // 0 masq, 2 tunnel, 3 route
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    tun_csum: TunnelCsum,
    mcast_ifn: String,
    syncid: u8,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
    sync_maxlen: u16,
    timeouts: (u32, u32, u32),
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            cmd: None,
            daemon_state: None,
            proto: None,
            family: Family::V4,
            addr: None,
            port: 0,
            fwmark: 0,
            sched: String::new(),
            persistent: None,
            netmask: Netmask::V4(u32::MAX),
            one_packet: false,
            pe: None,
            dest_family: Family::V4,
            dest_addr: None,
            dest_port: 0,
            fwd: 3,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_csum: TunnelCsum::NoCsum,
            mcast_ifn: String::new(),
            syncid: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
            sync_maxlen: 0,
            timeouts: (0, 0, 0),
        }
    }
}

fn set_option(options: &mut u64, optc: usize) -> Result<(), AdmError> {
    let bit = 1u64 << optc;
    if *options & bit != 0 {
        return Err(fail(format!(
            "multiple '{}' options specified",
            OPTNAMES[optc]
        )));
    }
    *options |= bit;
    Ok(())
}

fn daemon_state(arg: &str, what: &str) -> Result<SyncRole, AdmError> {
    match arg {
        "master" => Ok(SyncRole::Master),
        "backup" => Ok(SyncRole::Backup),
        _ => Err(fail(what)),
    }
}

/// Parse an argument vector (without the program name) as ipvsadm does.
/// `program` is used in messages, as ipvsadm uses `argv[0]`.
pub fn parse_args(
    program: &str,
    args: &[String],
    resolver: &dyn Resolver,
) -> Result<Invocation, AdmError> {
    let mut p = Popt::new(args);
    let mut ce = Entry::default();
    let mut options: u64 = 0;
    let mut fmt = Format::default();

    let first = match p.get() {
        Next::Opt { opt, arg, .. } => (opt, arg),
        _ => return Err(tryhelp(program)),
    };
    ce.cmd = Some(match first {
        (Opt::Add, _) => Cmd::Add,
        (Opt::Edit, _) => Cmd::Edit,
        (Opt::Del, _) => Cmd::Del,
        (Opt::AddDest, _) => Cmd::AddDest,
        (Opt::EditDest, _) => Cmd::EditDest,
        (Opt::DelDest, _) => Cmd::DelDest,
        (Opt::Clear, _) => Cmd::Flush,
        (Opt::List, _) => Cmd::List,
        (Opt::Zero, _) => Cmd::Zero,
        (Opt::Set, _) => Cmd::Timeout,
        (Opt::Restore, _) => Cmd::Restore,
        (Opt::Save, _) => Cmd::Save,
        (Opt::StartDaemon, arg) => {
            ce.daemon_state = Some(daemon_state(
                arg.as_deref().unwrap_or(""),
                "illegal start-daemon parameter specified",
            )?);
            Cmd::StartDaemon
        }
        (Opt::StopDaemon, arg) => {
            ce.daemon_state = Some(daemon_state(
                arg.as_deref().unwrap_or(""),
                "illegal start_daemon specified",
            )?);
            Cmd::StopDaemon
        }
        (Opt::Help, _) => return Ok(Invocation::Help),
        (Opt::Version, _) => return Ok(Invocation::Version),
        _ => return Err(tryhelp(program)),
    });

    let mut sched_flags_arg = String::new();
    loop {
        let (opt, arg, text) = match p.get() {
            Next::Done => break,
            Next::Err { err, text } => {
                return Err(AdmError {
                    message: format!("{text}: {}\n", err.text()),
                    exit_code: 255,
                });
            }
            Next::Opt { opt, arg, text } => (opt, arg, text),
        };
        let a = arg.as_deref().unwrap_or("");
        match opt {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                set_option(&mut options, optc::SERVICE)?;
                let proto = match opt {
                    Opt::Tcp => Protocol::Tcp,
                    Opt::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                ce.proto = Some(proto);
                let (addr, port) = parse_service(a, Some(proto), resolver)
                    .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
                ce.family = Family::of(&addr);
                if ce.family == Family::V6 {
                    ce.netmask = Netmask::V6(128);
                }
                ce.addr = Some(addr);
                if let Some(port) = port {
                    ce.port = port;
                }
            }
            Opt::Fwmark => {
                set_option(&mut options, optc::SERVICE)?;
                ce.family = Family::V4;
                ce.proto = Some(Protocol::Tcp);
                ce.fwmark = match string_to_number(a, 1, i64::from(u32::MAX)) {
                    Some(v) => v as u32,
                    None => return Err(fail(format!("invalid fwmark value `{a}' specified"))),
                };
            }
            Opt::Scheduler => {
                set_option(&mut options, optc::SCHEDULER)?;
                ce.sched = a.chars().take(15).collect();
            }
            Opt::Persistent => {
                set_option(&mut options, optc::PERSISTENT)?;
                ce.persistent = Some(parse_timeout(arg.as_deref(), 1)?);
            }
            Opt::Netmask => {
                set_option(&mut options, optc::NETMASK)?;
                if ce.family != Family::V6 {
                    let m = inet_aton(a)
                        .or_else(|| resolver.host_to_addr(a))
                        .ok_or_else(|| fail("illegal virtual server persistent mask specified"))?;
                    ce.netmask = Netmask::V4(u32::from(m));
                } else {
                    let n = atoi(a);
                    if !(1..=128).contains(&n) {
                        return Err(fail("illegal ipv6 netmask specified"));
                    }
                    ce.netmask = Netmask::V6(n as u8);
                }
            }
            Opt::Real => {
                set_option(&mut options, optc::SERVER)?;
                let (addr, port) = parse_service(a, ce.proto, resolver)
                    .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
                ce.dest_family = Family::of(&addr);
                ce.dest_addr = Some(addr);
                // Copy the service port when none is given.
                ce.dest_port = port.unwrap_or(ce.port);
            }
            Opt::Ipip => {
                set_option(&mut options, optc::FORWARD)?;
                ce.fwd = 2;
            }
            Opt::Gate => {
                set_option(&mut options, optc::FORWARD)?;
                ce.fwd = 3;
            }
            Opt::Masq => {
                set_option(&mut options, optc::FORWARD)?;
                ce.fwd = 0;
            }
            Opt::Weight => {
                set_option(&mut options, optc::WEIGHT)?;
                // ipvsadm 1.31 takes 0..INT_MAX, as the kernel does.
                ce.weight = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal weight specified"))?
                    as u32;
            }
            Opt::UThresh => {
                set_option(&mut options, optc::UTHRESHOLD)?;
                ce.u_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal u_threshold specified"))?
                    as u32;
            }
            Opt::LThresh => {
                set_option(&mut options, optc::LTHRESHOLD)?;
                ce.l_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| fail("illegal l_threshold specified"))?
                    as u32;
            }
            Opt::Connection => set_option(&mut options, optc::CONNECTION)?,
            Opt::Numeric => {
                set_option(&mut options, optc::NUMERIC)?;
                fmt.numeric = true;
            }
            Opt::McastIfn => {
                set_option(&mut options, optc::MCAST)?;
                ce.mcast_ifn = a.chars().take(15).collect();
            }
            Opt::SyncId => {
                set_option(&mut options, optc::SYNCID)?;
                ce.syncid = string_to_number(a, 0, 255)
                    .ok_or_else(|| fail("illegal syncid specified"))?
                    as u8;
            }
            Opt::Timeout => set_option(&mut options, optc::TIMEOUT)?,
            Opt::Daemon => set_option(&mut options, optc::DAEMON)?,
            Opt::Stats => {
                set_option(&mut options, optc::STATS)?;
                fmt.stats = true;
            }
            Opt::Rate => {
                set_option(&mut options, optc::RATE)?;
                fmt.rate = true;
            }
            Opt::Thresholds => {
                set_option(&mut options, optc::THRESHOLDS)?;
                fmt.thresholds = true;
            }
            Opt::PersistentConn => {
                set_option(&mut options, optc::PERSISTENTCONN)?;
                fmt.persistent_conn = true;
            }
            Opt::NoSort => {
                set_option(&mut options, optc::NOSORT)?;
                fmt.nosort = true;
            }
            Opt::Sort => {}
            Opt::Exact => {
                set_option(&mut options, optc::EXACT)?;
                fmt.exact = true;
            }
            Opt::Ipv6 => {
                if ce.fwmark != 0 {
                    ce.family = Family::V6;
                    ce.netmask = Netmask::V6(128);
                } else {
                    return Err(fail("-6 used before -f\n"));
                }
            }
            Opt::Ops => {
                set_option(&mut options, optc::ONEPACKET)?;
                ce.one_packet = true;
            }
            Opt::Pe => {
                set_option(&mut options, optc::PE)?;
                ce.pe = Some(a.chars().take(16).collect());
            }
            Opt::SchedFlags => {
                set_option(&mut options, optc::SCHED_FLAGS)?;
                sched_flags_arg = a.chars().take(127).collect();
            }
            Opt::McastGroup => {
                set_option(&mut options, optc::MCAST_GROUP)?;
                if a.contains(':') {
                    match a.parse::<Ipv6Addr>() {
                        Ok(g) if g.is_multicast() => ce.mcast_group = Some(IpAddr::V6(g)),
                        _ => return Err(fail(format!("invalid IPv6 mcast-group `{a}'"))),
                    }
                } else {
                    match a.parse::<Ipv4Addr>() {
                        Ok(g) if g.is_multicast() => ce.mcast_group = Some(IpAddr::V4(g)),
                        _ => return Err(fail(format!("invalid IPv4 mcast-group `{a}'"))),
                    }
                }
            }
            Opt::McastPort => {
                set_option(&mut options, optc::MCAST_PORT)?;
                ce.mcast_port = string_to_number(a, 1, 65535)
                    .ok_or_else(|| fail("illegal mcast-port specified"))?
                    as u16;
            }
            Opt::McastTtl => {
                set_option(&mut options, optc::MCAST_TTL)?;
                ce.mcast_ttl = string_to_number(a, 1, 255)
                    .ok_or_else(|| fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Opt::SyncMaxlen => {
                set_option(&mut options, optc::SYNC_MAXLEN)?;
                ce.sync_maxlen = string_to_number(a, 1, 65535 - 20 - 8)
                    .ok_or_else(|| fail("illegal sync-maxlen specified"))?
                    as u16;
            }
            Opt::TunInfo => {
                set_option(&mut options, optc::TUN_INFO)?;
                fmt.tun_info = true;
            }
            Opt::TunType => {
                set_option(&mut options, optc::TUN_TYPE)?;
                ce.tun_type = match a {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(fail("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                set_option(&mut options, optc::TUN_PORT)?;
                ce.tun_port = string_to_number(a, 1, 65535)
                    .ok_or_else(|| fail("illegal tunnel port specified"))?
                    as u16;
            }
            Opt::TunNoCsum => {
                set_option(&mut options, optc::TUN_NOCSUM)?;
                ce.tun_csum = TunnelCsum::NoCsum;
            }
            Opt::TunCsum => {
                set_option(&mut options, optc::TUN_CSUM)?;
                ce.tun_csum = TunnelCsum::Csum;
            }
            Opt::TunRemCsum => {
                set_option(&mut options, optc::TUN_REMCSUM)?;
                ce.tun_csum = TunnelCsum::RemCsum;
            }
            // A command after the first: not in the option switch.
            _ => return Err(fail(format!("invalid option `{text}'"))),
        }
    }

    let cmd = ce.cmd.expect("set above");
    let mut leftovers = p.rest_args().into_iter();
    if cmd == Cmd::Timeout {
        match (leftovers.next(), leftovers.next(), leftovers.next()) {
            (Some(a), Some(b), Some(c)) => {
                ce.timeouts = (
                    parse_timeout(Some(&a), 0)?,
                    parse_timeout(Some(&b), 0)?,
                    parse_timeout(Some(&c), 0)?,
                );
            }
            _ => return Err(fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = leftovers.next() {
        return Err(fail(format!("unexpected argument {extra}")));
    }
    let mut flags = SchedFlags::default();
    if !sched_flags_arg.is_empty() {
        flags = parse_sched_flags(&ce.sched, &sched_flags_arg)?;
    }

    generic_opt_check(cmd, options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if ce.fwmark == 0 && ce.port == 0 && ce.persistent.is_none() {
            return Err(fail("Zero port specified for non-persistent service"));
        }
        if ce.one_packet && ce.fwmark == 0 && ce.proto != Some(Protocol::Udp) {
            return Err(fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if ce.sched.is_empty() {
            ce.sched = "wlc".into();
        }
    }
    if cmd == Cmd::StartDaemon && ce.mcast_ifn.is_empty() {
        ce.mcast_ifn = "eth0".into();
    }
    let tunnel_opts = options
        & ((1 << optc::TUN_TYPE)
            | (1 << optc::TUN_PORT)
            | (1 << optc::TUN_NOCSUM)
            | (1 << optc::TUN_CSUM)
            | (1 << optc::TUN_REMCSUM));
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if ce.fwmark == 0 && (ce.fwd == 2 || ce.fwd == 3) {
            ce.dest_port = ce.port;
        }
        if ce.dest_family != ce.family && ce.fwd != 2 {
            return Err(fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        if tunnel_opts != 0 && ce.fwd != 2 {
            return Err(fail("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(ce.tun_type, options)?;
    }

    let key = || -> ServiceKey {
        if ce.fwmark != 0 {
            ServiceKey::Fwmark {
                mark: ce.fwmark,
                family: ce.family,
            }
        } else {
            ServiceKey::Addr {
                proto: ce.proto.unwrap_or(Protocol::Tcp),
                addr: ce.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                port: ce.port,
            }
        }
    };
    let svc_args = || SvcArgs {
        key: key(),
        scheduler: ce.sched.clone(),
        flags,
        persistent: ce.persistent,
        netmask: ce.netmask,
        one_packet: ce.one_packet,
        pe_name: ce.pe.clone(),
    };
    let fwd = match ce.fwd {
        0 => Forwarding::Masq,
        2 => Forwarding::Tunnel {
            kind: ce.tun_type,
            port: ce.tun_port,
            csum: ce.tun_csum,
        },
        _ => Forwarding::Route,
    };
    let dest_args = || DestArgs {
        addr: ce.dest_addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port: ce.dest_port,
        fwd,
        weight: ce.weight,
        u_threshold: ce.u_threshold,
        l_threshold: ce.l_threshold,
    };
    let has = |o: usize| options & (1 << o) != 0;
    let command = match cmd {
        Cmd::Add => AdmCommand::AddService(svc_args()),
        Cmd::Edit => AdmCommand::EditService(svc_args()),
        Cmd::Del => AdmCommand::DeleteService(key()),
        Cmd::Flush => AdmCommand::Clear,
        Cmd::AddDest => AdmCommand::AddDest(key(), dest_args()),
        Cmd::EditDest => AdmCommand::EditDest(key(), dest_args()),
        Cmd::DelDest => {
            let d = dest_args();
            AdmCommand::DeleteDest(key(), d.addr, d.port)
        }
        Cmd::Zero => AdmCommand::Zero(has(optc::SERVICE).then(key)),
        Cmd::Timeout => AdmCommand::SetTimeout(ce.timeouts.0, ce.timeouts.1, ce.timeouts.2),
        Cmd::Restore => AdmCommand::Restore,
        Cmd::Save => AdmCommand::Save {
            numeric: fmt.numeric,
        },
        Cmd::StartDaemon => AdmCommand::StartDaemon(SyncDaemon {
            role: ce.daemon_state.expect("set with the command"),
            mcast_ifn: ce.mcast_ifn.clone(),
            syncid: ce.syncid,
            sync_maxlen: ce.sync_maxlen,
            mcast_group: ce.mcast_group,
            mcast_port: ce.mcast_port,
            mcast_ttl: ce.mcast_ttl,
        }),
        Cmd::StopDaemon => {
            AdmCommand::StopDaemon(ce.daemon_state.expect("set with the command"), ce.syncid)
        }
        Cmd::List => {
            let conn = has(optc::CONNECTION);
            let to = has(optc::TIMEOUT);
            let dm = has(optc::DAEMON);
            if ((conn || to || dm) && (fmt.stats || fmt.rate || fmt.thresholds))
                || ((to || dm) && fmt.persistent_conn)
            {
                return Err(fail("options conflicts in the list command"));
            }
            let target = if conn {
                ListTarget::Connections
            } else if has(optc::SERVICE) {
                ListTarget::Service(key())
            } else if to {
                ListTarget::Timeout
            } else if dm {
                ListTarget::Daemon
            } else {
                ListTarget::All
            };
            AdmCommand::List(ListArgs {
                target,
                format: fmt,
            })
        }
    };
    Ok(Invocation::Command(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_aton_forms() {
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(
            inet_aton("1.2.3.4 trailing"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("08.1.1.1"), None);
        assert_eq!(inet_aton("host"), None);
    }

    #[test]
    fn strtol_rules() {
        assert_eq!(string_to_number(" +5", 0, 10), Some(5));
        assert_eq!(string_to_number("5 ", 0, 10), None);
        assert_eq!(string_to_number("-1", 0, 10), None);
        assert_eq!(string_to_number("", 0, 10), None);
        assert_eq!(atoi("64abc"), 64);
    }

    #[test]
    fn matrix_rows_have_34_columns() {
        assert!(COMMANDS_V_OPTIONS.iter().all(|r| r.len() == NUMBER_OF_OPT));
        // LIST: -n optional, -c and service exclusive, tun-info optional.
        let list = COMMANDS_V_OPTIONS[Cmd::List.index()];
        assert_eq!(
            (list[0], list[1], list[2], list[28], list[29]),
            (b' ', b'1', b'1', b' ', b'x')
        );
    }
}

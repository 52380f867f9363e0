//! Fulcrum's configuration: the `lvs.cf` dialect of Red Hat's Piranha, with
//! Fulcrum's extensions.
//!
//! [`parse`] reads a file's text into a [`Config`] and a list of
//! [`Diagnostic`]s: every problem in one pass, each with line, column and a
//! hint. A configuration with any error must not be applied. [`write`] turns
//! a [`Config`] back into text. [`Config::table`] lowers the active virtual
//! and real servers to the IPVS model.

mod diag;
pub mod edit;
pub mod import;
mod lower;
mod model;
mod syntax;
mod write;

use fulcrum_core::{DestSpec, Forwarding, ServiceKey, ServiceSpec};

pub use diag::{Diagnostic, Severity, Span, did_you_mean};
pub use lower::{GLOBAL_KEYS, SERVER_KEYS, VIRTUAL_KEYS};
pub use model::*;
pub use write::write;

/// The outcome of reading a configuration.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// What the file says, as far as it could be understood.
    pub config: Config,
    /// Every error and warning, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True if any diagnostic is an error: the configuration must not be used.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// All diagnostics rendered for a terminal.
    pub fn render(&self, file: &str, source: &str) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(file, source))
            .collect()
    }

    /// The configuration if it has no errors, else the rendered diagnostics.
    pub fn into_result(self, file: &str, source: &str) -> Result<Config, String> {
        if self.has_errors() {
            Err(self.render(file, source))
        } else {
            Ok(self.config)
        }
    }
}

/// Parse and validate lvs.cf text.
pub fn parse(source: &str) -> Parsed {
    let mut diagnostics = Vec::new();
    let nodes = syntax::parse(source, &mut diagnostics);
    let config = lower::lower(&nodes, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.span);
    Parsed {
        config,
        diagnostics,
    }
}

/// One virtual service as the table should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableService {
    /// The virtual server's name in lvs.cf.
    pub name: String,
    /// The service.
    pub spec: ServiceSpec,
    /// Its active real servers, in file order, with their names.
    pub dests: Vec<(String, DestSpec)>,
    /// The most connections it serves at once (`max_connections`).
    pub max_connections: Option<u32>,
}

/// An address the active director brings up: a virtual server's `address`
/// or the `nat_router`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floating {
    /// What it is, for messages: `virtual server vs1` or `nat_router`.
    pub what: String,
    /// The address.
    pub addr: std::net::IpAddr,
    /// Prefix length: from `vip_nmask` / `nat_nmask`, else 32 or 128.
    pub prefix: u8,
    /// The device (`eth0` of `eth0:1`), if given.
    pub device: Option<String>,
    /// The address label (`eth0:1`), if an alias is given.
    pub label: Option<String>,
}

fn mask_len(m: Option<std::net::Ipv4Addr>, addr: &std::net::IpAddr) -> u8 {
    match (m, addr) {
        (Some(m), std::net::IpAddr::V4(_)) => u32::from(m).count_ones() as u8,
        (_, std::net::IpAddr::V4(_)) => 32,
        (_, std::net::IpAddr::V6(_)) => 128,
    }
}

/// How one active real server is to be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// The virtual server's name.
    pub service_name: String,
    /// The real server's name.
    pub server_name: String,
    /// The virtual service.
    pub key: fulcrum_core::ServiceKey,
    /// The real server as the table holds it (configured weight).
    pub dest: DestSpec,
    /// The port checks go to: the real server's, or for a real server of a
    /// fwmark service (port 0 in the table) the virtual server's `port`.
    pub port: u16,
    /// Connect, negotiate or off.
    pub kind: CheckType,
    /// For negotiate: what to send; for external: the `send_program`
    /// command line.
    pub send: Vec<u8>,
    /// For negotiate: what to expect (`None` with nothing sent: any reply;
    /// the port-80 default is filled in).
    pub expect: Option<String>,
    /// `expect` is a regular expression.
    pub regex: bool,
    /// The service's protocol (UDP services get the UDP connect probe).
    pub udp: bool,
    /// `check_interval`.
    pub interval: std::time::Duration,
    /// `timeout`.
    pub timeout: std::time::Duration,
    /// `reentry`.
    pub reentry: std::time::Duration,
    /// `rise`.
    pub rise: u32,
    /// `fall`.
    pub fall: u32,
    /// `quiesce_server`.
    pub quiesce: bool,
    /// `misc_dynamic`: an external check's exit code 2..=255 sets the
    /// weight to code − 2.
    pub misc_dynamic: bool,
    /// For http_get and https_get: what to fetch and what to accept.
    pub http: HttpSpec,
    /// The command that prints the real server's load average (`%h` is
    /// its address): `load_monitor = uptime`, `rup`, `ruptime` or a program.
    pub load_command: Option<String>,
    /// How often the load is read (`load_interval`; nanny: about 20 s).
    pub load_interval: std::time::Duration,
    /// Where the real server's agent answers, when it is asked (`checktype
    /// = agent` or `load_monitor = agent`).
    pub agent: Option<std::net::SocketAddr>,
    /// Its answers set the weight (`load_monitor = agent`, or `checktype =
    /// agent`, where the agent's line is the whole check).
    pub agent_weights: bool,
}

/// What an HTTP check fetches and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    /// `request`: the path (default `/`).
    pub path: String,
    /// `virtualhost`: the Host header and TLS server name.
    pub virtualhost: Option<String>,
    /// `status_code` (default 200-299).
    pub status: StatusCodes,
    /// `digest`: the body's MD5, lowercase hex.
    pub digest: Option<String>,
    /// `receive`: a regular expression the body must match.
    pub receive: Option<String>,
    /// `tls_ca`: verify the server's certificate against these CAs (PEM);
    /// without it the certificate is not verified, as keepalived's SSL_GET.
    pub tls_ca: Option<String>,
}

/// How often nanny reads the load: about every 20 seconds.
pub const DEFAULT_LOAD_INTERVAL: Seconds = Seconds(std::time::Duration::from_secs(20));

/// The command that reads a real server's load average, `%h` for its
/// address.
fn load_command(m: Option<&LoadMonitor>, rsh: Option<RshCommand>) -> Option<String> {
    Some(match m? {
        LoadMonitor::None | LoadMonitor::Agent => return None,
        LoadMonitor::Uptime => match rsh.unwrap_or(RshCommand::Rsh) {
            RshCommand::Ssh => "ssh -o BatchMode=yes -o ConnectTimeout=5 %h uptime".into(),
            RshCommand::Rsh => "rsh %h uptime".into(),
        },
        LoadMonitor::Rup => "rup %h".into(),
        LoadMonitor::Ruptime => "ruptime %h".into(),
        LoadMonitor::Program(p) => format!("'{}' %h", p.replace('\'', "'\\''")),
    })
}

/// The port `fulcrum agent` answers on unless `agent_port` says otherwise.
pub const DEFAULT_AGENT_PORT: u16 = 9777;

/// A virtual server's sorry server, as the table would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorrySpec {
    /// The virtual service.
    pub key: fulcrum_core::ServiceKey,
    /// The sorry server (weight 1).
    pub dest: DestSpec,
}

/// Default `check_interval`: nanny checks every 2 seconds.
pub const DEFAULT_CHECK_INTERVAL: Seconds = Seconds(std::time::Duration::from_secs(2));

impl Config {
    /// How each active real server of each active virtual server is
    /// checked (nanny's defaults: negotiate when `send`/`expect` are set or
    /// the port is 80, else connect).
    pub fn checks(&self) -> Vec<CheckSpec> {
        let mut out = Vec::new();
        for svc in self.table() {
            let Some(v) = self.virtuals.iter().find(|v| v.name == svc.name) else {
                continue;
            };
            for (name, d) in &svc.dests {
                let server = v.servers.iter().find(|s| &s.name == name);
                let has_exchange = v.send.is_some() || v.expect.is_some();
                let kind = server.and_then(|s| s.checktype).or(v.checktype).unwrap_or(
                    if v.send_program.is_some() {
                        CheckType::External
                    } else if has_exchange || v.effective_port() == 80 {
                        CheckType::Negotiate
                    } else {
                        CheckType::Connect
                    },
                );
                let (send, expect) = if kind == CheckType::External {
                    (
                        v.send_program.clone().unwrap_or_default().into_bytes(),
                        v.expect.clone(),
                    )
                } else if !has_exchange && kind == CheckType::Negotiate {
                    (b"GET / HTTP/1.0\r\n\r\n".to_vec(), Some("HTTP".to_string()))
                } else {
                    (
                        v.send.clone().unwrap_or_default().into_bytes(),
                        v.expect.clone(),
                    )
                };
                out.push(CheckSpec {
                    service_name: v.name.clone(),
                    server_name: name.clone(),
                    key: svc.spec.key,
                    dest: d.clone(),
                    port: if d.port == 0 {
                        v.effective_port()
                    } else {
                        d.port
                    },
                    kind,
                    send,
                    expect,
                    regex: v.use_regex.unwrap_or(false),
                    udp: v.effective_protocol() == fulcrum_core::Protocol::Udp,
                    interval: v.check_interval.unwrap_or(DEFAULT_CHECK_INTERVAL).0,
                    timeout: v.timeout.unwrap_or(DEFAULT_TIMEOUT).0,
                    reentry: v.reentry.unwrap_or(DEFAULT_REENTRY).0,
                    rise: v.rise.unwrap_or(1),
                    fall: v.fall.unwrap_or(0),
                    quiesce: v.quiesce_server.unwrap_or(false),
                    misc_dynamic: v.misc_dynamic.unwrap_or(false),
                    load_command: load_command(v.load_monitor.as_ref(), self.global.rsh_command),
                    load_interval: v.load_interval.unwrap_or(DEFAULT_LOAD_INTERVAL).0,
                    http: HttpSpec {
                        path: v.request.clone().unwrap_or_else(|| "/".into()),
                        virtualhost: v.virtualhost.clone(),
                        status: v.status_code.clone().unwrap_or_default(),
                        digest: v.digest.clone(),
                        receive: v.receive.clone(),
                        tls_ca: v.tls_ca.clone(),
                    },
                    agent: (kind == CheckType::Agent || v.load_monitor == Some(LoadMonitor::Agent))
                        .then(|| {
                            std::net::SocketAddr::new(
                                d.addr,
                                v.agent_port.unwrap_or(DEFAULT_AGENT_PORT),
                            )
                        }),
                    agent_weights: kind == CheckType::Agent
                        || v.load_monitor == Some(LoadMonitor::Agent),
                });
            }
        }
        out
    }

    /// The sorry servers of active virtual servers.
    pub fn sorry_servers(&self) -> Vec<SorrySpec> {
        self.table()
            .into_iter()
            .filter_map(|svc| {
                let v = self.virtuals.iter().find(|v| v.name == svc.name)?;
                let s = v.sorry_server?;
                let port = s.port.unwrap_or(if v.fwmark.is_some() {
                    0
                } else {
                    v.effective_port()
                });
                let fwd = v.forwarding_for(&RealServer::default(), &self.global);
                Some(SorrySpec {
                    key: svc.spec.key,
                    dest: DestSpec::new(s.addr, port, fwd),
                })
            })
            .collect()
    }

    /// The real servers of `transparent` virtual servers (active ones), by
    /// service and real-server address and port: the proxy plane connects
    /// to them from the client's own address.
    pub fn transparent_dests(&self) -> Vec<(fulcrum_core::ServiceKey, std::net::IpAddr, u16)> {
        let mut out = Vec::new();
        for svc in self.table() {
            if self
                .virtuals
                .iter()
                .any(|v| v.name == svc.name && v.transparent == Some(true))
            {
                out.extend(
                    svc.dests
                        .iter()
                        .map(|(_, d)| (svc.spec.key, d.addr, d.port)),
                );
            }
        }
        out
    }

    /// The real servers that expect a PROXY protocol header, by service and
    /// real-server address and port (active ones only).
    pub fn proxy_protocol_dests(
        &self,
    ) -> Vec<(
        fulcrum_core::ServiceKey,
        std::net::IpAddr,
        u16,
        ProxyProtocolVersion,
    )> {
        let mut out = Vec::new();
        for svc in self.table() {
            let Some(v) = self.virtuals.iter().find(|v| v.name == svc.name) else {
                continue;
            };
            for (name, d) in &svc.dests {
                if let Some(pp) = v
                    .servers
                    .iter()
                    .find(|s| &s.name == name)
                    .and_then(|s| s.proxy_protocol)
                {
                    out.push((svc.spec.key, d.addr, d.port, pp));
                }
            }
        }
        out
    }

    /// The addresses an active director brings up: every active virtual
    /// server's address and the NAT router, each once.
    pub fn floating_addresses(&self) -> Vec<Floating> {
        let mut out: Vec<Floating> = Vec::new();
        let mut push = |what: String, a: &AddrDev, mask: Option<std::net::Ipv4Addr>| {
            if out.iter().any(|f| f.addr == a.addr) {
                return;
            }
            out.push(Floating {
                what,
                addr: a.addr,
                prefix: mask_len(mask, &a.addr),
                device: a.device().map(str::to_string),
                label: a.dev.clone().filter(|d| d.contains(':')),
            });
        };
        for v in self.virtuals.iter().filter(|v| v.is_active()) {
            if let Some(a) = &v.address {
                push(format!("virtual server {}", v.name), a, v.vip_nmask);
            }
        }
        if let Some(a) = &self.global.nat_router {
            push("nat_router".into(), a, self.global.nat_nmask);
        }
        out
    }

    /// The first thing in the file only the kernel's IPVS can do (connection
    /// synchronisation; in the active table, a fwmark or SCTP service, a
    /// real server reached by direct routing or tunnelling), said for
    /// people; `None` when the proxy plane can run it all.
    pub fn kernel_only(&self) -> Option<String> {
        if self.global.syncdaemon == Some(true) {
            return Some("connection synchronisation (`syncdaemon = 1`) is the kernel's".into());
        }
        for s in self.table() {
            match s.spec.key {
                ServiceKey::Fwmark { .. } => {
                    return Some(format!("virtual server `{}` is a fwmark service", s.name));
                }
                ServiceKey::Addr {
                    proto: fulcrum_core::Protocol::Sctp,
                    ..
                } => return Some(format!("virtual server `{}` is an SCTP service", s.name)),
                ServiceKey::Addr { .. } => {}
            }
            if let Some((name, d)) = s.dests.iter().find(|(_, d)| d.fwd != Forwarding::Masq) {
                let how = match d.fwd {
                    Forwarding::Tunnel { .. } => "tunnelling",
                    _ => "direct routing",
                };
                return Some(format!(
                    "real server `{name}` of virtual server `{}` is reached by {how}",
                    s.name
                ));
            }
        }
        None
    }

    /// The IPVS table this configuration describes: only `active = 1`
    /// virtual servers and, in them, only `active = 1` real servers.
    /// Assumes a configuration that validated without errors.
    pub fn table(&self) -> Vec<TableService> {
        self.virtuals
            .iter()
            .filter(|v| v.is_active())
            .filter_map(|v| {
                let key = v.service_key()?;
                let mut spec = ServiceSpec::new(key, v.effective_scheduler());
                spec.flags = v.sched_flags();
                spec.persistent = v.persistent.filter(|p| *p > 0);
                spec.netmask = v.netmask();
                spec.one_packet = v.one_packet.unwrap_or(false);
                let dests = v
                    .servers
                    .iter()
                    .filter(|s| s.is_active())
                    .filter_map(|s| {
                        let addr = s.address?;
                        let fwd = v.forwarding_for(s, &self.global);
                        let port = s.port.unwrap_or(if v.fwmark.is_some() {
                            0
                        } else {
                            v.effective_port()
                        });
                        let mut d = DestSpec::new(addr, port, fwd);
                        d.weight = s.effective_weight();
                        d.u_threshold = s.uthreshold.unwrap_or(0);
                        d.l_threshold = s.lthreshold.unwrap_or(0);
                        Some((s.name.clone(), d))
                    })
                    .collect();
                Some(TableService {
                    name: v.name.clone(),
                    spec,
                    dests,
                    max_connections: v.max_connections,
                })
            })
            .collect()
    }
}

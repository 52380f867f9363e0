//! The monitor (Piranha's nanny) for a whole configuration, sans-IO: a
//! check state machine per real server, the probes due (the caller runs
//! them, [`HealthResult::of`]), and the table changes their verdicts call
//! for — plus each virtual server's sorry server and the operator's drains.
//! Time is passed in; nothing here touches a socket or the clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::http::{Request, Tls, Verdict};
use crate::load_adjusted_weight;
use crate::probe::{Expect, LoadFrom, Probe, expand_program};
use crate::service::{Dialogue, DnsCheck};
use crate::{Action, CheckParams, Checker, SorryAction, SorryServer, State, Transition};
use fulcrum_config::{CheckSpec, CheckType, SorrySpec};
use fulcrum_core::{DestSpec, ServiceKey};

/// A real server of a virtual service.
pub type DestKey = (ServiceKey, IpAddr, u16);

/// A probe's outcome, sent back to the controller.
#[derive(Debug)]
pub struct HealthResult {
    /// Which real server.
    pub dest: DestKey,
    /// The generation of the check that started the probe; results of a
    /// check replaced by a reload are ignored.
    pub generation: u64,
    /// The outcome.
    pub result: Result<(), String>,
    /// The load share the server's agent reported, if it was asked.
    pub share: Option<Result<u32, String>>,
    /// The weight an external check's exit code set (`misc_dynamic`).
    pub weight: Option<u32>,
    /// The load average read (`load_monitor = uptime`…), or why not.
    pub load: Option<Result<f64, String>>,
}

impl HealthResult {
    /// Run a due probe (and ask for the load where configured).
    pub async fn of(due: DueProbe) -> HealthResult {
        let out = due.probe.run_with_load(due.timeout, due.load_from).await;
        HealthResult {
            load: out.load,
            dest: due.dest,
            generation: due.generation,
            result: out.health,
            share: out.share,
            weight: out.weight,
        }
    }
}

/// A probe to start.
#[derive(Debug)]
pub struct DueProbe {
    /// Which real server.
    pub dest: DestKey,
    /// Its check's generation.
    pub generation: u64,
    /// The probe.
    pub probe: Probe,
    /// How long it may take.
    pub timeout: Duration,
    /// Where to read the server's load after a good probe, when it is due.
    pub load_from: Option<LoadFrom>,
}

/// A change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOp {
    /// Put the real server in (or update it to this definition).
    Put(ServiceKey, DestSpec),
    /// Take it out.
    Remove(ServiceKey, IpAddr, u16),
}

/// What the operator asked of a real server at run time (the console, the
/// API), over what its checks decide. It lasts while the server is in the
/// configuration (reloads included) and ends with the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// Weight 0: its connections go on, it gets no new ones (unless a
    /// persistence template sends a client back).
    Drain,
    /// Out of the table, whatever its checks say.
    Disable,
}

impl Admin {
    /// The word status and the console show.
    pub fn word(self) -> &'static str {
        match self {
            Admin::Drain => "drained",
            Admin::Disable => "disabled",
        }
    }

    /// What the table gets for a real server its checks want at `weight`
    /// (`None`: out).
    fn over(admin: Option<Admin>, weight: Option<u32>) -> Option<u32> {
        match admin {
            None => weight,
            Some(Admin::Drain) => weight.map(|_| 0),
            Some(Admin::Disable) => None,
        }
    }
}

/// A state change to log.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Virtual server name.
    pub service: String,
    /// Real server name.
    pub server: String,
    /// Its address.
    pub addr: SocketAddr,
    /// What happened.
    pub transition: Transition,
}

#[derive(Debug)]
struct Entry {
    spec: CheckSpec,
    checker: Checker,
    probe: Option<Probe>,
    generation: u64,
    /// The agent's load could not be read and this was logged (once per
    /// outage, not per probe).
    load_unreadable: bool,
    /// Its place in the configuration order.
    pos: usize,
    /// When the load was last asked for, and what it was.
    load_asked: Option<Duration>,
    load_avg: Option<f64>,
}

/// What `expect` (with `use_regex`) asks of a reply.
fn expectation(spec: &CheckSpec) -> Result<Expect, String> {
    Ok(match (&spec.expect, spec.regex) {
        (None, _) => Expect::Anything,
        (Some(e), _) if e == "*" => Expect::Anything,
        (Some(e), true) => Expect::Regex(
            regex::bytes::Regex::new(e)
                .map_err(|err| format!("`expect` is not a valid regular expression: {err}"))?,
        ),
        (Some(e), false) => Expect::Prefix(e.clone().into_bytes()),
    })
}

fn probe_for(spec: &CheckSpec) -> Result<Option<Probe>, String> {
    let addr = SocketAddr::new(spec.dest.addr, spec.port);
    Ok(match (spec.kind, spec.udp) {
        (CheckType::Off, _) => None,
        (CheckType::External, _) => Some(Probe::External {
            command: expand_program(&String::from_utf8_lossy(&spec.send), addr),
            expect: match spec.expect {
                Some(_) => Some(expectation(spec)?),
                None => None,
            },
            dynamic: spec.misc_dynamic,
        }),
        (CheckType::Agent, _) => Some(Probe::Agent(
            spec.agent
                .ok_or("checktype `agent` needs the agent's address")?,
        )),
        (CheckType::HttpGet | CheckType::HttpsGet, false) => {
            let h = &spec.http;
            let tls = match (spec.kind, &h.tls_ca) {
                (CheckType::HttpGet, _) => None,
                (_, None) => Some(Tls::unverified()),
                (_, Some(ca)) => Some(Tls::verified_by(ca)?),
            };
            let receive = match &h.receive {
                Some(r) => Some(regex::bytes::Regex::new(r).map_err(|err| {
                    format!("`receive` is not a valid regular expression: {err}")
                })?),
                None => None,
            };
            Some(Probe::Http {
                request: Request {
                    addr,
                    path: h.path.clone(),
                    virtualhost: h.virtualhost.clone(),
                    tls,
                    sni: true,
                },
                verdict: Verdict {
                    status: h.status.0.clone(),
                    digest: h.digest.clone(),
                    receive,
                },
            })
        }
        (CheckType::Ping, _) => Some(Probe::Ping(spec.dest.addr)),
        (CheckType::Dns, _) => Some(Probe::Dns(DnsCheck {
            addr,
            name: spec.http.path.clone(),
            receive: spec.http.receive.clone(),
        })),
        (CheckType::Smtp, false) => Some(Probe::Service(Dialogue::Smtp, addr)),
        (CheckType::Ftp, false) => Some(Probe::Service(Dialogue::Ftp, addr)),
        (CheckType::Pop, false) => Some(Probe::Service(Dialogue::Pop, addr)),
        (CheckType::Imap, false) => Some(Probe::Service(Dialogue::Imap, addr)),
        (CheckType::Nntp, false) => Some(Probe::Service(Dialogue::Nntp, addr)),
        (_, true) => Some(Probe::UdpConnect(addr)),
        (CheckType::Connect, false) => Some(Probe::TcpConnect(addr)),
        (CheckType::Negotiate, false) => Some(Probe::Negotiate {
            addr,
            send: spec.send.clone(),
            expect: expectation(spec)?,
        }),
    })
}

fn params(spec: &CheckSpec) -> CheckParams {
    CheckParams {
        interval: spec.interval,
        timeout: spec.timeout,
        reentry: spec.reentry,
        rise: spec.rise,
        fall: spec.fall,
        weight: spec.dest.weight,
        quiesce: spec.quiesce,
    }
}

/// All checks of the director.
#[derive(Debug, Default)]
pub struct Monitor {
    entries: HashMap<DestKey, Entry>,
    /// The checks in configuration order: decisions taken together are
    /// applied in this order, so the table's list order follows the file.
    order: Vec<DestKey>,
    sorry: HashMap<ServiceKey, (SorryServer, DestSpec)>,
    generation: u64,
    /// The checks (by place in `order`) that may have decided something
    /// since the last [`collect`](Self::collect), so that collecting costs
    /// what changed, not the number of real servers.
    touched: std::collections::BTreeSet<usize>,
    /// Counted per real server since the director started (kept across
    /// reloads): checks passed and failed, times it came up and went down.
    counts: HashMap<DestKey, HealthCounts>,
    /// Probes that could not run for the director's own reasons, and when
    /// that was last logged.
    local_failures: u64,
    local_failure_logged: Option<Duration>,
    /// The operator's drains and disables.
    admin: HashMap<DestKey, Admin>,
}

/// How soon a probe that could not run for the director's own reasons is
/// tried again.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

/// What the monitor has counted for one real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Checks that passed.
    pub checks_ok: u64,
    /// Checks that failed.
    pub checks_failed: u64,
    /// Times it entered service.
    pub ups: u64,
    /// Times it left service.
    pub downs: u64,
}

/// One real server's health, for metrics.
#[derive(Debug, Clone)]
pub struct HealthRow {
    /// Virtual server name.
    pub service: String,
    /// Real server name.
    pub server: String,
    /// Which real server.
    pub dest: DestKey,
    /// In service by its checks.
    pub alive: bool,
    /// Its counts.
    pub counts: HealthCounts,
}

impl Monitor {
    /// Whether one real server's check can be built (its patterns, its CA
    /// file, its program), and if not why.
    ///
    /// # Errors
    /// What is wrong, without naming the virtual server.
    pub fn validate_one(spec: &CheckSpec) -> Result<(), String> {
        probe_for(spec).map(|_| ())
    }

    /// Whether every check in `specs` can be built (its `expect` pattern,
    /// its program), without building them.
    ///
    /// # Errors
    /// The first that cannot, naming its virtual server.
    pub fn validate(specs: &[CheckSpec]) -> Result<(), String> {
        for spec in specs {
            Monitor::validate_one(spec)
                .map_err(|e| format!("virtual server `{}`: {e}", spec.service_name))?;
        }
        Ok(())
    }

    /// Make the checks those of a configuration. A real server whose check
    /// is unchanged keeps its state; a new one starts out of service until
    /// its first good check.
    ///
    /// # Errors
    /// A check that cannot be built (an invalid regular expression).
    pub fn set_checks(
        &mut self,
        specs: Vec<CheckSpec>,
        sorry: Vec<SorrySpec>,
        now: Duration,
    ) -> Result<(), String> {
        let mut next = HashMap::new();
        self.order.clear();
        self.touched.clear();
        for spec in specs {
            let key = (spec.key, spec.dest.addr, spec.dest.port);
            let pos = self.order.len();
            self.order.push(key);
            self.touched.insert(pos);
            let probe = probe_for(&spec)
                .map_err(|e| format!("virtual server `{}`: {e}", spec.service_name))?;
            // Only what changes how the server is probed or judged restarts
            // its check; a new weight or quiesce mode is taken in place.
            let same_check = |a: &CheckSpec, b: &CheckSpec| {
                a.misc_dynamic == b.misc_dynamic
                    && (&a.load_command, a.load_interval) == (&b.load_command, b.load_interval)
                    && a.http == b.http
                    && a.port == b.port
                    && (
                        a.kind,
                        &a.send,
                        &a.expect,
                        a.regex,
                        a.udp,
                        a.interval,
                        a.timeout,
                        a.reentry,
                        a.rise,
                        a.fall,
                        a.agent,
                        a.agent_weights,
                    ) == (
                        b.kind,
                        &b.send,
                        &b.expect,
                        b.regex,
                        b.udp,
                        b.interval,
                        b.timeout,
                        b.reentry,
                        b.rise,
                        b.fall,
                        b.agent,
                        b.agent_weights,
                    )
            };
            let entry = match self.entries.remove(&key) {
                Some(mut old) if same_check(&old.spec, &spec) => {
                    old.checker.update_params(spec.dest.weight, spec.quiesce);
                    old.spec = spec;
                    old.pos = pos;
                    old
                }
                _ => {
                    self.generation += 1;
                    Entry {
                        checker: Checker::new(params(&spec), now),
                        spec,
                        probe,
                        generation: self.generation,
                        load_unreadable: false,
                        pos,
                        load_asked: None,
                        load_avg: None,
                    }
                }
            };
            next.insert(key, entry);
        }
        self.entries = next;
        self.admin.retain(|k, _| self.entries.contains_key(k));
        let mut sorry_next = HashMap::new();
        for s in sorry {
            let state = self
                .sorry
                .remove(&s.key)
                .map(|(st, _)| st)
                .unwrap_or_default();
            sorry_next.insert(s.key, (state, s.dest));
        }
        self.sorry = sorry_next;
        Ok(())
    }

    /// The definition a real server should have in the table now: `None`
    /// when it is out of service (a checked server not yet alive, or dead
    /// and not quiesced).
    pub fn desired(&self, key: &ServiceKey, dest: &DestSpec) -> Option<DestSpec> {
        let k = (*key, dest.addr, dest.port);
        let Some(e) = self.entries.get(&k) else {
            return Some(dest.clone());
        };
        let weight = if e.probe.is_none() {
            Some(dest.weight)
        } else {
            match e.checker.state() {
                State::Alive => Some(e.checker.weight()),
                State::Dead if e.spec.quiesce => Some(0),
                _ => None,
            }
        };
        Admin::over(self.admin.get(&k).copied(), weight).map(|weight| DestSpec {
            weight,
            ..dest.clone()
        })
    }

    /// Drain, disable, or (`None`) give a real server back to its checks;
    /// the table changes that follow.
    ///
    /// # Errors
    /// When the real server is not one of the configuration's.
    pub fn set_admin(&mut self, k: &DestKey, admin: Option<Admin>) -> Result<Vec<TableOp>, String> {
        let Some(e) = self.entries.get(k) else {
            return Err(format!(
                "{} is not a real server of the configuration's virtual server {}",
                SocketAddr::new(k.1, k.2),
                k.0
            ));
        };
        let dest = e.spec.dest.clone();
        match admin {
            Some(a) => _ = self.admin.insert(*k, a),
            None => _ = self.admin.remove(k),
        }
        let mut ops = vec![match self.desired(&k.0, &dest) {
            Some(d) => TableOp::Put(k.0, d),
            None => TableOp::Remove(k.0, k.1, k.2),
        }];
        ops.extend(self.update_sorry());
        Ok(ops)
    }

    /// What the operator asked of a real server, if anything.
    pub fn admin(&self, k: &DestKey) -> Option<Admin> {
        self.admin.get(k).copied()
    }

    fn alive(&self, key: &ServiceKey) -> usize {
        self.entries
            .iter()
            .filter(|(dk, e)| {
                dk.0 == *key
                    && (e.probe.is_none() || e.checker.state() == State::Alive)
                    && !self.admin.contains_key(dk)
            })
            .count()
    }

    /// The sorry server a service should have in the table now, if any.
    pub fn sorry_desired(&self, key: &ServiceKey) -> Option<DestSpec> {
        let (state, dest) = self.sorry.get(key)?;
        state.serving().then(|| dest.clone())
    }

    /// Bring every sorry server's state up to date; the table changes.
    pub fn update_sorry(&mut self) -> Vec<TableOp> {
        let keys: Vec<ServiceKey> = self.sorry.keys().copied().collect();
        let mut ops = Vec::new();
        for k in keys {
            let alive = self.alive(&k);
            let (state, dest) = self.sorry.get_mut(&k).expect("key from the map");
            match state.update(alive) {
                Some(SorryAction::Add) => {
                    tracing::warn!(service = %k, sorry = %SocketAddr::new(dest.addr, dest.port), "no real server alive: sorry server in");
                    ops.push(TableOp::Put(
                        k,
                        DestSpec {
                            weight: 1,
                            ..dest.clone()
                        },
                    ));
                }
                Some(SorryAction::Remove) => {
                    tracing::info!(service = %k, "a real server is alive again: sorry server out");
                    ops.push(TableOp::Remove(k, dest.addr, dest.port));
                }
                None => {}
            }
        }
        ops
    }

    /// The earliest moment a check needs attention.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.entries
            .values()
            .filter(|e| e.probe.is_some())
            .map(|e| e.checker.poll_timeout())
            .filter(|d| *d != Duration::MAX)
            .min()
    }

    /// Time passed: expire silent servers and list the probes to start.
    pub fn due(&mut self, now: Duration) -> Vec<DueProbe> {
        let mut out = Vec::new();
        for (k, e) in &mut self.entries {
            let Some(probe) = &e.probe else { continue };
            let before = e.checker.state();
            e.checker.handle_timeout(now);
            if e.checker.state() != before {
                self.touched.insert(e.pos);
            }
            if e.checker.poll_probe(now) {
                let timeout = e
                    .spec
                    .interval
                    .min(e.spec.timeout)
                    .max(Duration::from_millis(100));
                let agent = e
                    .spec
                    .agent
                    .filter(|_| e.spec.agent_weights && e.spec.kind != CheckType::Agent);
                let load_from = match (&e.spec.load_command, agent) {
                    (_, Some(addr)) => Some(LoadFrom::Agent(addr)),
                    (Some(cmd), None)
                        if e.checker.load_base().is_some()
                            && e.load_asked
                                .is_none_or(|t| now.saturating_sub(t) >= e.spec.load_interval) =>
                    {
                        e.load_asked = Some(now);
                        Some(LoadFrom::Command(expand_program(
                            cmd,
                            SocketAddr::new(k.1, k.2),
                        )))
                    }
                    _ => None,
                };
                out.push(DueProbe {
                    dest: *k,
                    generation: e.generation,
                    probe: probe.clone(),
                    timeout,
                    load_from,
                });
            }
        }
        out
    }

    /// A probe answered.
    pub fn on_result(&mut self, r: HealthResult, now: Duration) {
        if let Some(e) = self.entries.get_mut(&r.dest)
            && e.generation == r.generation
        {
            self.touched.insert(e.pos);
            // The director's own exhaustion says nothing about the server.
            if let Err(why) = &r.result
                && crate::probe::is_local_exhaustion(why)
            {
                self.local_failures += 1;
                if self
                    .local_failure_logged
                    .is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(10))
                {
                    tracing::warn!(service = %e.spec.service_name, server = %e.spec.server_name, error = %why,
                        failed = self.local_failures,
                        "health check not run: the director is out of resources; the real server keeps its state and is checked again in 1s");
                    self.local_failure_logged = Some(now);
                }
                e.checker.handle_inconclusive(now, LOCAL_RETRY);
                return;
            }
            let c = self.counts.entry(r.dest).or_default();
            if r.result.is_ok() {
                c.checks_ok += 1;
            } else {
                c.checks_failed += 1;
            }
            // The share first, so a server coming back enters at it.
            match r.share {
                Some(Ok(pct)) => {
                    e.load_unreadable = false;
                    e.checker.set_share(pct);
                }
                Some(Err(why)) => {
                    if !e.load_unreadable {
                        tracing::warn!(service = %e.spec.service_name, server = %e.spec.server_name, error = %why,
                            "load cannot be read: the configured weight applies until the agent answers");
                        e.load_unreadable = true;
                    }
                    e.checker.set_share(100);
                }
                None => {}
            }
            if let Some(w) = r.weight {
                e.checker.update_params(w, e.spec.quiesce);
            }
            match r.load {
                Some(Ok(load)) => {
                    e.load_unreadable = false;
                    e.load_avg = Some(load);
                    if let Some(base) = e.checker.load_base() {
                        let new = load_adjusted_weight(base, e.spec.dest.weight, load);
                        if new != base {
                            e.checker.set_load_weight(Some(new));
                        }
                    }
                }
                Some(Err(why)) => {
                    if !e.load_unreadable {
                        tracing::warn!(service = %e.spec.service_name, server = %e.spec.server_name, error = %why,
                            "load cannot be read: the configured weight applies until it can");
                        e.load_unreadable = true;
                    }
                    e.load_avg = None;
                    e.checker.set_load_weight(None);
                }
                None => {}
            }
            e.checker.handle_result(now, r.result);
        }
    }

    /// The table changes and the state changes the checks have decided.
    pub fn collect(&mut self) -> (Vec<TableOp>, Vec<Logged>) {
        let mut ops = Vec::new();
        let mut logs = Vec::new();
        for pos in std::mem::take(&mut self.touched) {
            let Some(k) = self.order.get(pos) else {
                continue;
            };
            let Some(e) = self.entries.get_mut(k) else {
                continue;
            };
            let (key, addr, port) = k;
            let admin = self.admin.get(k).copied();
            while let Some(a) = e.checker.poll_action() {
                let d = &e.spec.dest;
                let weight = match a {
                    Action::Add { weight } | Action::SetWeight(weight) => Some(weight),
                    Action::Remove => None,
                };
                ops.push(match Admin::over(admin, weight) {
                    Some(weight) => TableOp::Put(
                        *key,
                        DestSpec {
                            weight,
                            ..d.clone()
                        },
                    ),
                    None => TableOp::Remove(*key, *addr, *port),
                });
            }
            while let Some(t) = e.checker.poll_transition() {
                let c = self.counts.entry(*k).or_default();
                if t.to == State::Alive {
                    c.ups += 1;
                } else if t.to == State::Dead {
                    c.downs += 1;
                }
                logs.push(Logged {
                    service: e.spec.service_name.clone(),
                    server: e.spec.server_name.clone(),
                    addr: SocketAddr::new(*addr, *port),
                    transition: t,
                });
            }
        }
        ops.extend(self.update_sorry());
        (ops, logs)
    }

    /// A real server's health in a word: `alive`, `dead`, `unknown` or
    /// `not checked`.
    pub fn word(&self, key: &ServiceKey, addr: &IpAddr, port: u16) -> &'static str {
        match self.entries.get(&(*key, *addr, port)) {
            Some(e) if e.probe.is_some() => match e.checker.state() {
                State::Unknown => "unknown",
                State::Alive => "alive",
                State::Dead => "dead",
            },
            _ => "not checked",
        }
    }

    /// A real server's health for `fulcrum status`.
    pub fn describe(
        &self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
        now: Duration,
    ) -> Option<String> {
        let e = self.entries.get(&(*key, *addr, port))?;
        if e.probe.is_none() {
            return Some("not checked".into());
        }
        let state = match (e.checker.state(), e.checker.reentry_left(now)) {
            (State::Unknown, _) => "not yet seen alive".to_string(),
            (State::Alive, _) => "alive".to_string(),
            (State::Dead, Some(left)) => format!(
                "dead, answering again: waiting to re-enter ({:.0} s left)",
                left.as_secs_f64().ceil()
            ),
            (State::Dead, None) => "dead".to_string(),
        };
        let last = match e.checker.last_result() {
            Some((t, Ok(()))) => format!(
                "last check ok {:.1}s ago",
                now.saturating_sub(*t).as_secs_f64()
            ),
            Some((t, Err(r))) => format!(
                "last check failed {:.1}s ago: {r}",
                now.saturating_sub(*t).as_secs_f64()
            ),
            None => "no check yet".into(),
        };
        let load = if e.spec.load_command.is_some() {
            match (e.load_unreadable, e.load_avg) {
                (true, _) => "; load unreadable, configured weight applies".into(),
                (false, Some(l)) => format!("; load {l:.2}, weight {}", e.checker.weight()),
                (false, None) => String::new(),
            }
        } else if !e.spec.agent_weights {
            String::new()
        } else if e.load_unreadable {
            "; load unreadable, configured weight applies".into()
        } else {
            format!("; agent asks {}% of weight", e.checker.share())
        };
        Some(format!(
            "{state} ({} check; {last}{load})",
            e.spec.kind.name()
        ))
    }

    /// Every checked real server's health and counts, in configuration
    /// order.
    pub fn health_rows(&self) -> Vec<HealthRow> {
        self.order
            .iter()
            .filter_map(|k| {
                let e = self.entries.get(k)?;
                e.probe.as_ref()?;
                Some(HealthRow {
                    service: e.spec.service_name.clone(),
                    server: e.spec.server_name.clone(),
                    dest: *k,
                    alive: e.checker.state() == State::Alive,
                    counts: self.counts.get(k).copied().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The checked real servers of a service, sorted.
    pub fn dests_of(&self, key: &ServiceKey) -> Vec<(IpAddr, u16)> {
        let mut v: Vec<(IpAddr, u16)> = self
            .entries
            .keys()
            .filter(|(k, _, _)| k == key)
            .map(|(_, a, p)| (*a, *p))
            .collect();
        v.sort();
        v
    }

    /// Whether the sorry server of a service is in.
    pub fn sorry_serving(&self, key: &ServiceKey) -> Option<SocketAddr> {
        self.sorry
            .get(key)
            .filter(|(s, _)| s.serving())
            .map(|(_, d)| SocketAddr::new(d.addr, d.port))
    }
}

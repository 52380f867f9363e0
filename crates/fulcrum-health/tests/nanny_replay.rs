//! Replays of the nanny: an lvs.cf, then a script of what happens — time
//! passing, probe results, the operator's drains, reloads — fed to
//! [`Monitor`] with the time passed in, and the transcript of what it decides
//! (probes started, table changes, state changes) compared whole. Each
//! script is what a director lives through; the transcript is what its
//! table and log would show.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_health::State;
use fulcrum_health::nanny::{Admin, DestKey, HealthResult, Monitor, TableOp};

/// A director's nanny under replay.
struct Replay {
    configs: Vec<String>,
    monitor: Monitor,
    now: Duration,
    /// The generation of each real server's probe in flight.
    in_flight: Vec<(DestKey, u64)>,
    names: Vec<(SocketAddr, String)>,
    out: String,
}

fn config(text: &str) -> fulcrum_config::Config {
    let parsed = fulcrum_config::parse(text);
    assert!(!parsed.has_errors(), "{}", parsed.render("lvs.cf", text));
    parsed.config
}

fn word(s: State) -> &'static str {
    match s {
        State::Unknown => "unknown",
        State::Alive => "alive",
        State::Dead => "dead",
    }
}

impl Replay {
    fn new(configs: &[&str]) -> Replay {
        let mut r = Replay {
            configs: configs.iter().map(|c| c.to_string()).collect(),
            monitor: Monitor::default(),
            now: Duration::ZERO,
            in_flight: Vec::new(),
            names: Vec::new(),
            out: String::new(),
        };
        r.load(0);
        r
    }

    fn load(&mut self, i: usize) {
        let cfg = config(&self.configs[i]);
        for c in cfg.checks() {
            let a = SocketAddr::new(c.dest.addr, c.dest.port);
            if !self.names.iter().any(|(x, _)| *x == a) {
                self.names.push((a, c.server_name.clone()));
            }
        }
        for s in cfg.sorry_servers() {
            self.names
                .push((SocketAddr::new(s.dest.addr, s.dest.port), "sorry".into()));
        }
        self.monitor
            .set_checks(cfg.checks(), cfg.sorry_servers(), self.now)
            .unwrap();
    }

    fn name(&self, a: SocketAddr) -> String {
        self.names
            .iter()
            .find(|(x, _)| *x == a)
            .map_or("?".into(), |(_, n)| n.clone())
    }

    fn key(&self, name: &str) -> DestKey {
        let a = self
            .names
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("no server {name}"))
            .0;
        self.in_flight
            .iter()
            .map(|(k, _)| *k)
            .chain(self.monitor.health_rows().into_iter().map(|r| r.dest))
            .find(|k| k.1 == a.ip() && k.2 == a.port())
            .unwrap_or_else(|| panic!("{name} is not checked"))
    }

    fn ops(&mut self, ops: Vec<TableOp>) {
        for op in ops {
            let line = match op {
                TableOp::Put(_, d) => format!(
                    "  put {} weight {}",
                    self.name(SocketAddr::new(d.addr, d.port)),
                    d.weight
                ),
                TableOp::Remove(_, a, p) => {
                    format!("  remove {}", self.name(SocketAddr::new(a, p)))
                }
            };
            self.out.push_str(&line);
            self.out.push('\n');
        }
    }

    fn collect(&mut self) {
        let (ops, logs) = self.monitor.collect();
        self.ops(ops);
        for l in logs {
            let _ = writeln!(
                self.out,
                "  {} {} -> {} ({})",
                l.server,
                word(l.transition.from),
                word(l.transition.to),
                l.transition.reason
            );
        }
    }

    fn result(
        &mut self,
        name: &str,
        result: Result<(), String>,
        f: impl FnOnce(&mut HealthResult),
    ) {
        let k = self.key(name);
        let Some(i) = self.in_flight.iter().position(|(d, _)| *d == k) else {
            panic!("{name} has no probe in flight at {:?}", self.now);
        };
        let (dest, generation) = self.in_flight.remove(i);
        let mut r = HealthResult {
            dest,
            generation,
            result,
            share: None,
            weight: None,
            load: None,
        };
        f(&mut r);
        self.monitor.on_result(r, self.now);
    }

    /// Run a script: one event a line, `@SECONDS EVENT [ARGS]`.
    fn run(mut self, script: &str) -> String {
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (at, event) = line.split_once(' ').unwrap_or((line, ""));
            let at: f64 = at.trim_start_matches('@').parse().expect(line);
            self.now = Duration::from_secs_f64(at);
            let _ = writeln!(self.out, "{line}");
            let words: Vec<&str> = event.split_whitespace().collect();
            match words.as_slice() {
                ["tick"] => {
                    let mut due = self.monitor.due(self.now);
                    due.sort_by_key(|d| (d.dest.1, d.dest.2));
                    for d in due {
                        let a = SocketAddr::new(d.dest.1, d.dest.2);
                        let line = format!("  probe {}\n", self.name(a));
                        self.out.push_str(&line);
                        self.in_flight.push((d.dest, d.generation));
                    }
                }
                ["ok", name] => self.result(name, Ok(()), |_| {}),
                ["fail", name, why @ ..] => self.result(name, Err(why.join(" ")), |_| {}),
                ["share", name, pct] => {
                    let pct = pct.parse().unwrap();
                    self.result(name, Ok(()), |r| r.share = Some(Ok(pct)));
                }
                ["weight", name, w] => {
                    let w = w.parse().unwrap();
                    self.result(name, Ok(()), |r| r.weight = Some(w));
                }
                ["load", name, l] => {
                    let l = l.parse().unwrap();
                    self.result(name, Ok(()), |r| r.load = Some(Ok(l)));
                }
                [verb @ ("drain" | "disable" | "enable"), name] => {
                    let admin = match *verb {
                        "drain" => Some(Admin::Drain),
                        "disable" => Some(Admin::Disable),
                        _ => None,
                    };
                    let k = self.key(name);
                    let ops = self.monitor.set_admin(&k, admin).unwrap();
                    self.ops(ops);
                }
                ["reload", i] => self.load(i.parse().unwrap()),
                ["status", name] => {
                    let k = self.key(name);
                    let s = self.monitor.describe(&k.0, &k.1, k.2, self.now).unwrap();
                    let _ = writeln!(self.out, "  {s}");
                }
                _ => panic!("unknown event: {line}"),
            }
            self.collect();
        }
        self.out
    }
}

/// Two real servers checked every 2 s, dead after 6 s without a good
/// check, back after passing for 10 s.
const WEB: &str = "virtual web {
 address = 192.0.2.1
 active = 1
 port = 8080
 scheduler = wlc
 check_interval = 2
 timeout = 6
 reentry = 10
 checktype = connect
 server rs1 {
  address = 10.0.0.1
  active = 1
  weight = 64
 }
 server rs2 {
  address = 10.0.0.2
  active = 1
  weight = 1
 }
}
";

fn with(extra: &str) -> String {
    WEB.replacen(
        " checktype = connect\n",
        &format!(" checktype = connect\n{extra}"),
        1,
    )
}

fn assert_replay(got: String, want: &str) {
    let want = want
        .lines()
        .map(|l| l.strip_prefix("        ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(got.trim_end(), want.trim(), "\n--- got ---\n{got}");
}

#[test]
fn first_good_check_adds_timeout_kills_reentry_brings_back_with_slow_start() {
    let got = Replay::new(&[WEB]).run(
        "@0 tick
         @0.1 ok rs1
         @0.1 fail rs2 connection refused
         @2 tick
         @2.1 ok rs1
         @4 tick
         @5 status rs1
         @6 tick
         @8 tick
         @8.1 fail rs1 connection timed out
         @10 tick
         @10.1 fail rs1 connection timed out
         @12 tick
         @12.1 ok rs1
         @14 tick
         @14.1 ok rs1
         @16 status rs1
         @22 tick
         @22.1 ok rs1
         @24 tick
         @24.1 ok rs1",
    );
    // rs1's probe of 4 s hangs: 6 s after its last good check (2.1 s) the
    // failure that ends it takes it out; rs2 never answers well and never
    // enters. Back after 10 s of good checks, at 64 >> 5 and doubling.
    assert_replay(
        got,
        "@0 tick
          probe rs1
          probe rs2
        @0.1 ok rs1
          put rs1 weight 64
          rs1 unknown -> alive (first good check)
        @0.1 fail rs2 connection refused
        @2 tick
          probe rs1
          probe rs2
        @2.1 ok rs1
        @4 tick
          probe rs1
        @5 status rs1
          alive (connect check; last check ok 2.9s ago)
        @6 tick
        @8 tick
        @8.1 fail rs1 connection timed out
          remove rs1
          rs1 alive -> dead (connection timed out)
        @10 tick
          probe rs1
        @10.1 fail rs1 connection timed out
        @12 tick
          probe rs1
        @12.1 ok rs1
        @14 tick
          probe rs1
        @14.1 ok rs1
        @16 status rs1
          dead, answering again: waiting to re-enter (7 s left) (connect check; last check ok 1.9s ago)
        @22 tick
          probe rs1
        @22.1 ok rs1
          put rs1 weight 2
          rs1 dead -> alive (alive for 10.0s (reentry 10.0s))
        @24 tick
          probe rs1
        @24.1 ok rs1
          put rs1 weight 4",
    );
}

#[test]
fn drains_disables_and_the_sorry_server() {
    let cf = with(" sorry_server = 10.0.0.9\n");
    let got = Replay::new(&[&cf]).run(
        "@0 tick
         @0.1 ok rs1
         @0.1 ok rs2
         @1 drain rs1
         @1.5 disable rs2
         @2 tick
         @2.1 ok rs1
         @2.1 ok rs2
         @3 enable rs2
         @4 enable rs1
         @4 tick
         @4.1 fail rs1 connection refused
         @4.1 fail rs2 connection refused
         @10.2 tick",
    );
    // A drained server stays at weight 0 and a disabled one out whatever
    // its checks say; with neither serving the sorry server comes in, and
    // goes when one is back. When both die it comes in again.
    assert_replay(
        got,
        "@0 tick
          probe rs1
          probe rs2
          put sorry weight 1
        @0.1 ok rs1
          put rs1 weight 64
          remove sorry
          rs1 unknown -> alive (first good check)
        @0.1 ok rs2
          put rs2 weight 1
          rs2 unknown -> alive (first good check)
        @1 drain rs1
          put rs1 weight 0
        @1.5 disable rs2
          remove rs2
          put sorry weight 1
        @2 tick
          probe rs1
          probe rs2
        @2.1 ok rs1
        @2.1 ok rs2
        @3 enable rs2
          put rs2 weight 1
          remove sorry
        @4 enable rs1
          put rs1 weight 64
        @4 tick
          probe rs1
          probe rs2
        @4.1 fail rs1 connection refused
        @4.1 fail rs2 connection refused
        @10.2 tick
          probe rs1
          probe rs2
          remove rs1
          remove rs2
          put sorry weight 1
          rs1 alive -> dead (no successful check for 8.1s (last: connection refused))
          rs2 alive -> dead (no successful check for 8.1s (last: connection refused))",
    );
}

#[test]
fn a_reload_keeps_what_did_not_change_and_drops_stale_results() {
    let heavier = WEB.replace("weight = 64", "weight = 32");
    let slower = heavier.replace("check_interval = 2", "check_interval = 3");
    let got = Replay::new(&[WEB, &heavier, &slower]).run(
        "@0 tick
         @0.1 ok rs1
         @1 reload 1
         @2 tick
         @3 reload 2
         @3.5 tick
         @3.6 ok rs1
         @3.7 ok rs1",
    );
    // A new weight is taken in place; a new interval is a new check: the
    // server is unknown again until its first good check, and the answer to
    // the old check's probe (sent at 2 s, answered at 3.6 s) counts for
    // nothing.
    assert_replay(
        got,
        "@0 tick
          probe rs1
          probe rs2
        @0.1 ok rs1
          put rs1 weight 64
          rs1 unknown -> alive (first good check)
        @1 reload 1
          put rs1 weight 32
        @2 tick
          probe rs1
        @3 reload 2
        @3.5 tick
          probe rs1
          probe rs2
        @3.6 ok rs1
        @3.7 ok rs1
          put rs1 weight 32
          rs1 unknown -> alive (first good check)",
    );
}

#[test]
fn load_shares_dynamic_weights_and_the_directors_own_exhaustion() {
    let got = Replay::new(&[WEB]).run(
        "@0 tick
         @0.1 share rs1 50
         @2 tick
         @2.1 weight rs1 10
         @4 tick
         @4.1 fail rs1 connect: Too many open files (os error 24)
         @4.2 status rs1
         @5.1 tick
         @5.2 share rs1 0
         @7.2 tick
         @7.3 share rs1 100",
    );
    // The agent's share scales the weight (0 drains); a dynamic weight
    // replaces the configured one; a probe the director could not run for
    // want of descriptors changes nothing and is retried in 1 s.
    assert_replay(
        got,
        "@0 tick
          probe rs1
          probe rs2
        @0.1 share rs1 50
          put rs1 weight 32
          rs1 unknown -> alive (first good check)
        @2 tick
          probe rs1
        @2.1 weight rs1 10
          put rs1 weight 5
        @4 tick
          probe rs1
        @4.1 fail rs1 connect: Too many open files (os error 24)
        @4.2 status rs1
          alive (connect check; last check ok 2.1s ago)
        @5.1 tick
          probe rs1
        @5.2 share rs1 0
          put rs1 weight 0
        @7.2 tick
          probe rs1
        @7.3 share rs1 100
          put rs1 weight 10",
    );
}

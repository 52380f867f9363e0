//! The nanny: whether a real server is in service, decided from probe
//! results and time, as the Red Hat guide describes Piranha's nanny
//! (§8.2.4.1) with the rise/fall counts ldirectord and keepalived offer.
//!
//! [`Checker`] is a sans-IO state machine for one (virtual server, real
//! server) pair: the caller asks [`Checker::poll_probe`] when to probe,
//! reports each outcome with [`Checker::handle_result`], and applies what
//! [`Checker::poll_action`] says to the table. Time is always passed in.
//! [`SorryServer`] tracks whether a virtual server needs its sorry server.
//! [`nanny::Monitor`] runs them all for a configuration: which probes are
//! due, what their results change in the table, the operator's drains.

pub mod http;
pub mod nanny;
pub mod probe;

/// nanny's weight from a real server's 1-minute load average `load`
/// (Red Hat Piranha, scale 10): below 1 the weight climbs by up to half the
/// configured weight per adjustment, to at most 10 times it; above 1 it
/// falls back, never below the configured weight; exactly 1 or an error
/// (negative) leaves it. A change of less than a quarter of the configured
/// weight is not made.
pub fn load_adjusted_weight(last: u32, weight: u32, load: f64) -> u32 {
    const SCALE: f64 = 10.0;
    let (last_f, w) = (f64::from(last), f64::from(weight));
    let scale_factor = w / 2.0;
    let diff_thresh = w / 4.0;
    #[allow(
        clippy::float_cmp,
        reason = "nanny's own test: exactly 1 means no change"
    )]
    if load < 0.0 || load == 1.0 || !load.is_finite() {
        return last;
    }
    let new = if load < 1.0 {
        (last_f + scale_factor * (1.0 - load).cbrt()).min(SCALE * w)
    } else {
        (last_f - scale_factor * (load - 1.0).cbrt()).max(w)
    };
    // Truncated, as nanny's double-to-int assignment does, and within the
    // kernel's weights.
    let new = new.min(f64::from(i32::MAX)) as u32;
    if (f64::from(new) - last_f).abs() >= diff_thresh {
        new
    } else {
        last
    }
}

/// The 1-minute load average in the output of `uptime`, `rup` or
/// `ruptime`: the first number after the word "load".
pub fn parse_load(output: &str) -> Option<f64> {
    let lower = output.to_ascii_lowercase();
    let rest = &output[lower.find("load")? + 4..];
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let num: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}
pub mod service;

use std::time::Duration;

/// How a real server is checked. Durations follow lvs.cf: `check_interval`,
/// `timeout`, `reentry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckParams {
    /// Time between checks (nanny checks every 2 seconds).
    pub interval: Duration,
    /// A server with no successful check for this long is dead.
    pub timeout: Duration,
    /// A dead server must pass checks continuously for this long to return.
    pub reentry: Duration,
    /// Consecutive successes also needed to return (ldirectord/keepalived
    /// `rise`); 1 means the reentry time alone decides.
    pub rise: u32,
    /// Consecutive failures that also make a server dead, before `timeout`
    /// runs out (`fall`); 0 means only `timeout` decides.
    pub fall: u32,
    /// The configured weight.
    pub weight: u32,
    /// On death set weight 0 (open connections finish) instead of removing.
    pub quiesce: bool,
}

impl CheckParams {
    /// Piranha's defaults: check every 2 s, dead after 10 s, back after
    /// 180 s, weight 1.
    pub fn piranha() -> CheckParams {
        CheckParams {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            reentry: Duration::from_secs(180),
            rise: 1,
            fall: 0,
            weight: 1,
            quiesce: false,
        }
    }

    /// The weight a server comes back with: nanny's slow start,
    /// `max(1, weight >> 5)` — and 0 for a server configured at weight 0.
    pub fn start_weight(&self) -> u32 {
        if self.weight == 0 {
            0
        } else {
            (self.weight >> 5).max(1)
        }
    }
}

/// What the table must do for this real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put the real server in the table with this weight.
    Add {
        /// Weight.
        weight: u32,
    },
    /// Take it out of the table.
    Remove,
    /// Change its weight (slow start, quiesce, or back from quiesce).
    SetWeight(u32),
}

/// Whether the server is in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not yet seen alive since the monitor started; not in service.
    Unknown,
    /// In service.
    Alive,
    /// Out of service (removed, or quiesced at weight 0).
    Dead,
}

/// A state change, with the probe result that caused it, for logs, metrics
/// and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When.
    pub at: Duration,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
    /// Why: the probe's words for the last result.
    pub reason: String,
}

/// The check state machine of one real server.
#[derive(Debug, Clone)]
pub struct Checker {
    params: CheckParams,
    state: State,
    next_probe: Duration,
    probing: bool,
    last_ok: Option<Duration>,
    /// Since when the server has passed every check (reset by a failure).
    ok_since: Option<Duration>,
    ok_run: u32,
    fail_run: u32,
    /// The weight before the load share: the configured weight, or where
    /// slow start has got to.
    weight: u32,
    /// The share of it the real server's load allows, in percent.
    share: u32,
    /// The weight nanny's load formula set (`load_monitor = uptime`…),
    /// once slow start is over.
    load_weight: Option<u32>,
    /// The weight the table was last told.
    reported: u32,
    started: Duration,
    last_result: Option<(Duration, Result<(), String>)>,
    actions: Vec<Action>,
    transitions: Vec<Transition>,
}

impl Checker {
    /// A checker that probes first at `now`. The server starts out of
    /// service and is added, at its configured weight, on its first good
    /// check (as nanny adds it); after a death it comes back with slow start.
    pub fn new(params: CheckParams, now: Duration) -> Checker {
        Checker {
            params,
            state: State::Unknown,
            next_probe: now,
            probing: false,
            last_ok: None,
            ok_since: None,
            ok_run: 0,
            fail_run: 0,
            weight: 0,
            share: 100,
            load_weight: None,
            reported: 0,
            started: now,
            last_result: None,
            actions: Vec::new(),
            transitions: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &CheckParams {
        &self.params
    }

    /// Change the weight and quiesce mode without touching the health state
    /// (a reload that changed only those). An alive server takes the new
    /// weight at once.
    pub fn update_params(&mut self, weight: u32, quiesce: bool) {
        self.params.quiesce = quiesce;
        if self.params.weight == weight {
            return;
        }
        self.params.weight = weight;
        if self.state == State::Alive {
            self.weight = weight;
            self.report();
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The weight in the table now (0 when out of service or quiesced):
    /// the slow-start weight times the load share.
    pub fn weight(&self) -> u32 {
        match self.state {
            State::Alive => self.effective(),
            _ => 0,
        }
    }

    fn effective(&self) -> u32 {
        let base = match self.load_weight {
            Some(w) if self.ramped() => w,
            _ => self.weight,
        };
        if base == 0 || self.share == 0 {
            0
        } else {
            // u64: weights go up to 2^31 - 1.
            let w = u64::from(base) * u64::from(self.share) / 100;
            u32::try_from(w).unwrap_or(u32::MAX).max(1)
        }
    }

    /// Slow start is over: the server is at its configured weight.
    fn ramped(&self) -> bool {
        self.weight > 0 && self.weight >= self.params.weight
    }

    /// The weight the load formula works from: the current weight once
    /// slow start is over, `None` while it ramps or out of service.
    pub fn load_base(&self) -> Option<u32> {
        (self.state == State::Alive && self.ramped())
            .then(|| self.load_weight.unwrap_or(self.params.weight))
    }

    /// Set (or, `None`, drop) the weight the load formula computed.
    pub fn set_load_weight(&mut self, w: Option<u32>) {
        self.load_weight = w;
        self.report();
    }

    /// Tell the table the weight if it changed.
    fn report(&mut self) {
        let w = self.effective();
        if self.state == State::Alive && w != self.reported {
            self.reported = w;
            self.actions.push(Action::SetWeight(w));
        }
    }

    /// The real server's load allows this share of its weight, in percent
    /// (an agent's `N%`; 0 drains it). 100 when its load cannot be read.
    pub fn set_share(&mut self, pct: u32) {
        self.share = pct;
        self.report();
    }

    /// The share of its weight the server's load allows, in percent.
    pub fn share(&self) -> u32 {
        self.share
    }

    /// A dead server passing its checks again: how long it still has to
    /// pass them before it re-enters (`reentry`); `None` otherwise.
    pub fn reentry_left(&self, now: Duration) -> Option<Duration> {
        match (self.state, self.ok_since) {
            (State::Dead, Some(since)) => Some(
                self.params
                    .reentry
                    .saturating_sub(now.saturating_sub(since)),
            ),
            _ => None,
        }
    }

    /// The last probe result and when it came.
    pub fn last_result(&self) -> Option<&(Duration, Result<(), String>)> {
        self.last_result.as_ref()
    }

    /// When the caller must call [`poll_probe`](Self::poll_probe) or
    /// [`handle_timeout`](Self::handle_timeout) next.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        let death = match (self.state, self.last_ok) {
            (State::Alive, Some(t)) => t + self.params.timeout,
            _ => Duration::MAX,
        };
        if self.probing {
            death
        } else {
            self.next_probe.min(death)
        }
    }

    /// Whether a probe should start now. Call when [`poll_timeout`] is
    /// reached; a `true` must be answered by one
    /// [`handle_result`](Self::handle_result).
    #[must_use]
    pub fn poll_probe(&mut self, now: Duration) -> bool {
        if self.probing || now < self.next_probe {
            return false;
        }
        self.probing = true;
        self.next_probe = now + self.params.interval;
        true
    }

    /// Time passed without a probe answering: a server whose last good
    /// check is older than `timeout` is dead even if probes hang.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.state == State::Alive
            && let Some(t) = self.last_ok
            && now >= t + self.params.timeout
        {
            let mut reason = format!("no successful check for {:.1}s", (now - t).as_secs_f64());
            match &self.last_result {
                Some((_, Err(last))) => reason.push_str(&format!(" (last: {last})")),
                _ if self.probing => reason.push_str(" (the last probe has not answered)"),
                _ => {}
            }
            self.die(now, reason);
        }
    }

    /// A probe's outcome: `Ok(())`, or `Err(reason)` in the probe's words
    /// (e.g. `connect timeout after 2.0s`, `expected "HTTP" got "SSH-2.0"`).
    pub fn handle_result(&mut self, now: Duration, result: Result<(), String>) {
        self.probing = false;
        self.last_result = Some((now, result.clone()));
        match result {
            Ok(()) => {
                self.last_ok = Some(now);
                self.ok_since.get_or_insert(now);
                self.ok_run += 1;
                self.fail_run = 0;
                match self.state {
                    State::Alive => self.ramp_up(),
                    State::Unknown => {
                        if self.ok_run >= self.params.rise {
                            self.enter(now, "first good check".into());
                        }
                    }
                    State::Dead => {
                        let held = now - self.ok_since.unwrap_or(now);
                        if held >= self.params.reentry && self.ok_run >= self.params.rise {
                            let reason = format!(
                                "alive for {:.1}s (reentry {:.1}s)",
                                held.as_secs_f64(),
                                self.params.reentry.as_secs_f64()
                            );
                            self.enter(now, reason);
                        }
                    }
                }
            }
            Err(reason) => {
                self.ok_since = None;
                self.ok_run = 0;
                self.fail_run += 1;
                if self.state != State::Alive {
                    return;
                }
                let since_ok = self.last_ok.map_or(now - self.started, |t| now - t);
                if since_ok >= self.params.timeout
                    || (self.params.fall > 0 && self.fail_run >= self.params.fall)
                {
                    self.die(now, reason);
                }
            }
        }
    }

    /// A probe could not be run for the director's own reasons (out of
    /// descriptors or memory: see [`probe::is_local_exhaustion`]). Nothing
    /// was learnt about the server: it keeps its state, its death timer
    /// does not run on, and the probe is retried after `retry` (or the
    /// interval, if shorter).
    pub fn handle_inconclusive(&mut self, now: Duration, retry: Duration) {
        self.probing = false;
        self.next_probe = now + retry.min(self.params.interval);
        if self.state == State::Alive
            && let Some(t) = self.last_ok
        {
            // Time without information does not count towards `timeout`:
            // the server cannot die before the retry has answered.
            let floor =
                (self.next_probe + Duration::from_millis(1)).saturating_sub(self.params.timeout);
            self.last_ok = Some(t.max(floor));
        }
    }

    /// The next thing the table must do, if any.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            None
        } else {
            Some(self.actions.remove(0))
        }
    }

    /// The next state change to log and count, if any.
    #[must_use]
    pub fn poll_transition(&mut self) -> Option<Transition> {
        if self.transitions.is_empty() {
            None
        } else {
            Some(self.transitions.remove(0))
        }
    }

    fn enter(&mut self, now: Duration, reason: String) {
        let from = self.state;
        self.state = State::Alive;
        // Slow start is for a server coming back; at first it gets its
        // configured weight, so a new director balances as configured.
        let w = if from == State::Dead {
            self.params.start_weight()
        } else {
            self.params.weight
        };
        self.weight = w;
        // It enters at its weight as the load share (or load formula)
        // scales it, and the table is told exactly that.
        let w = self.effective();
        self.reported = w;
        // A quiesced server is still in the table: only its weight returns.
        let action = if from == State::Dead && self.params.quiesce {
            Action::SetWeight(w)
        } else {
            Action::Add { weight: w }
        };
        self.actions.push(action);
        self.transitions.push(Transition {
            at: now,
            from,
            to: State::Alive,
            reason,
        });
    }

    fn die(&mut self, now: Duration, reason: String) {
        let from = self.state;
        self.state = State::Dead;
        self.weight = 0;
        self.load_weight = None;
        self.reported = 0;
        self.ok_since = None;
        self.ok_run = 0;
        self.actions.push(if self.params.quiesce {
            Action::SetWeight(0)
        } else {
            Action::Remove
        });
        self.transitions.push(Transition {
            at: now,
            from,
            to: State::Dead,
            reason,
        });
    }

    /// Slow start: double the weight on every good check up to the
    /// configured weight (nanny's ramp: 3, 6, 12, … for weight 100).
    fn ramp_up(&mut self) {
        if self.weight < self.params.weight {
            self.weight = (self.weight * 2).min(self.params.weight);
            self.report();
        }
    }
}

/// Whether a virtual server needs its sorry server: when none of its real
/// servers is in service (lvsd counts active nannies the same way).
#[derive(Debug, Clone, Default)]
pub struct SorryServer {
    serving: bool,
}

/// What to do with the sorry server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SorryAction {
    /// Add it (weight 1).
    Add,
    /// Remove it.
    Remove,
}

impl SorryServer {
    /// Given how many real servers are alive now, the change to make.
    pub fn update(&mut self, alive: usize) -> Option<SorryAction> {
        match (alive == 0, self.serving) {
            (true, false) => {
                self.serving = true;
                Some(SorryAction::Add)
            }
            (false, true) => {
                self.serving = false;
                Some(SorryAction::Remove)
            }
            _ => None,
        }
    }

    /// Whether the sorry server is in the table.
    pub fn serving(&self) -> bool {
        self.serving
    }
}

//! The VRRP election of one virtual router (RFC 5798 §6.4; RFC 3768 for
//! version 2's skew), sans-IO: adverts and time go in, adverts to send and
//! state changes come out. The caller owns the sockets and the clock.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::vrrp::{Advert, Auth, Version};

/// How this router takes part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Version 2 or 3.
    pub version: Version,
    /// Virtual router id.
    pub vrid: u8,
    /// 1..=254, or 255 for the owner of the addresses.
    pub priority: u8,
    /// Our advertisement interval, centiseconds.
    pub interval_cs: u16,
    /// A higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// The virtual addresses.
    pub addrs: Vec<IpAddr>,
    /// Our own address (ties between equal priorities go to the higher).
    pub local: IpAddr,
    /// Version 2's authentication.
    pub auth: Auth,
    /// Piranha's `deadtime`: when set, a backup takes over after at most
    /// this long without adverts (`deadtime` − interval + skew) instead of
    /// VRRP's three intervals + skew.
    pub deadtime: Option<Duration>,
    /// With preemption, how long a lower-priority master is tolerated
    /// before taking over from it.
    pub preempt_delay: Duration,
}

/// The router's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started, or shut down.
    Initialize,
    /// Watching the master.
    Backup,
    /// Owning the addresses.
    Master,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this advert.
    Send(Advert),
    /// Another master was heard while we are master with a higher
    /// priority (a healed partition): announce the addresses again so
    /// neighbour caches converge on us.
    Reannounce,
    /// The state changed: take the addresses (Master) or give them up.
    StateChanged {
        /// Before.
        from: State,
        /// Now.
        to: State,
        /// Why, in words for the log.
        reason: String,
    },
}

/// One virtual router's election.
#[derive(Debug, Clone)]
pub struct Router {
    cfg: RouterConfig,
    state: State,
    /// The master's advertisement interval as last heard (centiseconds).
    master_interval_cs: u16,
    adver_timer: Option<Duration>,
    master_down_timer: Option<Duration>,
    /// When a lower-priority master was first heard (preempt delay).
    lower_since: Option<Duration>,
    /// The last advert a backup heard from a master: who, and when.
    last_heard: Option<(IpAddr, Duration)>,
    /// When this router became a backup.
    backup_since: Duration,
    out: VecDeque<Output>,
}

fn cs(c: u32) -> Duration {
    Duration::from_millis(u64::from(c) * 10)
}

impl Router {
    /// A router in Initialize; call [`start`](Self::start).
    pub fn new(cfg: RouterConfig) -> Router {
        Router {
            master_interval_cs: cfg.interval_cs,
            cfg,
            state: State::Initialize,
            adver_timer: None,
            master_down_timer: None,
            lower_since: None,
            last_heard: None,
            backup_since: Duration::ZERO,
            out: VecDeque::new(),
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Skew_Time: lower priorities wait a little longer.
    fn skew(&self) -> Duration {
        let p = 256 - u32::from(self.cfg.priority);
        match self.cfg.version {
            Version::V2 => cs(p * 100 / 256),
            Version::V3 => cs(p * u32::from(self.master_interval_cs) / 256),
        }
    }

    /// Master_Down_Interval: three intervals of silence plus the skew, or
    /// with a `deadtime`, one interval less than it plus the skew (so
    /// backups still take over in priority order, all within `deadtime`).
    fn master_down_interval(&self) -> Duration {
        let interval = cs(u32::from(self.master_interval_cs));
        match self.cfg.deadtime {
            Some(d) => d.saturating_sub(interval) + self.skew(),
            None => interval * 3 + self.skew(),
        }
    }

    /// Our configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// New settings (a reload), keeping the state: the next advert carries
    /// the new priority, interval and addresses, and the election follows
    /// (a backup that now outranks the master takes over if it preempts; a
    /// master that no longer outranks a preempting backup is replaced).
    pub fn reconfigure(&mut self, cfg: RouterConfig) {
        self.cfg = cfg;
    }

    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval_cs: self.cfg.interval_cs,
            addrs: self.cfg.addrs.clone(),
            auth: self.cfg.auth,
        }
    }

    fn become_(&mut self, to: State, reason: String) {
        let from = self.state;
        self.state = to;
        self.out
            .push_back(Output::StateChanged { from, to, reason });
    }

    fn become_master(&mut self, now: Duration, reason: String) {
        self.out
            .push_back(Output::Send(self.advert(self.cfg.priority)));
        self.adver_timer = Some(now + cs(u32::from(self.cfg.interval_cs)));
        self.master_down_timer = None;
        self.become_(State::Master, reason);
    }

    fn become_backup(&mut self, now: Duration, reason: String) {
        self.backup_since = now;
        self.adver_timer = None;
        self.lower_since = None;
        self.master_down_timer = Some(now + self.master_down_interval());
        self.become_(State::Backup, reason);
    }

    /// Startup: the owner (priority 255) becomes master at once, every
    /// other router backup.
    pub fn start(&mut self, now: Duration) {
        if self.state != State::Initialize {
            return;
        }
        self.master_interval_cs = self.cfg.interval_cs;
        if self.cfg.priority == 255 {
            self.become_master(now, "priority 255: owner of the addresses".into());
        } else {
            self.become_backup(now, "started".into());
        }
    }

    /// Shutdown: a master says priority 0 so a backup takes over at once.
    pub fn shutdown(&mut self) {
        if self.state == State::Master {
            self.out.push_back(Output::Send(self.advert(0)));
        }
        self.adver_timer = None;
        self.master_down_timer = None;
        self.lower_since = None;
        if self.state != State::Initialize {
            self.become_(State::Initialize, "shut down".into());
        }
    }

    /// Give the active role up now (ipfail): a master sends a priority-0
    /// advert so a backup takes over after its skew, and becomes backup.
    pub fn step_down(&mut self, now: Duration, reason: String) {
        if self.state == State::Master {
            self.out.push_back(Output::Send(self.advert(0)));
            self.become_backup(now, reason);
        }
    }

    /// An advert for our virtual router arrived from `from`.
    pub fn handle_advert(&mut self, now: Duration, from: IpAddr, a: &Advert) {
        if a.vrid != self.cfg.vrid || a.version != self.cfg.version {
            return;
        }
        match self.state {
            State::Initialize => {}
            State::Backup => {
                if a.priority != 0 {
                    self.last_heard = Some((from, now));
                }
                let lower = self.cfg.preempt && a.priority < self.cfg.priority;
                if lower && a.priority != 0 {
                    // Preempt delay: a lower-priority master counts as a
                    // master until the delay has passed since first heard.
                    let since = *self.lower_since.get_or_insert(now);
                    if now < since + self.cfg.preempt_delay {
                        self.master_interval_cs = a.interval_cs.max(1);
                        self.master_down_timer = Some(now + self.master_down_interval());
                    }
                    // Otherwise ignored, so our Master_Down timer runs out
                    // and we take over.
                } else if a.priority == 0 {
                    self.master_down_timer = Some(now + self.skew());
                } else {
                    self.lower_since = None;
                    self.master_interval_cs = a.interval_cs.max(1);
                    self.master_down_timer = Some(now + self.master_down_interval());
                }
            }
            State::Master => {
                if a.priority == 0 {
                    // Another master stepped down: it held the addresses
                    // too (a healed partition, or it yielded to us), so
                    // clients may point at it. Answer at once and announce
                    // them again.
                    self.out
                        .push_back(Output::Send(self.advert(self.cfg.priority)));
                    self.adver_timer = Some(now + cs(u32::from(self.cfg.interval_cs)));
                    self.out.push_back(Output::Reannounce);
                } else if a.priority > self.cfg.priority
                    || (a.priority == self.cfg.priority && from > self.cfg.local)
                {
                    // Yield, and say so with a priority-0 advert: the winner
                    // may never have heard ours (it yields first only when
                    // it hears us first), and must announce the addresses
                    // again whichever of the two heard the other first.
                    self.out.push_back(Output::Send(self.advert(0)));
                    self.master_interval_cs = a.interval_cs.max(1);
                    self.become_backup(
                        now,
                        format!(
                            "{from} advertises priority {} (ours {})",
                            a.priority, self.cfg.priority
                        ),
                    );
                } else {
                    // Two masters (a partition healed): answer at once so
                    // the other yields within one advert, and announce the
                    // addresses again.
                    self.out
                        .push_back(Output::Send(self.advert(self.cfg.priority)));
                    self.adver_timer = Some(now + cs(u32::from(self.cfg.interval_cs)));
                    self.out.push_back(Output::Reannounce);
                }
            }
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.state {
            State::Backup if self.master_down_timer.is_some_and(|t| now >= t) => {
                let limit = self.master_down_interval().as_secs_f64();
                let reason = match self.last_heard.filter(|(_, t)| *t >= self.backup_since) {
                    Some((who, t)) => format!(
                        "no advert from the master {who} for {:.2}s (the limit is {limit:.2}s)",
                        now.saturating_sub(t).as_secs_f64(),
                    ),
                    None => format!(
                        "no advert from any master in {:.2}s as a backup (the limit is {limit:.2}s)",
                        now.saturating_sub(self.backup_since).as_secs_f64()
                    ),
                };
                self.become_master(now, reason);
            }
            State::Master if self.adver_timer.is_some_and(|t| now >= t) => {
                self.out
                    .push_back(Output::Send(self.advert(self.cfg.priority)));
                self.adver_timer = Some(now + cs(u32::from(self.cfg.interval_cs)));
            }
            _ => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            State::Backup => self.master_down_timer,
            State::Master => self.adver_timer,
            State::Initialize => None,
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn router(priority: u8, local: &str, preempt: bool) -> Router {
        Router::new(RouterConfig {
            version: Version::V3,
            vrid: 51,
            priority,
            interval_cs: 100,
            preempt,
            addrs: vec!["10.0.0.100".parse().unwrap()],
            local: local.parse().unwrap(),
            auth: Auth::None,
            deadtime: None,
            preempt_delay: Duration::ZERO,
        })
    }

    /// Two routers on a shared wire, advanced in 10 ms steps; `alive`
    /// says whether each is running at a given time.
    struct Wire {
        r: [Router; 2],
        up: [bool; 2],
        now: Duration,
        changes: Vec<(Duration, usize, State)>,
        /// When each router's last advert was delivered.
        heard: [Duration; 2],
        /// The wire is cut (a partition): nothing is delivered.
        cut: bool,
        /// Reannounce outputs seen, per router.
        reannounced: [u32; 2],
    }

    impl Wire {
        fn new(a: Router, b: Router) -> Wire {
            let mut w = Wire {
                r: [a, b],
                up: [true, true],
                now: Duration::ZERO,
                changes: vec![],
                heard: [Duration::ZERO; 2],
                cut: false,
                reannounced: [0; 2],
            };
            for i in 0..2 {
                w.r[i].start(Duration::ZERO);
            }
            w.deliver();
            w
        }

        fn deliver(&mut self) {
            loop {
                let mut any = false;
                for i in 0..2 {
                    while let Some(o) = self.r[i].poll_output() {
                        any = true;
                        match o {
                            Output::Send(a) if self.up[i] && self.up[1 - i] && !self.cut => {
                                let from = self.r[i].cfg.local;
                                self.heard[i] = self.now;
                                self.r[1 - i].handle_advert(self.now, from, &a);
                            }
                            Output::Reannounce => self.reannounced[i] += 1,
                            Output::Send(_) => {}
                            Output::StateChanged { to, .. } => self.changes.push((self.now, i, to)),
                        }
                    }
                }
                if !any {
                    break;
                }
            }
        }

        fn run_until(&mut self, until: Duration) {
            while self.now < until {
                self.now += ms(10);
                for i in 0..2 {
                    if self.up[i] {
                        self.r[i].handle_timeout(self.now);
                    }
                }
                self.deliver();
            }
        }

        fn masters(&self) -> Vec<usize> {
            (0..2)
                .filter(|&i| self.up[i] && self.r[i].state() == State::Master)
                .collect()
        }
    }

    #[test]
    fn the_higher_priority_wins_and_a_silent_master_is_replaced_within_master_down() {
        let mut w = Wire::new(router(150, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.run_until(ms(5000));
        assert_eq!(w.masters(), vec![0]);
        // The master dies silently: the backup takes over after
        // 3 x 1 s + skew ((256 - 100) / 256 s = 0.61 s).
        w.up[0] = false;
        let died = w.now;
        w.run_until(died + ms(5000));
        assert_eq!(w.masters(), vec![1]);
        let took = w.changes.last().unwrap().0 - w.heard[0];
        assert!(
            took >= ms(3600) && took <= ms(3620),
            "took over {took:?} after the last advert"
        );
    }

    /// The reason of the last state change.
    fn last_reason(r: &mut Router) -> String {
        let mut reason = String::new();
        while let Some(o) = r.poll_output() {
            if let Output::StateChanged { reason: why, .. } = o {
                reason = why;
            }
        }
        reason
    }

    #[test]
    fn a_take_over_says_whose_adverts_stopped_and_for_how_long() {
        let mut b = router(100, "10.0.0.2", true);
        b.start(Duration::ZERO);
        let master = router(150, "10.0.0.1", true).advert(150);
        b.handle_advert(ms(1000), "10.0.0.1".parse().unwrap(), &master);
        b.handle_timeout(ms(10_000));
        assert_eq!(b.state(), State::Master);
        assert_eq!(
            last_reason(&mut b),
            "no advert from the master 10.0.0.1 for 9.00s (the limit is 3.60s)"
        );
        // Never heard one: says how long it waited as a backup.
        let mut c = router(100, "10.0.0.2", true);
        c.start(Duration::ZERO);
        c.handle_timeout(ms(4000));
        assert_eq!(
            last_reason(&mut c),
            "no advert from any master in 4.00s as a backup (the limit is 3.60s)"
        );
    }

    #[test]
    fn a_clean_shutdown_hands_over_within_the_skew() {
        let mut w = Wire::new(router(150, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.run_until(ms(3000));
        let t = w.now;
        w.r[0].shutdown();
        w.deliver();
        w.up[0] = false;
        w.run_until(t + ms(2000));
        assert_eq!(w.masters(), vec![1]);
        let took = w.changes.last().unwrap().0 - t;
        assert!(took <= ms(700), "priority 0 means now-ish: {took:?}");
    }

    #[test]
    fn a_returning_primary_takes_over_with_preempt_and_not_without() {
        for preempt in [true, false] {
            let mut w = Wire::new(
                router(150, "10.0.0.1", preempt),
                router(100, "10.0.0.2", preempt),
            );
            w.up[0] = false;
            w.run_until(ms(6000));
            assert_eq!(w.masters(), vec![1], "the backup holds the addresses");
            w.up[0] = true;
            w.r[0] = router(150, "10.0.0.1", preempt);
            w.r[0].start(w.now);
            let back = w.now;
            w.run_until(back + ms(6000));
            let want = if preempt { vec![0] } else { vec![1] };
            assert_eq!(w.masters(), want, "preempt = {preempt}");
        }
    }

    #[test]
    fn equal_priorities_elect_the_higher_address_and_the_owner_starts_as_master() {
        let mut w = Wire::new(router(100, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.run_until(ms(8000));
        assert_eq!(w.masters(), vec![1]);
        let mut owner = router(255, "10.0.0.9", true);
        owner.start(Duration::ZERO);
        assert_eq!(owner.state(), State::Master);
        assert!(matches!(owner.poll_output(), Some(Output::Send(a)) if a.priority == 255));
    }

    #[test]
    fn deadtime_bounds_the_take_over_and_keeps_priority_order() {
        // keepalive 0.1 s, deadtime 0.35 s: a backup at priority 100 takes
        // over 0.35 - 0.1 + 0.061 = 0.31 s after the last advert.
        let mk = |p, local: &str| {
            let mut r = router(p, local, true);
            r.cfg.interval_cs = 10;
            r.cfg.deadtime = Some(ms(350));
            Router::new(r.cfg)
        };
        let mut w = Wire::new(mk(150, "10.0.0.1"), mk(100, "10.0.0.2"));
        w.run_until(ms(2000));
        assert_eq!(w.masters(), vec![0]);
        w.up[0] = false;
        let died = w.now;
        w.run_until(died + ms(1000));
        assert_eq!(w.masters(), vec![1]);
        let took = w.changes.last().unwrap().0 - w.heard[0];
        assert!(took >= ms(300) && took <= ms(350), "{took:?}");
    }

    #[test]
    fn preempt_delay_tolerates_a_lower_master_for_that_long() {
        let mut w = Wire::new(router(150, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.up[0] = false;
        w.run_until(ms(6000));
        assert_eq!(w.masters(), vec![1]);
        let mut cfg = router(150, "10.0.0.1", true).cfg;
        cfg.preempt_delay = ms(5000);
        w.r[0] = Router::new(cfg);
        w.up[0] = true;
        w.r[0].start(w.now);
        let back = w.now;
        w.run_until(back + ms(6000));
        assert_eq!(w.masters(), vec![1], "still within the preempt delay");
        w.run_until(back + ms(10_000));
        assert_eq!(w.masters(), vec![0], "took over after the delay");
        let took = w.changes.last().unwrap().0 - back;
        assert!(took >= ms(5000) && took <= ms(9000), "{took:?}");
    }

    #[test]
    fn a_healed_partition_leaves_one_master_within_one_advert_and_reannounces() {
        let mut w = Wire::new(router(150, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.run_until(ms(5000));
        w.cut = true;
        w.run_until(ms(10_000));
        assert_eq!(w.masters(), vec![0, 1], "split brain while cut");
        w.cut = false;
        let healed = w.now;
        w.run_until(healed + ms(1010));
        assert_eq!(w.masters(), vec![0]);
        let (t, who, to) = *w.changes.last().unwrap();
        assert_eq!((who, to), (1, State::Backup));
        assert!(t - healed <= ms(1010), "{:?}", t - healed);
        assert!(w.reannounced[0] >= 1, "the winner announces again");
    }

    /// Two masters after a partition; the lower hears the higher first and
    /// yields before the higher ever hears it: the higher still announces
    /// the addresses again (it is told by the yielding one's priority-0
    /// advert).
    #[test]
    fn the_winner_reannounces_whichever_master_hears_the_other_first() {
        let (hi_addr, lo_addr): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut hi = router(150, "10.0.0.1", true);
        let mut lo = router(100, "10.0.0.2", true);
        hi.start(Duration::ZERO);
        lo.start(Duration::ZERO);
        hi.handle_timeout(ms(5000));
        lo.handle_timeout(ms(5000));
        assert_eq!((hi.state(), lo.state()), (State::Master, State::Master));
        while hi.poll_output().is_some() {}
        while lo.poll_output().is_some() {}
        let from_hi = hi.advert(150);
        lo.handle_advert(ms(5100), hi_addr, &from_hi);
        assert_eq!(lo.state(), State::Backup);
        let yielded: Vec<Output> = std::iter::from_fn(|| lo.poll_output()).collect();
        let zero = yielded
            .iter()
            .find_map(|o| match o {
                Output::Send(a) if a.priority == 0 => Some(a.clone()),
                _ => None,
            })
            .expect("the yielding master says so");
        hi.handle_advert(ms(5101), lo_addr, &zero);
        let out: Vec<Output> = std::iter::from_fn(|| hi.poll_output()).collect();
        assert!(
            out.iter().any(|o| matches!(o, Output::Reannounce)),
            "{out:?}"
        );
        assert_eq!(hi.state(), State::Master);
    }

    #[test]
    fn a_reload_lowering_the_masters_priority_hands_over_to_a_preempting_backup() {
        let mut w = Wire::new(router(150, "10.0.0.1", true), router(100, "10.0.0.2", true));
        w.run_until(ms(5000));
        assert_eq!(w.masters(), vec![0]);
        let mut cfg = w.r[0].config().clone();
        cfg.priority = 50;
        w.r[0].reconfigure(cfg);
        w.run_until(ms(10_000));
        assert_eq!(w.masters(), vec![1]);
    }
}

//! Replay tests of the check state machine on a virtual clock: a scripted
//! real server (up or down as a function of time) and the actions the table
//! receives, with their times.

use std::time::Duration;

use fulcrum_health::{Action, CheckParams, Checker, SorryAction, SorryServer, State};

fn s(x: u64) -> Duration {
    Duration::from_secs(x)
}

/// Drive a checker until `until`; probes answer at once.
fn replay(
    c: &mut Checker,
    from: Duration,
    until: Duration,
    up: impl Fn(Duration) -> bool,
) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    let mut now = from;
    loop {
        now = now.max(c.poll_timeout());
        if now > until {
            break;
        }
        c.handle_timeout(now);
        if c.poll_probe(now) {
            let r = if up(now) {
                Ok(())
            } else {
                Err("connect: connection refused".to_string())
            };
            c.handle_result(now, r);
        }
        while let Some(a) = c.poll_action() {
            out.push((now.as_secs(), a));
        }
    }
    out
}

fn params(weight: u32) -> CheckParams {
    CheckParams {
        weight,
        ..CheckParams::piranha()
    }
}

#[test]
fn first_good_check_adds_at_full_weight_and_return_ramps_up() {
    let mut c = Checker::new(
        CheckParams {
            reentry: s(4),
            ..params(100)
        },
        s(0),
    );
    // Down from 10 to 20; back after 4 s of good checks, with slow start.
    let acts = replay(&mut c, s(0), s(50), |t| !(s(10)..s(20)).contains(&t));
    assert_eq!(
        acts,
        vec![
            (0, Action::Add { weight: 100 }),
            (18, Action::Remove),
            (24, Action::Add { weight: 3 }),
            (26, Action::SetWeight(6)),
            (28, Action::SetWeight(12)),
            (30, Action::SetWeight(24)),
            (32, Action::SetWeight(48)),
            (34, Action::SetWeight(96)),
            (36, Action::SetWeight(100)),
        ]
    );
    assert_eq!((c.state(), c.weight()), (State::Alive, 100));
}

#[test]
fn dead_after_timeout_without_a_good_check_and_back_after_reentry() {
    let mut c = Checker::new(params(1), s(0));
    // Down from t=20 to t=40, then up again.
    let acts = replay(&mut c, s(0), s(400), |t| !(s(20)..s(40)).contains(&t));
    // Last good check at 18; 10 s later (t=28) it is dead: within timeout
    // plus one interval of the failure. Up again from 40: back at 40 + 180.
    assert_eq!(
        acts,
        vec![
            (0, Action::Add { weight: 1 }),
            (28, Action::Remove),
            (220, Action::Add { weight: 1 })
        ]
    );
    let t: Vec<_> = std::iter::from_fn(|| c.poll_transition()).collect();
    assert_eq!(t[1].to, State::Dead);
    assert_eq!(
        t[1].reason,
        "no successful check for 10.0s (last: connect: connection refused)"
    );
    assert_eq!(t[2].reason, "alive for 180.0s (reentry 180.0s)");
}

#[test]
fn a_dead_server_answering_again_says_how_long_until_it_re_enters() {
    let mut c = Checker::new(params(1), s(0));
    // Down from t=20 to t=40, then up again: back at 40 + 180.
    replay(&mut c, s(0), s(100), |t| !(s(20)..s(40)).contains(&t));
    assert_eq!(c.state(), State::Dead);
    // Passing checks since 40: at 100, 120 s left.
    assert_eq!(c.reentry_left(s(100)), Some(s(120)));
    assert_eq!(c.reentry_left(s(400)), Some(s(0)));
    // Alive servers and dead ones still failing wait for nothing.
    let mut up = Checker::new(params(1), s(0));
    replay(&mut up, s(0), s(10), |_| true);
    assert_eq!(up.reentry_left(s(10)), None);
    let mut down = Checker::new(params(1), s(0));
    replay(&mut down, s(0), s(100), |t| t < s(20));
    assert_eq!(down.state(), State::Dead);
    assert_eq!(down.reentry_left(s(100)), None);
}

#[test]
fn flapping_restarts_the_reentry_wait() {
    let mut c = Checker::new(
        CheckParams {
            reentry: s(30),
            ..params(1)
        },
        s(0),
    );
    // Down 10..30, up, one failed check at 50, up again.
    let acts = replay(&mut c, s(0), s(200), |t| {
        !((s(10)..s(30)).contains(&t) || t == s(50))
    });
    assert_eq!(
        acts,
        vec![
            (0, Action::Add { weight: 1 }),
            (18, Action::Remove),
            (82, Action::Add { weight: 1 })
        ]
    );
}

#[test]
fn quiesce_sets_weight_zero_and_restores_with_slow_start() {
    let mut c = Checker::new(
        CheckParams {
            quiesce: true,
            reentry: s(4),
            ..params(8)
        },
        s(0),
    );
    let acts = replay(&mut c, s(0), s(60), |t| !(s(20)..s(40)).contains(&t));
    assert_eq!(
        acts,
        vec![
            (0, Action::Add { weight: 8 }),
            (28, Action::SetWeight(0)),
            (44, Action::SetWeight(1)),
            (46, Action::SetWeight(2)),
            (48, Action::SetWeight(4)),
            (50, Action::SetWeight(8)),
        ]
    );
}

#[test]
fn fall_and_rise_counts() {
    let p = CheckParams {
        fall: 3,
        rise: 3,
        reentry: s(0),
        ..params(1)
    };
    let mut c = Checker::new(p, s(0));
    let acts = replay(&mut c, s(0), s(60), |t| !(s(20)..s(30)).contains(&t));
    // Needs three good checks to start (0, 2, 4); three failures (20, 22,
    // 24) kill it before the 10 s timeout; three good checks (30, 32, 34)
    // bring it back.
    assert_eq!(
        acts,
        vec![
            (4, Action::Add { weight: 1 }),
            (24, Action::Remove),
            (34, Action::Add { weight: 1 })
        ]
    );
}

#[test]
fn a_probe_that_never_answers_does_not_keep_a_server_alive() {
    let mut c = Checker::new(params(1), s(0));
    assert!(c.poll_probe(s(0)));
    c.handle_result(s(0), Ok(()));
    assert_eq!(c.poll_action(), Some(Action::Add { weight: 1 }));
    // The next probe starts at 2 and hangs; no new probe starts meanwhile.
    assert!(c.poll_probe(s(2)));
    assert!(!c.poll_probe(s(4)));
    assert_eq!(c.poll_timeout(), s(10), "wake up when the timeout runs out");
    c.handle_timeout(s(10));
    assert_eq!(c.poll_action(), Some(Action::Remove));
    let t: Vec<_> = std::iter::from_fn(|| c.poll_transition()).collect();
    assert_eq!(
        t.last().unwrap().reason,
        "no successful check for 10.0s (the last probe has not answered)"
    );
}

#[test]
fn a_server_that_never_answers_is_never_added() {
    let mut c = Checker::new(params(1), s(0));
    assert!(replay(&mut c, s(0), s(100), |_| false).is_empty());
    assert_eq!(c.state(), State::Unknown);
}

#[test]
fn sorry_server_when_no_real_server_is_alive() {
    let mut sorry = SorryServer::default();
    let mut cs: Vec<Checker> = (0..3).map(|_| Checker::new(params(1), s(0))).collect();
    let mut log = Vec::new();
    let mut now = s(0);
    while now <= s(400) {
        for (i, c) in cs.iter_mut().enumerate() {
            c.handle_timeout(now);
            if c.poll_probe(now) {
                // All three die at 20; rs2 comes back at 60 (alive 180 s later).
                let up = now < s(20) || (i == 1 && now >= s(60));
                c.handle_result(now, if up { Ok(()) } else { Err("down".into()) });
            }
            while c.poll_action().is_some() {}
        }
        let alive = cs.iter().filter(|c| c.state() == State::Alive).count();
        if let Some(a) = sorry.update(alive) {
            log.push((now.as_secs(), a));
        }
        now += s(1);
    }
    // Nothing is alive before the first checks complete (t=0 adds them).
    assert_eq!(
        log,
        vec![(28, SorryAction::Add), (240, SorryAction::Remove)]
    );
}

#[test]
fn start_weights() {
    let w = |weight| {
        CheckParams {
            weight,
            ..CheckParams::piranha()
        }
        .start_weight()
    };
    assert_eq!(
        (w(0), w(1), w(31), w(32), w(100), w(2000)),
        (0, 1, 1, 1, 3, 62)
    );
    let mut c = Checker::new(params(0), s(0));
    assert_eq!(
        replay(&mut c, s(0), s(10), |_| true),
        vec![(0, Action::Add { weight: 0 })]
    );
}

#[test]
fn weight_and_quiesce_change_without_losing_health_state() {
    let mut c = Checker::new(params(4), s(0));
    replay(&mut c, s(0), s(2), |_| true);
    c.update_params(10, true);
    assert_eq!(
        (c.state(), c.weight(), c.poll_action()),
        (State::Alive, 10, Some(Action::SetWeight(10)))
    );
    let acts = replay(&mut c, s(3), s(20), |t| t < s(10));
    assert_eq!(
        acts,
        vec![(18, Action::SetWeight(0))],
        "dies quiesced, as updated"
    );
}

#[test]
fn load_share_scales_the_weight_and_zero_drains() {
    let mut c = Checker::new(params(10), s(0));
    replay(&mut c, s(0), s(1), |_| true);
    c.set_share(50);
    assert_eq!(
        (c.weight(), c.poll_action()),
        (5, Some(Action::SetWeight(5)))
    );
    c.set_share(50);
    assert_eq!(c.poll_action(), None, "no change, nothing to tell");
    c.set_share(0);
    assert_eq!(c.poll_action(), Some(Action::SetWeight(0)));
    c.set_share(1);
    assert_eq!(
        c.poll_action(),
        Some(Action::SetWeight(1)),
        "a tiny share still gets weight 1"
    );
    c.set_share(100);
    assert_eq!(c.poll_action(), Some(Action::SetWeight(10)));
}

#[test]
fn nanny_load_formula() {
    use fulcrum_health::load_adjusted_weight as adj;
    // Idle: up by half the weight times the cube root of (1 - L).
    assert_eq!(adj(100, 100, 0.0), 150);
    assert_eq!(adj(100, 100, 0.5), 139); // 100 + 50 * 0.7937, truncated
    assert_eq!(adj(960, 100, 0.0), 1000, "at most 10x the weight");
    // Loaded: down, never below the configured weight.
    assert_eq!(adj(300, 100, 9.0), 200); // 300 - 50 * 2
    assert_eq!(
        adj(120, 100, 9.0),
        120,
        "a step under a quarter of the weight is not made"
    );
    assert_eq!(adj(150, 100, 9.0), 100);
    // Exactly 1, or an error: unchanged.
    assert_eq!(adj(150, 100, 1.0), 150);
    assert_eq!(adj(150, 100, -1.0), 150);
    assert_eq!(
        adj(1, 1, 0.0),
        1,
        "weight 1 never moves (1.5 truncates to 1)"
    );
}

#[test]
fn load_from_uptime_rup_and_ruptime() {
    use fulcrum_health::parse_load;
    assert_eq!(
        parse_load(" 02:22:01 up  1:58,  0 user,  load average: 1.64, 2.32, 1.75\n"),
        Some(1.64)
    );
    assert_eq!(
        parse_load("rs1.example.com   up 12 days, 3:04,  load average: 0.00, 0.01, 0.05"),
        Some(0.0)
    );
    assert_eq!(
        parse_load("rs1  up 12+03:04,  2 users,  load 0.25, 0.30, 0.28"),
        Some(0.25)
    );
    assert_eq!(
        parse_load("ssh: connect to host rs1 port 22: Connection refused"),
        None
    );
}

#[test]
fn load_weight_applies_after_slow_start_and_is_dropped_on_death() {
    let mut c = Checker::new(params(10), Duration::ZERO);
    assert_eq!(c.load_base(), None, "not in service yet");
    assert!(c.poll_probe(Duration::ZERO));
    c.handle_result(Duration::ZERO, Ok(()));
    assert_eq!(c.load_base(), Some(10));
    c.set_load_weight(Some(25));
    assert_eq!(c.weight(), 25);
    while c.poll_action().is_some() {}
    c.handle_timeout(Duration::from_secs(100));
    assert_eq!(c.weight(), 0);
    assert_eq!(c.load_base(), None);
}

#[test]
fn the_share_applies_from_the_first_check_and_any_change_after_it_is_told() {
    // Regression: entering did not record the weight the table was told,
    // so a share of 0 right after entering was never passed on.
    let mut c = Checker::new(params(100), Duration::ZERO);
    assert!(c.poll_probe(Duration::ZERO));
    c.set_share(100);
    c.handle_result(Duration::ZERO, Ok(()));
    assert_eq!(c.poll_action(), Some(Action::Add { weight: 100 }));
    c.set_share(0);
    assert_eq!(c.poll_action(), Some(Action::SetWeight(0)), "drain is told");
    // A server whose agent says 50% from the start enters at half weight.
    let mut c = Checker::new(params(100), Duration::ZERO);
    assert!(c.poll_probe(Duration::ZERO));
    c.set_share(50);
    c.handle_result(Duration::ZERO, Ok(()));
    assert_eq!(c.poll_action(), Some(Action::Add { weight: 50 }));
    assert_eq!(c.poll_action(), None);
}

/// The director's own exhaustion (EMFILE while probing) tells nothing
/// about the server: it stays in, however long it lasts, and is probed
/// again every second; a real failure afterwards counts as usual.
#[test]
fn the_directors_own_exhaustion_never_takes_a_server_out() {
    use fulcrum_health::probe::is_local_exhaustion;
    let emfile = std::io::Error::from_raw_os_error(24);
    let why = format!("connect: {emfile}");
    assert!(is_local_exhaustion(&why), "{why}");
    assert!(!is_local_exhaustion(
        "connect: Connection refused (os error 111)"
    ));

    let mut c = Checker::new(params(1), s(0));
    let mut acts = Vec::new();
    let mut probes = Vec::new();
    let mut now = s(0);
    // Good until 20, the director out of descriptors from 20 to 80, and the
    // server really down from 100.
    while now <= s(130) {
        now = now.max(c.poll_timeout());
        c.handle_timeout(now);
        if c.poll_probe(now) {
            probes.push(now.as_secs());
            if (s(20)..s(80)).contains(&now) {
                c.handle_inconclusive(now, s(1));
            } else if now >= s(100) {
                c.handle_result(now, Err("connect: connection refused".into()));
            } else {
                c.handle_result(now, Ok(()));
            }
        }
        while let Some(a) = c.poll_action() {
            acts.push((now.as_secs(), a));
        }
    }
    // Last good check at 98: dead 10 s later, as without the episode.
    assert_eq!(
        acts,
        vec![(0, Action::Add { weight: 1 }), (108, Action::Remove)]
    );
    // Retried every second while it lasted.
    assert!(probes.contains(&21) && probes.contains(&22) && probes.contains(&79));
}

/// Weights go up to 2^31 - 1 (ipvsadm 1.31 and the kernel): an agent's
/// share and nanny's load formula stay within them.
#[test]
fn the_largest_weights_neither_overflow_nor_leave_the_kernels_range() {
    let max = i32::MAX as u32;
    let mut c = Checker::new(params(max), s(0));
    let _ = replay(&mut c, s(0), s(1), |_| true);
    c.set_share(50);
    assert_eq!(c.weight(), max / 2);
    assert_eq!(fulcrum_health::load_adjusted_weight(max, max, 0.0), max);
}

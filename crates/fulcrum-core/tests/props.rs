//! Property tests of the schedulers.

use std::net::IpAddr;
use std::time::Duration;

use fulcrum_core::SchedFlags;
use fulcrum_core::dest::{Dest, DestId, Forwarding};
use fulcrum_core::sched::{DestChange, Flow, SchedOptions, SchedulerKind, new_scheduler};
use proptest::prelude::*;

fn mk(specs: &[(u32, bool, u32, u32)]) -> Vec<Dest> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (w, over, act, inact))| {
            let mut d = Dest::new(
                DestId(i as u64),
                IpAddr::from([10, 0, 1, i as u8]),
                80,
                Forwarding::Masq,
                *w,
            );
            d.overload = *over;
            d.activeconns = *act;
            d.inactconns = *inact;
            d
        })
        .collect()
}

fn flow(a: u32, p: u16) -> Flow {
    Flow {
        saddr: IpAddr::V4(a.into()),
        sport: p,
        daddr: IpAddr::V4((a.rotate_left(7) | 1).into()),
        dport: 80,
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

proptest! {
    /// A full wrr cycle gives each dest exactly weight/gcd picks.
    #[test]
    fn wrr_cycle_shares(weights in prop::collection::vec(1u32..=24, 1..8), mult in 1u32..50) {
        let weights: Vec<u32> = weights.iter().map(|w| w * mult).collect();
        let g = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let d = mk(&weights.iter().map(|w| (*w, false, 0, 0)).collect::<Vec<_>>());
        let mut s = new_scheduler(SchedulerKind::Wrr, &d, &SchedOptions::default());
        for round in 0..2 {
            let mut got = vec![0u32; d.len()];
            for _ in 0..cycle {
                let i = s.schedule(&d, &flow(1, 1), SchedFlags::default(), Duration::ZERO).unwrap();
                got[i] += 1;
            }
            let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
            prop_assert_eq!(got, want, "round {}", round);
        }
    }

    /// No scheduler ever returns a weight-0 or overloaded dest, and the ones
    /// that search the whole list find a dest whenever one is available.
    #[test]
    fn never_quiesced_or_overloaded(
        specs in prop::collection::vec((0u32..6, prop::bool::weighted(0.3), 0u32..8, 0u32..300), 0..10),
        flows in prop::collection::vec((any::<u32>(), any::<u16>()), 1..20),
        fallback in any::<bool>(),
        port in any::<bool>(),
    ) {
        let d = mk(&specs);
        let flags = SchedFlags { sched1: fallback, sched2: port, sched3: false };
        let any_available = d.iter().any(Dest::available);
        for kind in SchedulerKind::ALL {
            let opts = SchedOptions { mh_tab_index: 8, ..Default::default() };
            let mut s = new_scheduler(kind, &d, &opts);
            for (a, p) in &flows {
                let got = s.schedule(&d, &flow(*a, *p), flags, Duration::ZERO);
                if let Some(i) = got {
                    // lblc/lblcr re-use a cached dest without testing OVERLOAD
                    // (kernel behaviour); dests do not change within this run,
                    // so a cached dest was available when it was cached.
                    prop_assert!(d[i].available(), "{kind} picked {:?}", d[i]);
                }
                let searches_all = !matches!(
                    kind,
                    SchedulerKind::Sh | SchedulerKind::Dh | SchedulerKind::Mh | SchedulerKind::Ovf
                );
                if searches_all {
                    prop_assert_eq!(got.is_some(), any_available, "{}", kind);
                }
            }
        }
    }

    /// Removing one of N dests from mh moves about 1/N of the keys: those of
    /// the removed dest, and few others.
    #[test]
    fn mh_minimal_disruption(n in 5usize..30, victim in any::<prop::sample::Index>(), seed in any::<u32>()) {
        let specs: Vec<_> = (0..n).map(|_| (1, false, 0, 0)).collect();
        let mut d = mk(&specs);
        let opts = SchedOptions::default(); // M = 4093
        let mut s = new_scheduler(SchedulerKind::Mh, &d, &opts);
        let flows: Vec<Flow> = (0..3000u32).map(|i| flow(seed.wrapping_add(i.wrapping_mul(2_654_435_761)), 0)).collect();
        let before: Vec<DestId> = flows
            .iter()
            .map(|f| d[s.schedule(&d, f, SchedFlags::default(), Duration::ZERO).unwrap()].id)
            .collect();
        let v = victim.index(n);
        let gone = d.remove(v);
        s.update(&d, DestChange::Removed { id: gone.id, index: v });
        let mut moved = 0usize;
        let mut moved_others = 0usize;
        for (f, b) in flows.iter().zip(&before) {
            let now = d[s.schedule(&d, f, SchedFlags::default(), Duration::ZERO).unwrap()].id;
            if now != *b {
                moved += 1;
                if *b != gone.id {
                    moved_others += 1;
                }
            }
        }
        let frac = moved as f64 / flows.len() as f64;
        let ideal = 1.0 / n as f64;
        prop_assert!(frac < ideal * 1.6 + 0.02, "moved {frac:.3}, ideal {ideal:.3}");
        // Maglev keeps the others nearly still, not perfectly: with M = 4093
        // and a few dozen dests a few percent of them move (the table is
        // refilled in a new order). Seen: 3.2% for n = 24.
        prop_assert!((moved_others as f64) / (flows.len() as f64) < 0.05, "others moved: {moved_others}");
    }
}

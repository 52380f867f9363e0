//! Scheduler and table micro-benchmarks (issue goals: wlc <= 100 ns per pick
//! over 64 dests, mh build <= 2 ms for M = 65521 and 1,000 dests).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fulcrum_core::dest::{Dest, DestId, Forwarding};
use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::sched::{DestChange, Flow, MaglevHash, Scheduler, WeightedLeastConn};
use fulcrum_core::{DestSpec, Protocol, SchedFlags, ServiceKey, ServiceSpec, Table};

fn dests(n: usize) -> Vec<Dest> {
    (0..n)
        .map(|i| {
            let addr = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let mut d = Dest::new(
                DestId(i as u64),
                addr,
                80,
                Forwarding::Masq,
                1 + (i % 7) as u32,
            );
            d.activeconns = (i * 37 % 101) as u32;
            d.inactconns = (i * 11 % 53) as u32;
            d
        })
        .collect()
}

fn flow(i: u32) -> Flow {
    Flow {
        saddr: IpAddr::from(0xc633_6400u32.wrapping_add(i).to_be_bytes()),
        sport: 1024 + (i % 60000) as u16,
        daddr: IpAddr::from([192, 0, 2, 1]),
        dport: 80,
    }
}

fn bench(c: &mut Criterion) {
    let d64 = dests(64);
    let f = flow(1);
    c.bench_function("wlc pick, 64 dests", |b| {
        let mut s = WeightedLeastConn;
        b.iter(|| s.schedule(black_box(&d64), &f, SchedFlags::default(), Duration::ZERO))
    });

    let d1000 = dests(1000);
    c.bench_function("mh table build, M=65521, 1000 dests", |b| {
        let mut s = MaglevHash::with_tab_index(16);
        b.iter(|| s.update(black_box(&d1000), DestChange::Reset))
    });

    c.bench_function("mh pick, M=65521", |b| {
        let mut s = MaglevHash::with_tab_index(16);
        s.update(&d1000, DestChange::Reset);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            s.schedule(&d1000, &flow(i), SchedFlags::default(), Duration::ZERO)
        })
    });

    // Persistence lookup: 10,000 clients hold templates; a returning client's
    // new connection finds its template (then the entry is expired again so
    // the table does not grow).
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::from([192, 0, 2, 1]),
        port: 80,
    };
    let mut t = Table::new();
    let mut spec = ServiceSpec::new(key, SchedulerKind::Wlc);
    spec.persistent = Some(360);
    t.add_service(spec).unwrap();
    for i in 0..64u8 {
        t.add_dest(
            &key,
            DestSpec::new(IpAddr::from([10, 0, 1, i]), 80, Forwarding::Masq),
        )
        .unwrap();
    }
    for i in 0..10_000 {
        t.schedule(&key, Protocol::Tcp, &flow(i), Duration::ZERO)
            .unwrap();
    }
    // Connections expire (2 s in NONE); templates stay for 360 s.
    t.expire(Duration::from_secs(3));
    c.bench_function("persistence lookup, 10k templates", |b| {
        let mut i = 0u32;
        let mut now = Duration::from_secs(4);
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                i = (i + 7919) % 10_000;
                black_box(t.schedule(&key, Protocol::Tcp, &flow(i), now).unwrap());
            }
            let took = start.elapsed();
            // Drop the connections made (2 s in NONE); templates stay.
            now += Duration::from_secs(3);
            t.expire(now);
            took
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

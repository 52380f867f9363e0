//! The XDP plane's connection-sync sender at full speed (run by
//! `bench/sync.sh`, which sets up the namespaces; needs root).
//!
//! `sync_send send IFACE FLOWS [RATE]`: loads Fulcrum's XDP program with a
//! UDP service, turns sending on, and makes FLOWS new flows through it —
//! three datagrams each (`BPF_PROG_TEST_RUN`, repeated: IPVS syncs a
//! connection at its third packet), from as many client addresses and
//! ports — as fast as it can, or RATE flows a second; Fulcrum's real sender
//! thread reads the reports and multicasts the messages out of IFACE.
//! Prints what was reported, lost, sent, and the sender thread's CPU time.
//!
//! `sync_send receive IFACE`: counts the entries of the sync messages
//! arriving on IFACE until none came for two seconds; prints the count.
//!
//! `sync_send kernel-cpu`: the CPU time (s) of the kernel's master sync
//! thread (`ipvs-m:*`), for the same comparison against kernel IPVS.
//!
//! Without root or the XDP program it says so and exits 0 (`cargo bench`
//! runs it with no arguments: a usage line).

use std::time::{Duration, Instant};

use fulcrum_core::sched::SchedulerKind;
use fulcrum_core::{
    DestSpec, Forwarding, Protocol, ServiceKey, ServiceSpec, SyncDaemon, SyncRole, Table,
};

fn usage() {
    eprintln!("usage: sync_send send IFACE FLOWS [RATE] | receive IFACE | kernel-cpu");
}

/// A thread's CPU seconds (user + system) from /proc/self/task.
fn thread_cpu(name: &str) -> Option<f64> {
    let tick = 100.0; // USER_HZ
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path();
        if std::fs::read_to_string(p.join("comm")).ok()?.trim() == name {
            return stat_cpu(&p.join("stat")).map(|t| t / tick);
        }
    }
    None
}

/// utime + stime (ticks) of a /proc stat file.
fn stat_cpu(path: &std::path::Path) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
}

/// A UDP frame from `src`:`sport` to the VIP, port 53, checksum left 0
/// (IPv4 UDP allows it).
fn frame(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 36, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[10, 9, 0, 100]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&16u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0u8; 8]);
    f
}

fn send(iface: &str, flows: u64, rate: Option<u64>) -> Result<(), String> {
    let mut plane = match fulcrum_xdp::XdpPlane::load(fulcrum_xdp::DEFAULT_FLOWS) {
        Ok(p) => p,
        Err(e) => {
            println!("skipped: {e}");
            return Ok(());
        }
    };
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: "10.9.0.100".parse().unwrap(),
        port: 53,
    };
    let mut t = Table::new();
    t.add_service(ServiceSpec::new(key, SchedulerKind::Rr))
        .map_err(|e| e.to_string())?;
    // Direct routing: the repeated runs see the same frame (NAT would have
    // rewritten it in place after the first).
    t.add_dest(
        &key,
        DestSpec::new("10.9.1.1".parse().unwrap(), 53, Forwarding::Route),
    )
    .map_err(|e| e.to_string())?;
    plane.publish(&t).map_err(|e| e.to_string())?;
    // Attached (to the sync link, where nothing matches the service): a
    // test run of an attached program costs no swap into the kernel's XDP
    // dispatcher, so the generator makes flows at the program's pace.
    plane.attach(iface).map_err(|e| e.to_string())?;
    let reports = plane.take_sync_reports().map_err(|e| e.to_string())?;
    let daemon = SyncDaemon {
        role: SyncRole::Master,
        mcast_ifn: iface.into(),
        syncid: 0,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    let sender = fulcrum::xdp_sync::SyncSender::start(daemon, reports, plane.sync_view(), None)
        .map_err(|e| e.0)?;
    plane.set_sync_sending(true).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(100));
    let cpu0 = thread_cpu("fulcrum-syncd").unwrap_or(0.0);
    let start = Instant::now();
    for i in 0..flows {
        // 10.8.0.0/16 and ports 1024..: each flow its own.
        let a = 1 + (i / 60_000) as u32;
        let src = [10, 8, (a >> 8) as u8, a as u8];
        let sport = 1024 + (i % 60_000) as u16;
        plane
            .test_run_repeat(&frame(src, sport), 3)
            .map_err(|e| e.to_string())?;
        if let Some(r) = rate
            && i % 1000 == 999
        {
            let due = start + Duration::from_secs_f64((i + 1) as f64 / r as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let made = start.elapsed();
    // Until the sender has sent all it could.
    let mut last = (u64::MAX, Instant::now());
    loop {
        let n = sender.counters.read().entries;
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = thread_cpu("fulcrum-syncd").unwrap_or(0.0) - cpu0;
    let (reported, lost) = plane.sync_report_counts().map_err(|e| e.to_string())?;
    let c = sender.counters.read();
    let wall = made.as_secs_f64();
    println!("flows {flows}");
    println!("made_s {wall:.3}");
    println!("flows_per_s {:.0}", flows as f64 / wall);
    println!("reported {reported}");
    println!("lost_ring {lost}");
    println!("entries_sent {}", c.entries);
    println!("messages_sent {}", c.messages);
    println!("send_errors {}", c.errors);
    println!("sender_cpu_s {cpu:.3}");
    println!(
        "sender_cpu_ns_per_entry {:.0}",
        cpu * 1e9 / (c.entries.max(1) as f64)
    );
    println!(
        "entries_per_sender_cpu_s {:.0}",
        c.entries as f64 / cpu.max(1e-9)
    );
    sender.stop();
    Ok(())
}

fn receive(iface: &str) -> Result<(), String> {
    let group = fulcrum_sync::receive::group_or_default(None);
    let s = fulcrum_sync::receive::open(group, fulcrum_sync::PORT, iface)?;
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_536];
    let (mut entries, mut messages) = (0u64, 0u64);
    let mut last = Instant::now();
    let begun = Instant::now();
    // Wait for the first message at most 60 s, then until two quiet seconds.
    loop {
        match s.recv(&mut buf) {
            Ok(n) => {
                if let Ok(d) = fulcrum_sync::decode(&buf[..n]) {
                    entries += d.conns.len() as u64;
                    messages += 1;
                }
                last = Instant::now();
            }
            Err(_) => {
                let quiet = last.elapsed() > Duration::from_secs(2);
                if (messages > 0 && quiet) || begun.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
        }
    }
    println!("received_messages {messages}");
    println!("received_entries {entries}");
    Ok(())
}

fn kernel_cpu() -> Result<(), String> {
    let mut total = 0.0;
    for p in std::fs::read_dir("/proc").map_err(|e| e.to_string())? {
        let p = p.map_err(|e| e.to_string())?.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else {
            continue;
        };
        if comm.starts_with("ipvs-m") {
            total += stat_cpu(&p.join("stat")).unwrap_or(0.0) / 100.0;
        }
    }
    println!("kernel_sync_cpu_s {total:.3}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["send", iface, flows] => send(iface, flows.parse().unwrap_or(100_000), None),
        ["send", iface, flows, rate] => {
            send(iface, flows.parse().unwrap_or(100_000), rate.parse().ok())
        }
        ["receive", iface] => receive(iface),
        ["kernel-cpu"] => kernel_cpu(),
        _ => {
            usage();
            Ok(())
        }
    };
    if let Err(e) = r {
        eprintln!("sync_send: {e}");
        std::process::exit(1);
    }
}

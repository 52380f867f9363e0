//! `fulcrum agent`: runs on a real server and tells load balancers how much
//! traffic it wants, in HAProxy's agent-check text protocol: one line per
//! connection, e.g. `up ready 75%`.
//!
//! The percentage is the host's idle CPU (from `/proc/stat`, sampled every
//! second) or, with `--source load`, what the one-minute load average
//! leaves of the CPUs. It never goes below 1%: 0% would drain the server,
//! which is the operator's call. An operator takes over by writing a state
//! file: its first line is sent instead (`drain`, `maint`, `down`, `up 50%`,
//! anything the protocol allows, with `# reason`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Where the weight comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Idle CPU, from `/proc/stat`.
    Cpu,
    /// The one-minute load average against the number of CPUs.
    Load,
}

/// `(idle, total)` jiffies from `/proc/stat`'s `cpu` line.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal …
    let idle = v[3] + v[4];
    Some((idle, v.iter().take(8).sum()))
}

/// What the load average leaves of the CPUs, in percent.
fn load_percent() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some((100.0 - load / cpus * 100.0).clamp(0.0, 100.0) as u32)
}

/// The line to send now.
pub fn reply(pct: u32, state_file: Option<&PathBuf>) -> String {
    if let Some(f) = state_file
        && let Ok(text) = std::fs::read_to_string(f)
        && let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty())
    {
        return format!("{line}\n");
    }
    format!("up ready {}%\n", pct.clamp(1, 100))
}

/// Sample the chosen source every second into `pct`.
async fn sample(source: Source, pct: Arc<AtomicU32>) {
    let mut last = cpu_times();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let v = match source {
            Source::Load => load_percent(),
            Source::Cpu => {
                let now = cpu_times();
                let v = match (last, now) {
                    (Some((i0, t0)), Some((i1, t1))) if t1 > t0 => {
                        Some(((i1 - i0) * 100 / (t1 - t0)) as u32)
                    }
                    _ => None,
                };
                last = now;
                v
            }
        };
        if let Some(v) = v {
            pct.store(v, Ordering::Relaxed);
        }
    }
}

/// `fulcrum agent --listen ADDR:PORT [--state-file PATH] [--source cpu|load]`.
pub async fn run(listen: SocketAddr, state_file: Option<PathBuf>, source: Source) -> i32 {
    let l = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fulcrum agent: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    let pct = Arc::new(AtomicU32::new(match source {
        Source::Load => load_percent().unwrap_or(100),
        Source::Cpu => 100,
    }));
    tokio::spawn(sample(source, pct.clone()));
    eprintln!(
        "fulcrum agent: answering agent checks on {} ({} weight{})",
        l.local_addr().map_or(listen, |a| a),
        if source == Source::Cpu {
            "idle-CPU"
        } else {
            "load-average"
        },
        state_file
            .as_ref()
            .map_or(String::new(), |f| format!("; state file {}", f.display()))
    );
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        let line = reply(pct.load(Ordering::Relaxed), state_file.as_ref());
        tokio::spawn(async move {
            let _ = s.write_all(line.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(reply(75, None), "up ready 75%\n");
        assert_eq!(reply(0, None), "up ready 1%\n", "never drains by itself");
        assert_eq!(reply(250, None), "up ready 100%\n");
        let f = std::env::temp_dir().join(format!("fulcrum-agent-{}", std::process::id()));
        std::fs::write(&f, "\n  drain # maintenance\n").unwrap();
        assert_eq!(reply(75, Some(&f)), "drain # maintenance\n");
        std::fs::write(&f, "").unwrap();
        assert_eq!(
            reply(75, Some(&f)),
            "up ready 75%\n",
            "an empty file hands back to the load"
        );
        let _ = std::fs::remove_file(&f);
        let (idle, total) = cpu_times().unwrap();
        assert!(idle <= total);
    }
}

//! `fulcrum realserver-setup`: a real server for direct routing or
//! tunnelling, the LVS tutorial's "ARP problem" solved.
//!
//! With direct routing and tunnelling the real servers receive packets for
//! the virtual address itself, so each must hold the VIP — without
//! answering ARP for it, or clients would reach the real server instead of
//! the director:
//!
//! - `--mode direct`: each VIP on `lo` (/32, /128), and
//!   `net.ipv4.conf.all.arp_ignore = 1` (answer ARP only for addresses of
//!   the receiving interface), `arp_announce = 2` (never announce the VIP as
//!   a source);
//! - `--mode tunnel`: the `ipip` module, `tunl0` up with the VIPs (IPv4),
//!   the same ARP settings, and `rp_filter = 2` (loose) on `tunl0`, whose
//!   decapsulated packets come from clients the host routes elsewhere;
//! - `--mode tunnel --decap xdp`: for kernels without `ipip` — Fulcrum's
//!   decapsulation program on the interface the tunnelled packets arrive on
//!   (IP-in-IP and IPv6-in-IPv6), attached over netlink so it stays after
//!   the command, the VIPs on `lo`, the ARP settings, and `rp_filter = 2`
//!   there.
//!
//! What is changed is recorded (with the values it replaced) in a state
//! file, so `--undo` puts back exactly that; running twice changes nothing;
//! `--check` says what is missing. The plan is computed from what the host
//! has ([`plan`], sans-IO), then carried out.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How the director forwards to this real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Direct routing (`-g`): the VIPs on `lo`.
    Direct,
    /// IP-in-IP tunnelling (`-i`): the VIPs on `tunl0`.
    Tunnel,
}

/// Who takes the tunnel's outer header off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Decap {
    /// The kernel's `ipip` module (`tunl0`).
    #[default]
    Kernel,
    /// Fulcrum's XDP program, where the kernel has no `ipip`.
    Xdp,
}

/// One change to the host, with what undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Load a kernel module (`modprobe`).
    LoadModule(String),
    /// Bring a device up.
    LinkUp(String),
    /// Add an address to a device.
    AddAddress {
        /// The device.
        dev: String,
        /// The address.
        addr: IpAddr,
    },
    /// Attach Fulcrum's decapsulation program to an interface, taking GUE
    /// on a UDP port too when one is given.
    AttachDecap(String, Option<u16>),
    /// Write a sysctl under `/proc/sys`.
    Sysctl {
        /// Its name, e.g. `net/ipv4/conf/all/arp_ignore`.
        name: String,
        /// The value to write.
        value: String,
        /// The value it had (for undo).
        was: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::LoadModule(m) => write!(f, "load the kernel module {m}"),
            Step::LinkUp(d) => write!(f, "bring {d} up"),
            Step::AddAddress { dev, addr } => write!(f, "add {addr} to {dev}"),
            Step::AttachDecap(d, None) => {
                write!(f, "attach the XDP decapsulation program to {d}")
            }
            Step::AttachDecap(d, Some(p)) => write!(
                f,
                "attach the XDP decapsulation program to {d} (GUE on UDP port {p})"
            ),
            Step::Sysctl { name, value, was } => {
                write!(f, "set {} = {value} (is {was})", name.replace('/', "."))
            }
        }
    }
}

/// What the host has, as far as the plan cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Whether `tunl0` exists (the `ipip` module is loaded).
    pub tunl0: bool,
    /// Whether `tunl0` is up.
    pub tunl0_up: bool,
    /// The addresses each device holds.
    pub addresses: Vec<(String, IpAddr)>,
    /// Sysctl values by name (`net/ipv4/conf/all/arp_ignore`).
    pub sysctls: Vec<(String, String)>,
    /// Interfaces with the decapsulation program pinned.
    pub decap_on: Vec<String>,
}

impl Host {
    fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn holds(&self, dev: &str, addr: IpAddr) -> bool {
        self.addresses.iter().any(|(d, a)| d == dev && *a == addr)
    }
}

/// A sysctl a mode needs: its name, the value to write, and whether a
/// current value is good enough.
struct Wanted {
    name: String,
    value: &'static str,
    good: fn(i64) -> bool,
}

/// How a real server is set up: the forwarding, who decapsulates, and the
/// interface tunnelled packets arrive on (for XDP decapsulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Direct routing or tunnelling.
    pub mode: Mode,
    /// Who takes the outer header off.
    pub decap: Decap,
    /// The interface for `--decap xdp`.
    pub interface: String,
    /// `--decap xdp`: GUE's UDP port, if the director sends GUE.
    pub gue_port: Option<u16>,
}

impl Setup {
    fn xdp(&self) -> bool {
        self.mode == Mode::Tunnel && self.decap == Decap::Xdp
    }
}

/// The sysctls a set-up needs.
fn wanted_sysctls(setup: &Setup) -> Vec<Wanted> {
    let mut v = vec![
        // 1 and stricter (2, 3) all keep the VIP out of ARP replies.
        Wanted {
            name: "net/ipv4/conf/all/arp_ignore".into(),
            value: "1",
            good: |v| (1..=3).contains(&v),
        },
        Wanted {
            name: "net/ipv4/conf/all/arp_announce".into(),
            value: "2",
            good: |v| v == 2,
        },
    ];
    if setup.mode == Mode::Tunnel {
        // The kernel applies the larger of `all` and the device: 2 (loose)
        // on the device the decapsulated packets come in on lets them in
        // whatever `all` says.
        let dev = if setup.xdp() {
            setup.interface.as_str()
        } else {
            "tunl0"
        };
        v.push(Wanted {
            name: format!("net/ipv4/conf/{dev}/rp_filter"),
            value: "2",
            good: |v| v != 1,
        });
    }
    v
}

/// What must change on `host` for `mode` with `vips`.
///
/// # Errors
/// A VIP the mode cannot carry (IPv6 over the IPv4 tunnel).
pub fn plan(setup: &Setup, vips: &[IpAddr], host: &Host) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mode = setup.mode;
    let dev = match mode {
        Mode::Direct => "lo",
        Mode::Tunnel if setup.xdp() => "lo",
        Mode::Tunnel => "tunl0",
    };
    if setup.xdp() {
        if !host.decap_on.contains(&setup.interface) {
            steps.push(Step::AttachDecap(setup.interface.clone(), setup.gue_port));
        }
    } else if mode == Mode::Tunnel {
        if let Some(v6) = vips.iter().find(|a| a.is_ipv6()) {
            return Err(format!(
                "{v6}: tunnel mode carries IPv4 virtual addresses (ipip); use --mode direct, or --decap xdp (IPv6-in-IPv6 too), for IPv6"
            ));
        }
        if !host.tunl0 {
            steps.push(Step::LoadModule("ipip".into()));
        }
        if !host.tunl0_up {
            steps.push(Step::LinkUp("tunl0".into()));
        }
    }
    for &addr in vips {
        if !host.holds(dev, addr) {
            steps.push(Step::AddAddress {
                dev: dev.into(),
                addr,
            });
        }
    }
    for Wanted { name, value, good } in wanted_sysctls(setup) {
        // Missing: tunl0's, before the module is loaded.
        let was = host.sysctl(&name).map(str::trim);
        if !was.is_some_and(|w| w.parse::<i64>().is_ok_and(good)) {
            steps.push(Step::Sysctl {
                name,
                value: value.into(),
                was: was.unwrap_or("unknown").into(),
            });
        }
    }
    Ok(steps)
}

/// The state file's lines for steps done, one each: what `--undo` reverses.
pub fn record(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        let line = match s {
            Step::LoadModule(m) => format!("module {m}"),
            Step::LinkUp(d) => format!("link {d}"),
            Step::AddAddress { dev, addr } => format!("address {dev} {addr}"),
            Step::AttachDecap(d, _) => format!("decap {d}"),
            Step::Sysctl { name, value, was } => format!("sysctl {name} {value} {was}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The steps a state file records (lines it cannot read are skipped).
pub fn recorded(text: &str) -> Vec<Step> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(match f.as_slice() {
                ["module", m] => Step::LoadModule((*m).into()),
                ["link", d] => Step::LinkUp((*d).into()),
                ["decap", d] if !d.contains(['/', '.']) => Step::AttachDecap((*d).into(), None),
                ["address", d, a] => Step::AddAddress {
                    dev: (*d).into(),
                    addr: a.parse().ok()?,
                },
                ["sysctl", n, v, w] if n.starts_with("net/ipv4/conf/") && !n.contains("..") => {
                    Step::Sysctl {
                        name: (*n).into(),
                        value: (*v).into(),
                        was: (*w).into(),
                    }
                }
                _ => return None,
            })
        })
        .collect()
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name)
}

/// Look at the host.
async fn observe(mgr: &fulcrum_net::addr::AddressManager, vips: &[IpAddr], setup: &Setup) -> Host {
    let tunl0 = Path::new("/sys/class/net/tunl0").exists();
    let tunl0_up = std::fs::read_to_string("/sys/class/net/tunl0/flags")
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & 1 != 0);
    let mut addresses = Vec::new();
    for &a in vips {
        if let Some(dev) = mgr.device_of(&a).await {
            addresses.push((dev, a));
        }
    }
    let sysctls = wanted_sysctls(setup)
        .into_iter()
        .filter_map(|Wanted { name: n, .. }| {
            std::fs::read_to_string(sysctl_path(&n))
                .ok()
                .map(|v| (n.clone(), v.trim().to_string()))
        })
        .collect();
    let mut decap_on = Vec::new();
    if !setup.interface.is_empty()
        && let Ok(Some(id)) = mgr.xdp_program(&setup.interface).await
        && fulcrum_xdp::decap::is_decap(id)
        && fulcrum_xdp::decap::gue_port(id) == setup.gue_port
    {
        decap_on.push(setup.interface.clone());
    }
    Host {
        tunl0,
        tunl0_up,
        addresses,
        sysctls,
        decap_on,
    }
}

/// Carry out one step; what undoes it (a sysctl's value as it was just
/// before).
async fn apply(mgr: &mut fulcrum_net::addr::AddressManager, step: &Step) -> Result<Step, String> {
    match step {
        Step::LoadModule(m) => {
            let ok = std::process::Command::new("modprobe")
                .arg(m)
                .status()
                .is_ok_and(|s| s.success());
            if !ok || !Path::new("/sys/class/net/tunl0").exists() {
                return Err(format!(
                    "cannot load the kernel module {m}: this kernel has no IPIP tunnels; use --mode direct, or a kernel with CONFIG_NET_IPIP"
                ));
            }
            Ok(step.clone())
        }
        Step::LinkUp(d) => mgr
            .set_link_up(d, true)
            .await
            .map(|()| step.clone())
            .map_err(|e| format!("{d}: {e}")),
        Step::AttachDecap(d, gue_port) => {
            if let Ok(Some(id)) = mgr.xdp_program(d).await
                && !fulcrum_xdp::decap::is_decap(id)
            {
                return Err(format!(
                    "{d} already runs another XDP program (id {id}); detach it first (`ip link set {d} xdp off`)"
                ));
            }
            let prog = fulcrum_xdp::decap::DecapProgram::load(*gue_port)
                .map_err(|e| format!("{d}: {e}"))?;
            let fd = prog.fd().map_err(|e| format!("{d}: {e}"))?;
            if mgr.set_xdp(d, Some(fd), true).await.is_err() {
                mgr.set_xdp(d, Some(fd), false)
                    .await
                    .map_err(|e| format!("{d}: cannot attach the decapsulation program: {e}"))?;
                eprintln!(
                    "fulcrum realserver-setup: {d}: the driver refused native XDP; the decapsulation program runs in the generic path (slower)"
                );
            }
            Ok(step.clone())
        }
        Step::AddAddress { dev, addr } => {
            let f = fulcrum_net::addr::FloatingAddr {
                addr: *addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
                device: Some(dev.clone()),
                label: None,
            };
            mgr.add(&f)
                .await
                .map(|_| step.clone())
                .map_err(|e| format!("{addr} on {dev}: {e}"))
        }
        Step::Sysctl { name, value, .. } => {
            let path = sysctl_path(name);
            let was =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&path, value).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Step::Sysctl {
                name: name.clone(),
                value: value.clone(),
                was: was.trim().to_string(),
            })
        }
    }
}

/// Reverse one recorded step.
async fn undo(mgr: &mut fulcrum_net::addr::AddressManager, step: &Step) -> Result<(), String> {
    match step {
        // A module may be in use by more than us: it stays.
        Step::LoadModule(_) => Ok(()),
        Step::LinkUp(d) => mgr
            .set_link_up(d, false)
            .await
            .map_err(|e| format!("{d}: {e}")),
        Step::AttachDecap(d, _) => {
            // Only Fulcrum's program goes; another one put there since is
            // left alone.
            match mgr.xdp_program(d).await {
                Ok(Some(id)) if fulcrum_xdp::decap::is_decap(id) => {
                    let native = mgr.set_xdp(d, None, true).await;
                    let generic = mgr.set_xdp(d, None, false).await;
                    match mgr.xdp_program(d).await {
                        Ok(None) => Ok(()),
                        _ => Err(format!(
                            "{d}: cannot detach the decapsulation program ({native:?}, {generic:?})"
                        )),
                    }
                }
                _ => Ok(()),
            }
        }
        Step::AddAddress { dev, addr } => {
            if mgr.adopt(addr).await.map_err(|e| e.to_string())? {
                mgr.remove(addr)
                    .await
                    .map_err(|e| format!("{addr} on {dev}: {e}"))?;
            }
            Ok(())
        }
        Step::Sysctl { name, was, .. } => std::fs::write(sysctl_path(name), was)
            .map_err(|e| format!("{}: {e}", sysctl_path(name).display())),
    }
}

/// What `realserver-setup` was asked to do.
#[derive(Debug)]
pub struct Request {
    /// Direct routing or tunnelling.
    pub mode: Mode,
    /// Who decapsulates tunnelled packets.
    pub decap: Decap,
    /// The interface for `--decap xdp` (default: the default route's).
    pub interface: Option<String>,
    /// `--gue-port`: GUE's UDP port for `--decap xdp`.
    pub gue_port: Option<u16>,
    /// The virtual addresses.
    pub vips: Vec<IpAddr>,
    /// Only say what is missing.
    pub check: bool,
    /// Put back what an earlier run changed.
    pub undo: bool,
    /// Where the changes are recorded.
    pub state: PathBuf,
}

/// The device of the IPv4 default route (`/proc/net/route`).
fn default_route_device() -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000")).then(|| f[0].to_string())
    })
}

/// Run `realserver-setup`; the exit status.
pub async fn run(req: Request) -> i32 {
    let mut mgr = match fulcrum_net::addr::AddressManager::new() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fulcrum realserver-setup: {e}");
            return 2;
        }
    };
    if req.undo {
        let Some(text) = fulcrum_net::files::read_own(&req.state, 64 * 1024) else {
            println!("nothing to undo ({} is missing)", req.state.display());
            return 0;
        };
        let mut failed = false;
        for step in recorded(&text).iter().rev() {
            match undo(&mut mgr, step).await {
                Ok(()) => println!("undone: {step}"),
                Err(e) => {
                    eprintln!("fulcrum realserver-setup: cannot undo `{step}`: {e}");
                    failed = true;
                }
            }
        }
        if failed {
            return 1;
        }
        let _ = std::fs::remove_file(&req.state);
        return 0;
    }
    let interface = match (&req.interface, req.decap) {
        (Some(i), _) => i.clone(),
        (None, Decap::Xdp) if req.mode == Mode::Tunnel => match default_route_device() {
            Some(d) => d,
            None => {
                eprintln!(
                    "fulcrum realserver-setup: no default route to find the interface the tunnelled packets arrive on; name it with --interface"
                );
                return 2;
            }
        },
        (None, _) => String::new(),
    };
    if req.gue_port.is_some() && !(req.mode == Mode::Tunnel && req.decap == Decap::Xdp) {
        eprintln!(
            "fulcrum realserver-setup: --gue-port is for --mode tunnel --decap xdp (with the kernel's own decapsulation, take GUE with `ip fou add port N gue`)"
        );
        return 2;
    }
    let setup = Setup {
        mode: req.mode,
        decap: req.decap,
        interface,
        gue_port: req.gue_port,
    };
    let host = observe(&mgr, &req.vips, &setup).await;
    let steps = match plan(&setup, &req.vips, &host) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fulcrum realserver-setup: {e}");
            return 2;
        }
    };
    if req.check {
        if steps.is_empty() {
            println!("this host is ready as a real server");
            return 0;
        }
        for s in &steps {
            println!("missing: {s}");
        }
        return 1;
    }
    if steps.is_empty() {
        println!("nothing to do: this host is ready as a real server");
        return 0;
    }
    // What earlier runs recorded stays: the undo puts back the first state.
    let mut done = fulcrum_net::files::read_own(&req.state, 64 * 1024)
        .map(|t| recorded(&t))
        .unwrap_or_default();
    let mut status = 0;
    for step in &steps {
        match apply(&mut mgr, step).await {
            Ok(undo) => {
                println!("done: {step}");
                done.push(undo);
            }
            Err(e) => {
                eprintln!("fulcrum realserver-setup: {e}");
                status = 1;
                break;
            }
        }
    }
    if let Some(dir) = req.state.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    if let Err(e) = fulcrum_net::files::write_atomic(&req.state, record(&done).as_bytes(), 0o600) {
        eprintln!(
            "fulcrum realserver-setup: cannot record the changes in {}: {e}; --undo will not know them",
            req.state.display()
        );
        status = 1;
    }
    status
}

use std::os::unix::fs::DirBuilderExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn host(sysctls: &[(&str, &str)]) -> Host {
        Host {
            sysctls: sysctls
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            ..Host::default()
        }
    }

    fn setup(mode: Mode, decap: Decap) -> Setup {
        Setup {
            mode,
            decap,
            interface: "eth0".into(),
            gue_port: None,
        }
    }

    #[test]
    fn direct_mode_puts_the_vips_on_lo_and_silences_arp() {
        let vip: IpAddr = "10.0.0.100".parse().unwrap();
        let h = host(&[
            ("net/ipv4/conf/all/arp_ignore", "0"),
            ("net/ipv4/conf/all/arp_announce", "0"),
        ]);
        let steps = plan(&setup(Mode::Direct, Decap::Kernel), &[vip], &h).unwrap();
        assert_eq!(
            steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "add 10.0.0.100 to lo",
                "set net.ipv4.conf.all.arp_ignore = 1 (is 0)",
                "set net.ipv4.conf.all.arp_announce = 2 (is 0)",
            ]
        );
        // Once done, nothing more; a stricter arp_ignore is left alone.
        let mut h = host(&[
            ("net/ipv4/conf/all/arp_ignore", "2"),
            ("net/ipv4/conf/all/arp_announce", "2"),
        ]);
        h.addresses.push(("lo".into(), vip));
        assert_eq!(
            plan(&setup(Mode::Direct, Decap::Kernel), &[vip], &h).unwrap(),
            vec![]
        );
    }

    #[test]
    fn tunnel_mode_needs_ipip_tunl0_and_loose_rp_filter() {
        let vip: IpAddr = "10.0.0.100".parse().unwrap();
        let h = host(&[
            ("net/ipv4/conf/all/arp_ignore", "1"),
            ("net/ipv4/conf/all/arp_announce", "2"),
        ]);
        let steps = plan(&setup(Mode::Tunnel, Decap::Kernel), &[vip], &h).unwrap();
        assert_eq!(
            steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "load the kernel module ipip",
                "bring tunl0 up",
                "add 10.0.0.100 to tunl0",
                "set net.ipv4.conf.tunl0.rp_filter = 2 (is unknown)",
            ]
        );
        let e = plan(
            &setup(Mode::Tunnel, Decap::Kernel),
            &["2001:db8::1".parse().unwrap()],
            &h,
        )
        .unwrap_err();
        assert!(e.contains("use --mode direct, or --decap xdp"), "{e}");
    }

    #[test]
    fn xdp_decapsulation_needs_no_ipip_and_carries_ipv6() {
        let vips: Vec<IpAddr> = vec![
            "10.0.0.100".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let mut h = host(&[
            ("net/ipv4/conf/all/arp_ignore", "1"),
            ("net/ipv4/conf/all/arp_announce", "2"),
            ("net/ipv4/conf/eth0/rp_filter", "1"),
        ]);
        let s = setup(Mode::Tunnel, Decap::Xdp);
        let steps = plan(&s, &vips, &h).unwrap();
        assert_eq!(
            steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "attach the XDP decapsulation program to eth0",
                "add 10.0.0.100 to lo",
                "add 2001:db8::1 to lo",
                "set net.ipv4.conf.eth0.rp_filter = 2 (is 1)",
            ]
        );
        h.decap_on.push("eth0".into());
        h.addresses
            .extend(vips.iter().map(|v| ("lo".to_string(), *v)));
        h.sysctls[2].1 = "2".into();
        assert_eq!(plan(&s, &vips, &h).unwrap(), vec![]);
        // GUE too: the program goes on again with the port (the host's
        // `decap_on` lists only a program taking the same port).
        h.decap_on.clear();
        let gue = Setup {
            gue_port: Some(6080),
            ..s.clone()
        };
        assert_eq!(
            plan(&gue, &vips, &h).unwrap()[0].to_string(),
            "attach the XDP decapsulation program to eth0 (GUE on UDP port 6080)"
        );
        assert_eq!(
            recorded(&record(&[Step::AttachDecap("eth0".into(), Some(6080))])),
            vec![Step::AttachDecap("eth0".into(), None)]
        );
        assert_eq!(recorded("decap ../x\ndecap a.b\n"), vec![]);
    }

    #[test]
    fn the_record_reads_back_and_ignores_junk() {
        let steps = vec![
            Step::LinkUp("tunl0".into()),
            Step::AddAddress {
                dev: "lo".into(),
                addr: "10.0.0.1".parse().unwrap(),
            },
            Step::Sysctl {
                name: "net/ipv4/conf/all/arp_ignore".into(),
                value: "1".into(),
                was: "0".into(),
            },
        ];
        let text = format!(
            "{}garbage\nsysctl ../../etc/passwd 1 0\naddress lo not-an-address\n",
            record(&steps)
        );
        assert_eq!(recorded(&text), steps);
    }
}

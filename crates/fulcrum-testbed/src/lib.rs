//! Network-namespace topologies for integration tests.
//!
//! [`FiveNode`] is the Red Hat guide's example network: a client on the
//! public side, the director with `eth0` public and `eth1` private, and real
//! servers rs1..rs3 on the private network whose default route is the NAT
//! router address. Everything is built with iproute2 in namespaces named
//! after the test and the process, and removed by [`Drop`], also on panic.
//!
//! Tests that need root are compiled as ignored unless the build sees
//! `FULCRUM_NETNS_TESTS=1` (each test crate's build script sets the
//! `netns_tests` cfg), so the runner reports them as ignored, not passed.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A peer program a test needs is missing. Where the full suite runs
/// (`FULCRUM_NETNS_TESTS=1`, as `.ci/run` sets after installing every peer)
/// that is a failure; elsewhere one line says what was skipped and why.
///
/// # Panics
/// When the full suite runs.
pub fn missing_peer(test: &str, what: &str) {
    assert!(
        std::env::var("FULCRUM_NETNS_TESTS").as_deref() != Ok("1"),
        "{test}: {what} is not installed; .ci/run installs it"
    );
    // Straight to the stderr handle: the test harness captures print!/eprint!.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what} is not installed (.ci/run installs it)"
    );
}

/// Run a command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command and return its output whatever its status.
pub fn try_sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs")
}

/// Wait until `f` holds, at most `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A background process, killed when dropped.
#[derive(Debug)]
pub struct Bg(pub Child);

impl Bg {
    /// Send a signal (e.g. `TERM`) and wait for the exit status.
    pub fn signal_and_wait(&mut self, sig: &str) -> Option<i32> {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st.code();
            }
            if t.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory for a test's files, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: std::path::PathBuf,
}

impl Scratch {
    /// A fresh directory named after the test and the process.
    pub fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("fulcrum-netns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the scratch directory can be made");
        Scratch { path }
    }

    /// A file's path inside it.
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The five-node network of the Red Hat LVS guide (§9), with private
/// addresses:
///
/// ```text
///  cli 10.200.1.10 ── eth0 10.200.1.2 [dir] eth1 10.200.2.1 ── br0 ── rs1 10.200.2.3
///     (public)         VIP 10.200.1.100       NAT router 10.200.2.254  rs2 10.200.2.4
///                                                                       rs3 10.200.2.5
/// ```
///
/// The real servers' default route is the NAT router address.
#[derive(Debug)]
pub struct FiveNode {
    prefix: String,
    /// Processes to stop before the namespaces go.
    pub procs: Vec<Bg>,
}

/// The virtual server address on the public side.
pub const VIP: &str = "10.200.1.100";
/// The floating NAT router address on the private side.
pub const NAT_ROUTER: &str = "10.200.2.254";
/// The real servers' addresses.
pub const RS: [&str; 3] = ["10.200.2.3", "10.200.2.4", "10.200.2.5"];
/// The client's address.
pub const CLIENT: &str = "10.200.1.10";
/// The directors' public addresses (`eth0`), in order `dir`, `dir2`, `dir3`.
pub const DIRECTOR_PUBLIC: [&str; 3] = ["10.200.1.2", "10.200.1.3", "10.200.1.4"];
/// The directors' private addresses (`eth1`).
pub const DIRECTOR_PRIVATE: [&str; 3] = ["10.200.2.1", "10.200.2.2", "10.200.2.6"];

/// The namespace name of director `i` (0-based): `dir`, `dir2`, `dir3`.
pub fn director_name(i: usize) -> String {
    if i == 0 {
        "dir".into()
    } else {
        format!("dir{}", i + 1)
    }
}

/// The bridge port of director `i`: `p-dir`, `p-dir2`, `p-dir3`.
pub fn port_name(i: usize) -> String {
    format!("p-{}", director_name(i))
}

impl FiveNode {
    /// Build the network. `tag` names the test (namespace names stay short).
    pub fn new(tag: &str) -> FiveNode {
        FiveNode::with_directors(tag, 1)
    }

    /// The network with `n` directors (1 to 3) named `dir`, `dir2`, `dir3`,
    /// on addresses [`DIRECTOR_PUBLIC`] and [`DIRECTOR_PRIVATE`]. With more
    /// than one, the public side is a bridge in namespace `pub` whose ports
    /// are `p-cli`, `p-dir`, `p-dir2`, `p-dir3`; on the private bridge the
    /// directors' ports are `p-dir`, `p-dir2`, `p-dir3`.
    pub fn with_directors(tag: &str, n: usize) -> FiveNode {
        assert!((1..=3).contains(&n), "one to three directors");
        let prefix = format!("f{}{}", tag, std::process::id() % 100_000);
        let t = FiveNode {
            prefix,
            procs: Vec::new(),
        };
        let (cli, lan) = (t.ns("cli"), t.ns("lan"));
        let dirs: Vec<String> = (0..n).map(|i| t.ns(&director_name(i))).collect();
        for ns in [&cli, &lan].into_iter().chain(&dirs) {
            sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        if n == 1 {
            // Public side: a veth pair straight from the client to the director.
            sh(&format!(
                "ip -n {cli} link add eth0 type veth peer name eth0 netns {}",
                dirs[0]
            ));
        } else {
            // Public side: a bridge, so the directors hear each other.
            let pubn = t.ns("pub");
            sh(&format!(
                "ip netns add {pubn} && ip -n {pubn} link set lo up && ip -n {pubn} link add br0 type bridge && ip -n {pubn} link set br0 up"
            ));
            sh(&format!(
                "ip link add p-cli netns {pubn} type veth peer name eth0 netns {cli}"
            ));
            sh(&format!("ip -n {pubn} link set p-cli master br0 up"));
            for (i, d) in dirs.iter().enumerate() {
                let port = port_name(i);
                sh(&format!(
                    "ip link add {port} netns {pubn} type veth peer name eth0 netns {d}"
                ));
                sh(&format!("ip -n {pubn} link set {port} master br0 up"));
            }
        }
        sh(&format!(
            "ip -n {cli} addr add {CLIENT}/24 dev eth0 && ip -n {cli} link set eth0 up"
        ));
        for (i, d) in dirs.iter().enumerate() {
            sh(&format!(
                "ip -n {d} addr add {}/24 dev eth0 && ip -n {d} link set eth0 up",
                DIRECTOR_PUBLIC[i]
            ));
        }
        // Private side: a bridge in its own namespace.
        sh(&format!(
            "ip -n {lan} link add br0 type bridge && ip -n {lan} link set br0 up"
        ));
        for (i, d) in dirs.iter().enumerate() {
            let port = port_name(i);
            sh(&format!(
                "ip link add {port} netns {lan} type veth peer name eth1 netns {d}"
            ));
            sh(&format!("ip -n {lan} link set {port} master br0 up"));
            sh(&format!(
                "ip -n {d} addr add {}/24 dev eth1 && ip -n {d} link set eth1 up",
                DIRECTOR_PRIVATE[i]
            ));
            sh(&format!(
                "ip netns exec {d} sysctl -qw net.ipv4.ip_forward=1"
            ));
        }
        for (i, addr) in RS.iter().enumerate() {
            let rs = t.ns(&format!("rs{}", i + 1));
            sh(&format!("ip netns add {rs} && ip -n {rs} link set lo up"));
            sh(&format!(
                "ip link add p-rs{} netns {lan} type veth peer name eth0 netns {rs}",
                i + 1
            ));
            sh(&format!("ip -n {lan} link set p-rs{} master br0 up", i + 1));
            sh(&format!(
                "ip -n {rs} addr add {addr}/24 dev eth0 && ip -n {rs} link set eth0 up"
            ));
            sh(&format!("ip -n {rs} route add default via {NAT_ROUTER}"));
        }
        t
    }

    /// A namespace's full name: `cli`, `dir`, `lan`, `rs1`..`rs3`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Run a command inside a namespace, panicking on failure.
    pub fn exec(&self, ns: &str, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.ns(ns)))
    }

    /// Ready for `n` (2 or 3) directors whose XDP programs redirect into
    /// their veths: GRO on the bridges' ports that take the redirected
    /// frames, and full checksums from the client and the real servers (a
    /// frame forwarded in XDP cannot finish a half-done one).
    pub fn xdp_ready(&self, n: usize) {
        self.exec("cli", "ethtool -K eth0 tx off");
        for i in 0..n {
            self.exec("pub", &format!("ethtool -K {} gro on", port_name(i)));
            self.exec("lan", &format!("ethtool -K {} gro on", port_name(i)));
        }
        for rs in ["rs1", "rs2", "rs3"] {
            self.exec(rs, "ethtool -K eth0 tx off");
        }
    }

    /// `BIN run --config CF --control C` on director `i` for each control
    /// socket `C` of `controls`, each up before the next starts.
    pub fn start_directors(&self, bin: &str, cf: &str, controls: &[String]) -> Vec<Bg> {
        controls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let d = self.spawn(
                    &director_name(i),
                    bin,
                    &["run", "--config", cf, "--control", c],
                    &[],
                );
                wait_for("a director", 10, || std::path::Path::new(c).exists());
                d
            })
            .collect()
    }

    /// Whether director `i` holds the VIP.
    pub fn holds_vip(&self, i: usize) -> bool {
        self.addrs(&director_name(i), "eth0")
            .contains(&format!("{VIP}/32"))
    }

    /// Run `f` on a thread inside namespace `name` (`cli`, `dir`, ...):
    /// the sockets it opens live there, and can be used from any thread
    /// afterwards.
    pub fn run_in<T: Send>(&self, name: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns(name));
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("the namespace exists");
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("setns into the namespace (needs root)");
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Start a background process inside a namespace.
    pub fn spawn(&self, ns: &str, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Bg {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(ns), program])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in envs {
            c.env(k, v);
        }
        if std::env::var_os("FULCRUM_TEST_VERBOSE").is_none() {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Bg(c.spawn().expect("ip netns exec runs"))
    }

    /// Start `fulcrum realserver` (program `bin`) on rs1..rs3 port 80 and
    /// wait until the first director reaches each.
    pub fn start_realservers(&mut self, bin: &str) {
        for (i, addr) in RS.iter().enumerate() {
            let name = format!("rs{}", i + 1);
            let listen = format!("{addr}:80");
            let p = self.spawn(
                &name,
                bin,
                &["realserver", "--listen", &listen, "--name", &name],
                &[],
            );
            self.procs.push(p);
        }
        let dir = self.ns("dir");
        for addr in RS {
            wait_for(&format!("real server {addr}"), 10, || {
                try_sh(&format!(
                    "ip netns exec {dir} curl -s --max-time 1 http://{addr}/"
                ))
                .status
                .success()
            });
        }
    }

    /// Addresses on a namespace's device, as `ip -o addr` prints them.
    pub fn addrs(&self, ns: &str, dev: &str) -> String {
        sh(&format!("ip -n {} -o addr show dev {dev}", self.ns(ns)))
    }
}

impl Drop for FiveNode {
    fn drop(&mut self) {
        self.procs.clear();
        for n in [
            "cli", "dir", "dir2", "dir3", "pub", "lan", "rs1", "rs2", "rs3",
        ] {
            let _ = try_sh(&format!("ip netns del {}", self.ns(n)));
        }
    }
}

/// Run a shell script in the VM whose kernel has IPVS
/// (`../shared/tools/ipvs-vm`, beside the repository), with the files in
/// `add` copied to the same paths inside; its standard output. `tag` names
/// the script file (tests of one binary run in parallel).
///
/// # Panics
/// When the tool is missing, or the VM or the script fails.
pub fn ipvs_vm(tag: &str, script: &str, add: &[&str], timeout_secs: u32) -> String {
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/ipvs-vm");
    assert!(
        tool.exists(),
        "{} is missing: the IPVS tests need the ipvs-vm tool beside the repository",
        tool.display()
    );
    let file = std::env::temp_dir().join(format!("fulcrum-vm-{tag}-{}.sh", std::process::id()));
    std::fs::write(&file, script).expect("the script is written");
    let mut c = Command::new(&tool);
    for a in add {
        c.args(["--add", a]);
    }
    let out = c
        .args(["--timeout", &timeout_secs.to_string()])
        .arg(&file)
        .output()
        .expect("ipvs-vm runs");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the VM script failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Run a scenario in the IPVS VM: the script `DIR/NAME.sh` after the
/// helpers of `DIR/lib.sh`, with `fulcrum` (the binary under test) as
/// `$FULCRUM` and each of `programs` (`VAR`, path) copied in and given as
/// `$VAR`; its standard output (see [`section`]).
///
/// # Panics
/// As [`ipvs_vm`]; when a script cannot be read.
pub fn vm_scenario(
    dir: &std::path::Path,
    name: &str,
    fulcrum: &str,
    programs: &[(&str, &str)],
    timeout_secs: u32,
) -> String {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
    };
    let vars: String = programs.iter().map(|(v, p)| format!("{v}={p}\n")).collect();
    let script = format!(
        "FULCRUM={fulcrum}\n{vars}{}\n{}",
        read("lib.sh"),
        read(&format!("{name}.sh"))
    );
    let mut files = vec![fulcrum];
    files.extend(programs.iter().map(|(_, p)| *p));
    ipvs_vm(&format!("scenario-{name}"), &script, &files, timeout_secs)
}

/// The text between the line `=== NAME` and the next `=== ` marker.
///
/// # Panics
/// When there is no such section.
pub fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let marker = format!("=== {name}\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no section {name} in:\n{text}"))
        + marker.len();
    let rest = &text[start..];
    &rest[..rest.find("=== ").unwrap_or(rest.len())]
}

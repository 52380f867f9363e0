//! `fulcrum realserver-setup` on real kernels: direct routing in a network
//! namespace of this host, tunnelling in the IPVS VM (this host's kernel
//! has no ipip). Root: runs with FULCRUM_NETNS_TESTS=1.

use std::process::Command;

use fulcrum_testbed::{ipvs_vm, sh, try_sh};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// A network namespace removed when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("fr{tag}{}", std::process::id());
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns(name)
    }

    /// `fulcrum realserver-setup ARGS` inside: exit code and output.
    fn setup(&self, args: &str) -> (i32, String) {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip netns exec {} {BIN} realserver-setup {args}",
                self.0
            ))
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    fn sysctl(&self, name: &str) -> String {
        sh(&format!("ip netns exec {} cat /proc/sys/{name}", self.0))
            .trim()
            .to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = try_sh(&format!("ip netns del {}", self.0));
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn direct_routing_setup_is_idempotent_checkable_and_undone_exactly() {
    let ns = Netns::new("d");
    let state = std::env::temp_dir().join(format!("fulcrum-rs-setup-{}", std::process::id()));
    let st = state.display();
    let vips = "--vip 10.9.9.9 --vip 2001:db8::9";
    let (code, out) = ns.setup(&format!("--mode direct {vips} --check --state {st}"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing: add 10.9.9.9 to lo"), "{out}");
    assert!(
        out.contains("missing: set net.ipv4.conf.all.arp_ignore = 1 (is 0)"),
        "{out}"
    );

    let (code, out) = ns.setup(&format!("--mode direct {vips} --state {st}"));
    assert_eq!(code, 0, "{out}");
    let lo = sh(&format!("ip -n {} addr show dev lo", ns.0));
    assert!(
        lo.contains("inet 10.9.9.9/32") && lo.contains("inet6 2001:db8::9/128"),
        "{lo}"
    );
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "2");

    // Twice changes nothing; the check is satisfied.
    let (code, out) = ns.setup(&format!("--mode direct {vips} --state {st}"));
    assert_eq!(
        (code, out.trim()),
        (0, "nothing to do: this host is ready as a real server")
    );
    assert_eq!(
        ns.setup(&format!("--mode direct {vips} --check --state {st}"))
            .0,
        0
    );

    // Undo puts back exactly what was there.
    let (code, out) = ns.setup(&format!("--undo --state {st}"));
    assert_eq!(code, 0, "{out}");
    let lo = sh(&format!("ip -n {} addr show dev lo", ns.0));
    assert!(
        !lo.contains("10.9.9.9") && !lo.contains("2001:db8::9"),
        "{lo}"
    );
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "0");
    assert!(!state.exists());
    let (code, out) = ns.setup(&format!("--undo --state {st}"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to undo"), "{out}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn tunnel_setup_without_ipip_says_so_and_changes_nothing() {
    let ns = Netns::new("t");
    // `modprobe -n`: whether the module could be loaded, without loading it.
    let has_ipip = std::path::Path::new("/sys/module/ipip").exists()
        || try_sh("modprobe -n -q ipip").status.success();
    if has_ipip {
        // A kernel with ipip: the set-up works (as in the VM test).
        let (code, out) = ns.setup("--mode tunnel --vip 10.9.9.9 --state /tmp/fulcrum-rs-tun-ok");
        assert_eq!(code, 0, "{out}");
        assert_eq!(ns.setup("--undo --state /tmp/fulcrum-rs-tun-ok").0, 0);
        return;
    }
    let state = std::env::temp_dir().join(format!("fulcrum-rs-tun-{}", std::process::id()));
    let (code, out) = ns.setup(&format!(
        "--mode tunnel --vip 10.9.9.9 --state {}",
        state.display()
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("this kernel has no IPIP tunnels; use --mode direct"),
        "{out}"
    );
    let lo = sh(&format!("ip -n {} addr", ns.0));
    assert!(!lo.contains("10.9.9.9"), "{lo}");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    let _ = std::fs::remove_file(&state);
}

/// In the IPVS VM, whose kernel has ipip: tunl0 comes up with the VIP and a
/// loose rp_filter, and goes back down on undo.
#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn tunnel_setup_in_a_kernel_with_ipip() {
    let text = ipvs_vm(
        "tunnel",
        &format!(
            "set -e\n\
             {BIN} realserver-setup --mode tunnel --vip 10.7.7.7 --state /tmp/s\n\
             echo \"ADDR $(ip -4 addr show dev tunl0 | grep -c 'inet 10.7.7.7/32')\"\n\
             echo \"UP $(( $(cat /sys/class/net/tunl0/flags) & 1 ))\"\n\
             echo \"RP $(cat /proc/sys/net/ipv4/conf/tunl0/rp_filter)\"\n\
             echo \"IGNORE $(cat /proc/sys/net/ipv4/conf/all/arp_ignore)\"\n\
             {BIN} realserver-setup --mode tunnel --vip 10.7.7.7 --check --state /tmp/s\n\
             {BIN} realserver-setup --undo --state /tmp/s\n\
             echo \"AFTER $(ip -4 addr show dev tunl0 | grep -c 10.7.7.7 || true) $(( $(cat /sys/class/net/tunl0/flags) & 1 )) $(cat /proc/sys/net/ipv4/conf/all/arp_ignore)\"\n"
        ),
        &[BIN],
        120,
    );
    for want in [
        "done: load the kernel module ipip",
        "done: bring tunl0 up",
        "done: add 10.7.7.7 to tunl0",
        "ADDR 1",
        "UP 1",
        "RP 2",
        "IGNORE 1",
        "this host is ready as a real server",
        "undone: bring tunl0 up",
        "AFTER 0 0 0",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
}

//! `fulcrum run` with `dataplane = ipvs` in the IPVS VM, the real ipvsadm
//! as the witness: the file's table (direct routing, fwmark) is installed in
//! the kernel, a reload changes only what differs, `fulcrum adm` changes
//! reach the kernel, a service added by hand is never touched, and on exit
//! Fulcrum removes what it installed and nothing else. Root and the VM:
//! runs with FULCRUM_NETNS_TESTS=1.

use fulcrum_testbed::{ipvs_vm, section};
use std::path::PathBuf;

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

fn temp(name: &str, body: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("fulcrum-ipvsplane-{name}-{}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    p
}

const BEFORE: &str = "dataplane = ipvs
network = direct
virtual web {
 address = 10.0.0.1 d0:1
 active = 1
 port = 80
 scheduler = wrr
 checktype = off
 server rs1 {
  address = 10.0.1.1
  active = 1
 }
 server rs2 {
  address = 10.0.1.2
  active = 1
 }
}
virtual marked {
 fwmark = 5
 active = 1
 scheduler = rr
 persistent = 60
 checktype = off
 server rs3 {
  address = 10.0.1.3
  active = 1
 }
}
";

const AFTER: &str = "dataplane = ipvs
network = direct
virtual web {
 address = 10.0.0.1 d0:1
 active = 1
 port = 80
 scheduler = wrr
 checktype = off
 server rs1 {
  address = 10.0.1.1
  active = 1
  weight = 5
 }
 server rs3 {
  address = 10.0.1.3
  active = 1
 }
}
";

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_director_keeps_the_kernel_table_by_difference() {
    let cf = temp("cf", BEFORE);
    let after = temp("after", AFTER);
    let (cf, after) = (
        cf.to_str().unwrap().to_string(),
        after.to_str().unwrap().to_string(),
    );
    let script = format!(
        "modprobe ip_vs; modprobe dummy\n\
             ip link add d0 type dummy; ip link set d0 up; ip addr add 10.0.0.254/24 dev d0\n\
             ipvsadm -A -t 10.9.9.9:99 -s rr\n\
             {BIN} run --config {cf} --control /tmp/c.sock 2>/tmp/log &\n\
             pid=$!\n\
             for i in $(seq 100); do [ -S /tmp/c.sock ] && break; sleep 0.1; done\n\
             echo '=== start'; ipvsadm -S -n\n\
             echo '=== vip'; ip -4 addr show dev d0 | grep -c 'inet 10.0.0.1/32' || true\n\
             cp {after} {cf}; kill -HUP $pid; sleep 1\n\
             echo '=== reloaded'; ipvsadm -S -n\n\
             {BIN} adm --control /tmp/c.sock -e -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 9\n\
             echo '=== adm'; ipvsadm -S -n\n\
             echo '=== status'; {BIN} status --control /tmp/c.sock\n\
             kill -TERM $pid; wait $pid; echo \"exit $?\"\n\
             echo '=== stopped'; ipvsadm -S -n\n\
             echo '=== log'; cat /tmp/log\n"
    );
    let out = ipvs_vm("plane", &script, &[BIN, &cf, &after], 180);
    for p in [&cf, &after] {
        let _ = std::fs::remove_file(p);
    }

    assert_eq!(
        section(&out, "start"),
        "-A -t 10.0.0.1:80 -s wrr\n\
         -a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.1.2:80 -g -w 1\n\
         -A -t 10.9.9.9:99 -s rr\n\
         -A -f 5 -s rr -p 60\n\
         -a -f 5 -r 10.0.1.3:0 -g -w 1\n",
        "{out}"
    );
    assert_eq!(section(&out, "vip").trim(), "1", "the VIP is up: {out}");
    assert_eq!(
        section(&out, "reloaded"),
        "-A -t 10.0.0.1:80 -s wrr\n\
         -a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 5\n\
         -a -t 10.0.0.1:80 -r 10.0.1.3:80 -g -w 1\n\
         -A -t 10.9.9.9:99 -s rr\n",
        "{out}"
    );
    assert!(
        section(&out, "adm").contains("-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 9"),
        "{out}"
    );
    assert!(
        section(&out, "status").contains("kernel IPVS data plane"),
        "{out}"
    );
    let stopped = section(&out, "stopped");
    assert_eq!(
        stopped, "-A -t 10.9.9.9:99 -s rr\n",
        "only the hand-made service is left:\n{out}"
    );
    assert!(out.contains("exit 0"), "{out}");
}

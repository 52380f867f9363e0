//! The driver against a real kernel IPVS, in the VM (`../shared/tools/ipvs-vm`
//! beside the repository), with the real ipvsadm as the witness: a table
//! ipvsadm builds reads back through Fulcrum's codec exactly as `ipvsadm
//! -S -n` prints it, and the table an lvs.cf describes, installed by
//! Fulcrum, is what ipvsadm lists. Root: runs with FULCRUM_NETNS_TESTS=1.

use std::path::PathBuf;
use std::process::Command;

use fulcrum_testbed::{ipvs_vm, section};

/// The `ipvs_table` example, built beside this test by `cargo test`.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples/ipvs_table");
    assert!(
        p.exists(),
        "{} is missing: `cargo test -p fulcrum-ipvs` builds it",
        p.display()
    );
    p
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_codec_reads_and_writes_what_ipvsadm_does() {
    let ex = example();
    let ex = ex.to_str().unwrap();
    let cf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/lvs.cf")
        .canonicalize()
        .unwrap();
    let cf = cf.to_str().unwrap();
    let script = format!(
        "modprobe ip_vs\n\
         for s in rr wrr lc wlc sh dh lblc lblcr sed nq mh fo ovf twos; do modprobe ip_vs_$s 2>/dev/null; done\n\
         ipvsadm -A -t 10.0.0.1:80 -s wrr\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 70000\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.2 -g -w 0 -x 100 -y 10\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.3 -i --tun-type gue --tun-port 6080 --tun-remcsum\n\
         ipvsadm -A -t 10.0.0.2:443 -s sh -b sh-port,sh-fallback -p 300 -M 255.255.255.0\n\
         ipvsadm -A -u 10.0.0.1:53 -s rr -o\n\
         ipvsadm -a -u 10.0.0.1:53 -r 10.0.1.6:5353 -m\n\
         ipvsadm -A -t [2001:db8::1]:80 -s mh -b mh-port\n\
         ipvsadm -a -t [2001:db8::1]:80 -r [2001:db8:1::1]:8080 -m -w 3\n\
         ipvsadm -A -f 8 -6 -s lc -p 60 -M 64\n\
         ipvsadm -a -f 8 -6 -r 2001:db8:2::5 -g\n\
         ipvsadm --set 100 20 30\n\
         echo '=== ipvsadm'; ipvsadm -S -n\n\
         echo '=== fulcrum'; {ex} dump\n\
         for l in '--thresholds' '--tun-info' '--timeout' '--persistent-conn'; do\n\
           echo \"=== ipvsadm $l\"; ipvsadm -L -n $l; echo \"=== fulcrum $l\"; {ex} dump -L -n $l\n\
         done\n\
         ipvsadm -C\n\
         {ex} apply {cf}\n\
         echo '=== applied'; ipvsadm -S -n\n\
         echo '=== again'; {ex} apply {cf} 2>&1 || echo \"exit $?\"\n\
         echo '=== end'\n"
    );
    let out = ipvs_vm("codec", &script, &[ex, cf], 180);
    let theirs = section(&out, "ipvsadm");
    assert!(theirs.contains("-A -t 10.0.0.1:80 -s wrr"), "{out}");
    assert_eq!(
        section(&out, "fulcrum"),
        theirs,
        "the kernel's table read by Fulcrum"
    );

    for l in [
        "--thresholds",
        "--tun-info",
        "--timeout",
        "--persistent-conn",
    ] {
        assert_eq!(
            section(&out, &format!("fulcrum {l}")),
            section(&out, &format!("ipvsadm {l}")),
            "-L -n {l} of the kernel's table read by Fulcrum"
        );
    }
    assert!(
        section(&out, "ipvsadm --thresholds").contains("100        10"),
        "{out}"
    );

    let expected = Command::new(env!("CARGO"))
        .args([
            "run", "-q", "-p", "fulcrum", "--", "check", "--save", "--config", cf,
        ])
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout);
    let applied = section(&out, "applied");
    assert!(!applied.is_empty(), "{out}");
    assert_eq!(
        applied, expected,
        "the kernel's table after Fulcrum installed lvs.cf"
    );
    let again = section(&out, "again");
    assert!(
        again.contains("File exists") && again.contains("exit 1"),
        "{again}"
    );
}

/// Two lvs.cf files, before and after an edit.
fn write_cf(name: &str, body: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("fulcrum-ipvs-{name}-{}.cf", std::process::id()));
    std::fs::write(&p, body).unwrap();
    p
}

fn virtual_server(name: &str, port: u16, sched: &str, servers: &[(u8, u32)]) -> String {
    let mut s = format!(
        "virtual {name} {{\n address = 10.0.0.1\n active = 1\n port = {port}\n scheduler = {sched}\n"
    );
    for (last, w) in servers {
        s.push_str(&format!(
            " server rs{last} {{\n  address = 10.0.1.{last}\n  active = 1\n  weight = {w}\n }}\n"
        ));
    }
    s + "}\n"
}

/// A reload by difference in the kernel: only what changed is changed,
/// and a service added by hand with ipvsadm is left alone.
#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_new_table_is_reached_by_difference_leaving_foreign_services() {
    let ex = example();
    let ex = ex.to_str().unwrap();
    let empty = write_cf("empty", "");
    let a = write_cf(
        "a",
        &format!(
            "{}{}",
            virtual_server("web", 80, "wrr", &[(1, 1), (2, 1)]),
            virtual_server("old", 81, "rr", &[(1, 1)])
        ),
    );
    let b = write_cf(
        "b",
        &format!(
            "{}{}",
            virtual_server("web", 80, "wrr", &[(1, 5), (3, 1)]),
            virtual_server("new", 82, "wlc", &[(1, 1)])
        ),
    );
    let (e, a, b) = (
        empty.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    );
    let script = format!(
        "modprobe ip_vs\n\
         ipvsadm -A -t 10.9.9.9:99 -s rr\n\
         echo '=== first'; {ex} sync {e} {a}\n\
         echo '=== second'; {ex} sync {a} {b}\n\
         echo '=== third'; {ex} sync {b} {b}\n\
         echo '=== table'; ipvsadm -S -n\n\
         echo '=== end'\n"
    );
    let out = ipvs_vm("sync", &script, &[ex, e, a, b], 180);
    let first = section(&out, "first");
    assert_eq!(first.matches("AddService").count(), 2, "{first}");
    let second: Vec<&str> = section(&out, "second").lines().collect();
    let kinds: Vec<&str> = second
        .iter()
        .map(|l| l.split('(').next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "DeleteService",
            "DeleteDest",
            "AddDest",
            "EditDest",
            "AddService",
            "AddDest"
        ],
        "{out}"
    );
    assert_eq!(section(&out, "third"), "", "nothing to do the second time");
    let table = section(&out, "table");
    assert!(
        table.contains("-A -t 10.9.9.9:99 -s rr"),
        "the hand-made service stays:\n{table}"
    );
    assert!(!table.contains("10.0.0.1:81"), "{table}");
    assert!(
        table.contains("-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 5"),
        "{table}"
    );
    assert!(table.contains("-A -t 10.0.0.1:82 -s wlc"), "{table}");
    for p in [&empty, &PathBuf::from(a), &PathBuf::from(b)] {
        let _ = std::fs::remove_file(p);
    }
}

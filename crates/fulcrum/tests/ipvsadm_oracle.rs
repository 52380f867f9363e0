//! The real ipvsadm as the oracle: a battery of command lines
//! (`tests/data/ipvsadm-battery.txt`) runs against ipvsadm 1.31 on a
//! kernel with IPVS (in `ipvs-vm`, beside the repository as
//! `../shared/tools/ipvs-vm`) and against `fulcrum adm`'s language on
//! Fulcrum's own table; stdout, stderr and the exit status must be the same
//! for every line, except the deviations listed (and documented in
//! docs/adm.md). Needs root and the VM: runs with FULCRUM_NETNS_TESTS=1.

use std::path::PathBuf;
use std::time::Duration;

use fulcrum_api::ipvsadm::{NumericResolver, run};
use fulcrum_core::Table;

/// What one command line printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    stdout: String,
    stderr: String,
    code: i32,
}

/// The battery's command lines, each with whether its output's lines may
/// come in another order (`~ ` in the file).
fn battery() -> Vec<(String, bool)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ipvsadm-battery.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix("~ ") {
            Some(rest) => (rest.to_string(), true),
            None => (l.to_string(), false),
        })
        .collect()
}

impl Seen {
    /// The same output with its lines sorted.
    fn unordered(&self) -> Seen {
        let sorted = |s: &str| {
            let mut l: Vec<&str> = s.lines().collect();
            l.sort_unstable();
            l.join("\n")
        };
        Seen {
            stdout: sorted(&self.stdout),
            stderr: sorted(&self.stderr),
            code: self.code,
        }
    }
}

/// Quote a word for the VM's shell.
fn quoted(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

/// Run the battery in the VM; what the real ipvsadm did for each line.
fn kernel(lines: &[String]) -> Vec<Seen> {
    let mut script = String::from(
        "modprobe ip_vs\nfor s in rr wrr lc wlc sh dh lblc lblcr sed nq mh fo ovf twos; do modprobe ip_vs_$s 2>/dev/null; done\n\
         run() { echo '=== line'; ipvsadm \"$@\" >/tmp/o 2>/tmp/e; rc=$?; echo '--- out'; cat /tmp/o; echo '--- err'; cat /tmp/e; echo \"--- rc $rc\"; }\n",
    );
    for l in lines {
        let words: Vec<String> = l.split_whitespace().map(quoted).collect();
        script.push_str(&format!("run {}\n", words.join(" ")));
    }
    let text = fulcrum_testbed::ipvs_vm("oracle", &script, &[], 240);
    let mut seen = Vec::new();
    for block in text.split("=== line\n").skip(1) {
        let (_, rest) = block.split_once("--- out\n").unwrap();
        let (stdout, rest) = rest.split_once("--- err\n").unwrap();
        let (stderr, rc) = rest.split_once("--- rc ").unwrap();
        seen.push(Seen {
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            code: rc.trim().parse().unwrap(),
        });
    }
    assert_eq!(seen.len(), lines.len(), "every line answered:\n{text}");
    seen
}

/// Run the battery through fulcrum adm's language on a fresh table.
fn fulcrum(lines: &[String]) -> Vec<Seen> {
    let mut t = Table::new();
    lines
        .iter()
        .map(|l| {
            let args: Vec<String> = l.split_whitespace().map(String::from).collect();
            let o = run(
                "ipvsadm",
                &args,
                "",
                &mut t,
                &NumericResolver,
                Duration::ZERO,
            );
            Seen {
                stdout: o.stdout,
                stderr: o.stderr,
                code: o.exit_code,
            }
        })
        .collect()
}

#[cfg_attr(
    not(netns_tests),
    ignore = "needs root and the ipvs-vm tool: run with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn fulcrum_adm_answers_as_the_real_ipvsadm() {
    let battery = battery();
    let lines: Vec<String> = battery.iter().map(|(l, _)| l.clone()).collect();
    let theirs = kernel(&lines);
    let ours = fulcrum(&lines);
    let mut differences = Vec::new();
    for (((line, any_order), k), f) in battery.iter().zip(&theirs).zip(&ours) {
        let same = if *any_order {
            k.unordered() == f.unordered()
        } else {
            k == f
        };
        if !same {
            differences.push(format!(
                "ipvsadm {line}\n  kernel : {k:?}\n  fulcrum: {f:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} lines differ:\n{}",
        differences.len(),
        lines.len(),
        differences.join("\n")
    );
}

//! Compiles the BPF program (`bpf/fulcrum.bpf.c`) with clang when the
//! machine has it (and libbpf's headers); without them Fulcrum still
//! builds, and `fulcrum_xdp::program()` says what to install. Also sets
//! `cfg(netns_tests)` from `FULCRUM_NETNS_TESTS=1`, as the other crates do:
//! tests that load BPF programs need root.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(netns_tests)");
    println!("cargo::rerun-if-env-changed=FULCRUM_NETNS_TESTS");
    if std::env::var("FULCRUM_NETNS_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=netns_tests");
    }
    println!("cargo::rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut missing = None;
    for name in ["fulcrum", "decap"] {
        println!("cargo::rerun-if-changed=bpf/{name}.bpf.c");
        let out = out_dir.join(format!("{name}.bpf.o"));
        if missing.is_none() {
            missing = compile(&format!("bpf/{name}.bpf.c"), &out);
        }
        if missing.is_some() {
            // An empty object: the library reports why at run time.
            std::fs::write(&out, b"").expect("OUT_DIR is writable");
        }
    }
    if let Some(why) = missing {
        println!(
            "cargo::warning=fulcrum-xdp: {why}; the XDP data plane is left out (install clang and libbpf-dev, then rebuild)"
        );
        println!("cargo::rustc-env=FULCRUM_XDP_MISSING={why}");
    } else {
        println!("cargo::rustc-env=FULCRUM_XDP_MISSING=");
    }
}

/// Compile one program; why not, when a tool is missing.
fn compile(src: &str, out: &std::path::Path) -> Option<String> {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    let result = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-Wall",
            "-Werror",
            &arch_include,
            "-c",
        ])
        .arg(src)
        .arg("-o")
        .arg(out)
        .output();
    match result {
        Ok(o) if o.status.success() => None,
        // clang ran and the headers were there: an error in the program
        // is a bug to fix, not a tool to install.
        Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("file not found") => {
            panic!(
                "clang could not compile {src}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        }
        Ok(o) => Some(format!(
            "clang could not compile the XDP program: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        )),
        Err(e) => Some(format!("`{clang}` could not be run ({e})")),
    }
}

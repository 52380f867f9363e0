//! Namespace tests are compiled as ignored unless `FULCRUM_NETNS_TESTS=1`
//! (root, as `.ci/run` runs them): the runner then reports them as ignored
//! rather than as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(netns_tests)");
    println!("cargo::rerun-if-env-changed=FULCRUM_NETNS_TESTS");
    if std::env::var("FULCRUM_NETNS_TESTS").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=netns_tests");
    }
}

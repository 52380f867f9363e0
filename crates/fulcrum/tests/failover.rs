//! Director failover in the five-node network with two and three directors
//! (network namespaces; root): take-over on process kill, clean shutdown
//! and link loss, hand-back with and without preemption, partitions, keys,
//! and keepalived as the other director. Runs when built with
//! FULCRUM_NETNS_TESTS=1; otherwise reported as ignored.

use std::time::{Duration, Instant};

use fulcrum_testbed::{
    Bg, DIRECTOR_PUBLIC, FiveNode, NAT_ROUTER, RS, Scratch, VIP, director_name, sh, try_sh,
    wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// lvs.cf for the directors: `primary` is `dir`, `backup` is `dir2`, each
/// `peer` a further director; the virtual server balances rs1..rs3.
fn ha_config(directors: usize, extra: &str) -> String {
    let mut s = format!(
        "serial_no = 1\nprimary = {}\nbackup = {}\nbackup_active = 1\nheartbeat = 1\nkeepalive = 0.1\ndeadtime = 0.5\nnetwork = nat\nnat_router = {NAT_ROUTER} eth1:1\n",
        DIRECTOR_PUBLIC[0], DIRECTOR_PUBLIC[1]
    );
    for p in DIRECTOR_PUBLIC.iter().take(directors).skip(2) {
        s.push_str(&format!("peer = {p}\n"));
    }
    s.push_str(extra);
    s.push_str(&format!(
        "virtual server vs1 {{\n address = {VIP} eth0:1\n active = 1\n port = 80\n scheduler = rr\n timeout = 3\n reentry = 1\n check_interval = 0.5\n"
    ));
    for (i, rs) in RS.iter().enumerate() {
        s.push_str(&format!(
            " server rs{} {{\n  address = {rs}\n  active = 1\n  weight = 1\n }}\n",
            i + 1
        ));
    }
    s.push_str("}\n");
    s
}

/// One director: its namespace, files and process.
struct Director {
    ns: String,
    cf: String,
    log: String,
    state: String,
    control: String,
    proc: Option<Bg>,
}

impl Director {
    /// Write director `i`'s lvs.cf (with a notify script recording each
    /// state into its own file).
    fn new(tmp: &Scratch, i: usize, cf: &str) -> Director {
        let name = director_name(i);
        let state = tmp.file(&format!("{name}.state"));
        let script = tmp.file(&format!("{name}.notify"));
        std::fs::write(&script, format!("#!/bin/sh\necho \"$3 $4\" >> {state}\n")).unwrap();
        sh(&format!("chmod +x {script}"));
        let cf_path = tmp.file(&format!("{name}.cf"));
        std::fs::write(&cf_path, format!("notify_script = {script}\n{cf}")).unwrap();
        Director {
            ns: name.clone(),
            cf: cf_path,
            log: tmp.file(&format!("{name}.log")),
            state,
            control: tmp.file(&format!("{name}.sock")),
            proc: None,
        }
    }

    fn start(&mut self, net: &FiveNode) {
        let _ = std::fs::remove_file(&self.control);
        // Every director serves metrics on its own loopback.
        let cmd = format!(
            "exec {BIN} run --config {} --control {} --metrics 127.0.0.1:9109 2>> {}",
            self.cf, self.control, self.log
        );
        self.proc = Some(net.spawn(&self.ns, "sh", &["-c", &cmd], &[]));
        let control = self.control.clone();
        wait_for(&format!("director {}", self.ns), 10, || {
            std::path::Path::new(&control).exists()
        });
    }

    /// Send a signal without waiting for the director to exit.
    fn send(&self, sig: &str) {
        if let Some(p) = &self.proc {
            let _ = std::process::Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(p.0.id().to_string())
                .status();
        }
    }

    fn signal(&mut self, sig: &str) {
        if let Some(mut p) = self.proc.take() {
            p.signal_and_wait(sig);
        }
    }

    fn states(&self) -> Vec<String> {
        std::fs::read_to_string(&self.state)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }

    fn metrics(&self, net: &FiveNode) -> String {
        net.exec(&self.ns, "curl -s http://127.0.0.1:9109/metrics")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> String {
        String::from_utf8_lossy(&try_sh(&format!("{BIN} status --control {}", self.control)).stdout)
            .into_owned()
    }
}

fn has_vip(net: &FiveNode, d: &Director) -> bool {
    net.addrs(&d.ns, "eth0").contains(&format!("{VIP}/32"))
}

fn has_nat_router(net: &FiveNode, d: &Director) -> bool {
    net.addrs(&d.ns, "eth1")
        .contains(&format!("{NAT_ROUTER}/32"))
}

/// Wait until, of the running directors, exactly `who` holds the
/// addresses (a killed director keeps them, as keepalived's does); returns
/// how long that took.
fn wait_holder(net: &FiveNode, ds: &[Director], who: usize, secs: u64) -> Duration {
    let t = Instant::now();
    let mut ok = false;
    while t.elapsed() < Duration::from_secs(secs) {
        if ds
            .iter()
            .enumerate()
            .filter(|(i, d)| d.proc.is_some() || *i == who)
            .all(|(i, d)| has_vip(net, d) == (i == who) && has_nat_router(net, d) == (i == who))
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if !ok {
        let logs: Vec<String> = ds
            .iter()
            .map(|d| format!("--- {} ---\n{}", d.ns, d.logs()))
            .collect();
        panic!(
            "{} did not become the only holder of {VIP} and {NAT_ROUTER} within {secs}s\n{}",
            ds[who].ns,
            logs.join("\n")
        );
    }
    t.elapsed()
}

/// A client requesting the virtual server every 20 ms, recording each
/// status (000 for a failure).
struct Client {
    out: String,
    _proc: Bg,
}

impl Client {
    fn start(net: &FiveNode, tmp: &Scratch) -> Client {
        let out = tmp.file("client.out");
        let script = format!(
            "while :; do curl -s -o /dev/null --max-time 0.5 -w '%{{http_code}}\\n' http://{VIP}/ >> {out}; sleep 0.02; done"
        );
        let proc = net.spawn("cli", "sh", &["-c", &script], &[]);
        Client { out, _proc: proc }
    }

    fn results(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// (succeeded, failed) so far.
    fn counts(&self) -> (usize, usize) {
        let r = self.results();
        let ok = r.iter().filter(|s| *s == "200").count();
        (ok, r.len() - ok)
    }

    /// Wait for `n` more requests and check they all succeeded.
    /// The first two are skipped: they may have started before.
    fn expect_serving(&self, n: usize, when: &str) {
        self.expect_serving_or(n, when, &String::new);
    }

    /// As `expect_serving`, with `context()` (a director's log, its
    /// listing) in the failure message.
    fn expect_serving_or(&self, n: usize, when: &str, context: &dyn Fn() -> String) {
        let start = self.results().len() + 2;
        wait_for(&format!("{n} requests {when}"), 20, || {
            self.results().len() >= start + n
        });
        let r = self.results();
        let recent = &r[start..start + n];
        assert!(
            recent.iter().all(|s| s == "200"),
            "requests {when} failed: {recent:?}\n{}",
            context()
        );
    }
}

/// A topology held by one test at a time: each runs several directors,
/// real servers and a client on a 2-CPU machine, and their sub-second
/// timings (a 0.5 s client timeout, 100 ms adverts) are what they test.
struct Net {
    net: FiveNode,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Net {
    type Target = FiveNode;
    fn deref(&self) -> &FiveNode {
        &self.net
    }
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn network(tag: &str, n: usize) -> Net {
    // A test that failed still lets the others run.
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut net = FiveNode::with_directors(tag, n);
    net.start_realservers(BIN);
    Net {
        net,
        _one_at_a_time: guard,
    }
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_killed_primary_is_replaced_within_deadtime_and_takes_over_again_on_return() {
    let net = network("ka", 2);
    let tmp = Scratch::new("ha-kill");
    let cmds = tmp.file("commands");
    let cf = ha_config(
        2,
        &format!(
            "active_cmd = \"echo active $(hostname) >> {cmds}\"\ninactive_cmd = \"echo inactive >> {cmds}\"\n"
        ),
    );
    let mut ds = vec![Director::new(&tmp, 0, &cf), Director::new(&tmp, 1, &cf)];
    ds[0].start(&net);
    ds[1].start(&net);
    wait_holder(&net, &ds, 0, 5);
    // The backup stays backup (it hears the primary).
    std::thread::sleep(Duration::from_millis(1500));
    wait_holder(&net, &ds, 0, 1);
    assert!(
        ds[1].status().contains("failover: BACKUP"),
        "{}",
        ds[1].status()
    );
    assert!(
        ds[0].status().contains("failover: MASTER"),
        "{}",
        ds[0].status()
    );
    // Each names the other's state from its hellos; the backup's services
    // stand by.
    let backup = ds[1].status();
    assert!(backup.contains(": MASTER, priority "), "{backup}");
    assert!(
        backup.contains("(standing by: this director is a backup)"),
        "{backup}"
    );
    assert!(
        ds[0].status().contains(": BACKUP, priority "),
        "{}",
        ds[0].status()
    );
    let client = Client::start(&net, &tmp);
    client.expect_serving(20, "before the failure");

    // Kill -9: no hand-over advert; the backup waits out deadtime.
    let killed = Instant::now();
    ds[0].signal("KILL");
    while !has_vip(&net, &ds[1]) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no take-over\n{}",
            ds[1].logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = killed.elapsed();
    eprintln!(
        "take-over after kill -9: {} ms (deadtime 500 ms)",
        took.as_millis()
    );
    assert!(
        took < Duration::from_millis(500 + 100 + 400),
        "took {took:?}, more than deadtime + one advert (+ slack)"
    );
    client.expect_serving_or(20, "after the take-over", &|| {
        format!(
            "the new active director's log:\n{}\nits table:\n{}",
            ds[1].logs(),
            String::from_utf8_lossy(
                &try_sh(&format!(
                    "{BIN} adm --control {} -L -n --stats",
                    ds[1].control
                ))
                .stdout
            )
        )
    });
    let (_, failed_kill) = client.counts();

    // The primary returns (its killed run left the addresses; it clears
    // them) and, with preemption, takes the active role back.
    ds[0].start(&net);
    wait_holder(&net, &ds, 0, 5);
    client.expect_serving(20, "after the hand-back");
    let (ok, failed) = client.counts();
    eprintln!(
        "requests: {ok} succeeded, {failed_kill} failed around the kill, {} around the hand-back",
        failed - failed_kill
    );
    assert!(
        failed_kill <= 40,
        "{failed_kill} requests failed around the kill"
    );
    assert!(
        failed - failed_kill <= 10,
        "{} requests failed around the hand-back",
        failed - failed_kill
    );
    // The backup ran active_cmd on taking over and inactive_cmd on handing
    // back (the killed primary ran active_cmd twice: before and after).
    let ran = std::fs::read_to_string(&cmds).unwrap_or_default();
    assert_eq!(ran.matches("inactive").count(), 1, "{ran}");
    assert_eq!(ran.matches("active ").count(), 3, "{ran}");
    let m = ds[1].metrics(&net);
    assert!(
        m.contains("fulcrum_failover_master{virtual_router=\"51\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("fulcrum_failover_transitions_total{virtual_router=\"51\"} 3"),
        "{m}"
    );
    let m = ds[0].metrics(&net);
    assert!(
        m.contains("fulcrum_failover_master{virtual_router=\"51\"} 1"),
        "{m}"
    );
    assert_eq!(
        ds[1].states(),
        vec!["BACKUP", "MASTER", "BACKUP"],
        "{}",
        ds[1].logs()
    );
    let st = ds[0].states();
    assert_eq!(st.last().map(String::as_str), Some("MASTER"), "{st:?}");
    assert!(
        ds[1].status().contains("failover: BACKUP"),
        "{}",
        ds[1].status()
    );

    // A reload lowering the primary's priority below the backup's: the
    // backup preempts it.
    let cf0 = std::fs::read_to_string(&ds[0].cf).unwrap();
    std::fs::write(&ds[0].cf, format!("priority = 50\n{cf0}")).unwrap();
    sh(&format!("{BIN} reload --control {}", ds[0].control));
    wait_holder(&net, &ds, 1, 5);
    assert!(ds[0].status().contains("priority 50"), "{}", ds[0].status());
    // Turning failover off needs a restart: refused, nothing changes.
    std::fs::write(
        &ds[0].cf,
        cf0.replace("backup_active = 1", "backup_active = 0"),
    )
    .unwrap();
    let out = try_sh(&format!("{BIN} reload --control {}", ds[0].control));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("turns failover off") && err.contains("nothing changed"),
        "{err}"
    );
    std::fs::write(&ds[0].cf, format!("heartbeat_port = 1539\n{cf0}")).unwrap();
    let out = try_sh(&format!("{BIN} reload --control {}", ds[0].control));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`heartbeat_port` would change"),
        "{err}"
    );
    client.expect_serving(10, "after the reloads");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn a_clean_shutdown_hands_over_at_once_and_nice_failback_keeps_the_backup_active() {
    let net = network("kb", 2);
    let tmp = Scratch::new("ha-term");
    let cf = ha_config(2, "nice_failback = 1\nkeepalive = 0.5\n")
        .replace("keepalive = 0.1\n", "")
        .replace("deadtime = 0.5", "deadtime = 3");
    // dir2 mails its transitions to an SMTP sink (aiosmtpd) in its namespace.
    let sink_log = tmp.file("smtp.out");
    let mail = try_sh("/usr/bin/python3 -c 'import aiosmtpd'")
        .status
        .success();
    let _sink = mail.then(|| {
        let cmd =
            format!("exec /usr/bin/python3 -u -m aiosmtpd -n -l 127.0.0.1:2525 > {sink_log} 2>&1");
        net.spawn("dir2", "sh", &["-c", &cmd], &[])
    });
    if !mail {
        fulcrum_testbed::missing_peer("the mail part", "python3-aiosmtpd");
    }
    let mail_cf = format!(
        "notify_email = ops@example.test\nnotify_email_from = dir2@example.test\nsmtp_server = 127.0.0.1:2525\n{cf}"
    );
    let mut ds = vec![
        Director::new(&tmp, 0, &cf),
        Director::new(&tmp, 1, &mail_cf),
    ];
    ds[0].start(&net);
    wait_holder(&net, &ds, 0, 8);
    ds[1].start(&net);
    std::thread::sleep(Duration::from_millis(1000));
    wait_holder(&net, &ds, 0, 1);
    let client = Client::start(&net, &tmp);
    client.expect_serving(10, "before the shutdown");

    // SIGTERM: a priority-0 advert; the backup does not wait for deadtime (3 s).
    // (Measured to the take-over, not to the old director's exit: it then
    // finishes its open connections, up to drain_timeout — a request in
    // flight at the hand-over never finishes, its client's packets going
    // to the backup, and holds it the whole 10 s.)
    let stopped = Instant::now();
    ds[0].send("TERM");
    wait_holder(&net, &ds, 1, 3);
    let took = stopped.elapsed();
    eprintln!(
        "hand-over on SIGTERM: {} ms (deadtime 3000 ms)",
        took.as_millis()
    );
    if mail {
        wait_for("the MASTER alert in the SMTP sink", 10, || {
            std::fs::read_to_string(&sink_log).is_ok_and(|m| m.contains("is now MASTER"))
        });
        let m = std::fs::read_to_string(&sink_log).unwrap();
        assert!(
            m.contains("is now BACKUP"),
            "the BACKUP alert at start: {m}"
        );
        assert!(
            m.contains("To: ops@example.test") && m.contains("From: dir2@example.test"),
            "{m}"
        );
        assert!(
            m.contains("Reason: 10.200.1.2 advertises priority 0")
                || m.contains("Reason: no advert"),
            "{m}"
        );
    }
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    client.expect_serving(10, "after the hand-over");

    // The primary returns but, with nice_failback, does not take over.
    ds[0].signal("TERM");
    ds[0].start(&net);
    std::thread::sleep(Duration::from_millis(4000));
    wait_holder(&net, &ds, 1, 1);
    assert!(
        ds[0].status().contains("failover: BACKUP"),
        "{}",
        ds[0].status()
    );
    client.expect_serving(10, "with the primary back as backup");
    let (ok, failed) = client.counts();
    eprintln!("requests: {ok} succeeded, {failed} failed");
    assert!(failed <= 10, "{failed} failed");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn link_loss_moves_the_addresses_and_a_healed_partition_leaves_one_holder() {
    let net = network("kc", 2);
    let tmp = Scratch::new("ha-link");
    let pubns = net.ns("pub");
    // dir monitors its links; dir2 does not (so a partition makes two masters).
    let mut ds = vec![
        Director::new(&tmp, 0, &ha_config(2, "monitor_links = 1\n")),
        Director::new(&tmp, 1, &ha_config(2, "")),
    ];
    ds[0].start(&net);
    ds[1].start(&net);
    wait_holder(&net, &ds, 0, 5);
    let client = Client::start(&net, &tmp);
    client.expect_serving(10, "before the link loss");

    // dir's public link goes down: it gives the role up, dir2 takes over.
    let cut = Instant::now();
    sh(&format!("ip -n {pubns} link set p-dir down"));
    let took = wait_holder(&net, &ds, 1, 5).max(cut.elapsed());
    eprintln!(
        "take-over on link loss: {} ms (deadtime 500 ms)",
        took.as_millis()
    );
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert!(
        ds[0].status().contains("failover: FAULT"),
        "{}",
        ds[0].status()
    );
    client.expect_serving(20, "after the link loss");
    sh(&format!("ip -n {pubns} link set p-dir up"));
    wait_holder(&net, &ds, 0, 5);
    client.expect_serving(10, "after the link returned");

    // A partition: dir2's public link goes down (dir2 does not monitor
    // links), so it becomes a second master on its side.
    sh(&format!("ip -n {pubns} link set p-dir2 down"));
    wait_for("a second master", 5, || has_vip(&net, &ds[1]));
    assert!(has_vip(&net, &ds[0]), "dir still holds the addresses");
    let unblock = format!("ip -n {pubns} link set p-dir2 up");
    // Heal: the lower priority yields within one advert (plus polling).
    let healed = Instant::now();
    sh(&unblock);
    while has_vip(&net, &ds[1]) {
        assert!(
            healed.elapsed() < Duration::from_secs(3),
            "still two holders\n{}",
            ds[1].logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!(
        "split brain over {} ms after the heal (advert 100 ms)",
        healed.elapsed().as_millis()
    );
    assert!(healed.elapsed() < Duration::from_millis(600));
    wait_holder(&net, &ds, 0, 2);
    // Whichever master heard the other first, the winner announces again.
    wait_for("the winner to announce the addresses again", 2, || {
        ds[0].logs().contains("announcing the addresses again")
    });
    client.expect_serving(20, "after the heal");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_private_heartbeat_path_keeps_one_lost_link_from_making_two_masters() {
    let net = network("kh", 2);
    let tmp = Scratch::new("ha-private");
    let pubns = net.ns("pub");
    let lan = net.ns("lan");
    let cf = ha_config(
        2,
        &format!(
            "primary_private = {}\nbackup_private = {}\n",
            fulcrum_testbed::DIRECTOR_PRIVATE[0],
            fulcrum_testbed::DIRECTOR_PRIVATE[1]
        ),
    );
    let mut ds = vec![Director::new(&tmp, 0, &cf), Director::new(&tmp, 1, &cf)];
    ds[0].start(&net);
    ds[1].start(&net);
    wait_holder(&net, &ds, 0, 5);
    // The public path between the directors goes (dir2's port): adverts
    // still arrive over the private network, so dir2 stays backup.
    sh(&format!("ip -n {pubns} link set p-dir2 down"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !has_vip(&net, &ds[1]),
        "dir2 took over with a heartbeat path left\n{}",
        ds[1].logs()
    );
    assert!(
        ds[1].status().contains("failover: BACKUP"),
        "{}",
        ds[1].status()
    );
    // Both paths gone: dir2 takes over within deadtime.
    let cut = Instant::now();
    sh(&format!("ip -n {lan} link set p-dir2 down"));
    wait_for("dir2 taking over", 3, || has_vip(&net, &ds[1]));
    eprintln!(
        "take-over with both heartbeat paths cut: {} ms",
        cut.elapsed().as_millis()
    );
    // Paths back: dir (priority 200) is the only master again.
    sh(&format!("ip -n {pubns} link set p-dir2 up"));
    sh(&format!("ip -n {lan} link set p-dir2 up"));
    wait_holder(&net, &ds, 0, 5);
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn three_directors_elect_by_priority_and_a_wrong_key_is_refused() {
    let net = network("kd", 3);
    let tmp = Scratch::new("ha-three");
    let key = tmp.file("key");
    std::fs::write(&key, "correct horse battery staple 2026\n").unwrap();
    let bad = tmp.file("bad");
    std::fs::write(&bad, "another key entirely, not the one\n").unwrap();
    sh(&format!("chmod 600 {key} {bad}"));
    let good_cf = ha_config(3, &format!("auth_key_file = {key}\n"));
    // dir3 is a peer at priority 150, above the backup's 100.
    let mut ds = vec![
        Director::new(&tmp, 0, &good_cf),
        Director::new(&tmp, 1, &good_cf),
        Director::new(&tmp, 2, &format!("priority = 150\n{good_cf}")),
    ];
    for d in &mut ds {
        d.start(&net);
    }
    wait_holder(&net, &ds, 0, 5);
    let client = Client::start(&net, &tmp);
    client.expect_serving(10, "with three directors");
    ds[0].signal("KILL");
    wait_holder(&net, &ds, 2, 5);
    client.expect_serving(10, "after the primary died");
    ds[2].signal("KILL");
    wait_holder(&net, &ds, 1, 5);
    client.expect_serving(10, "after the peer died");

    // dir2 restarted with another key: the adverts of dir (back with the
    // right key) are refused, and said so.
    ds[1].signal("TERM");
    std::fs::write(
        &ds[1].cf,
        std::fs::read_to_string(&ds[1].cf)
            .unwrap()
            .replace(&key, &bad),
    )
    .unwrap();
    ds[0].start(&net);
    ds[1].start(&net);
    wait_for("dir2 refusing dir's adverts", 5, || {
        ds[1].logs().contains("fails authentication")
    });
    // Hearing no valid advert, dir2 makes itself master: a wrong key is a
    // partition, and the refusals are counted.
    wait_for("dir2 master", 5, || {
        ds[1].status().contains("failover: MASTER")
    });
    let st = ds[1].status();
    assert!(st.contains("adverts refused"), "{st}");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn ipfail_the_director_reaching_fewer_ping_nodes_yields_and_returns() {
    let net = network("kf", 2);
    let tmp = Scratch::new("ha-ipfail");
    let cf = ha_config(
        2,
        &format!(
            "ping_node = {}\nping_node = {}\n",
            fulcrum_testbed::CLIENT,
            RS[0]
        ),
    );
    let mut ds = vec![Director::new(&tmp, 0, &cf), Director::new(&tmp, 1, &cf)];
    ds[0].start(&net);
    ds[1].start(&net);
    wait_holder(&net, &ds, 0, 5);
    let client = Client::start(&net, &tmp);
    client.expect_serving(10, "with both directors reaching both ping nodes");

    // dir loses its private link: it reaches the client but not rs1, while
    // dir2 reaches both; after three missed pings dir yields.
    let lan = net.ns("lan");
    let cut = Instant::now();
    sh(&format!("ip -n {lan} link set p-dir down"));
    wait_holder(&net, &ds, 1, 10);
    eprintln!(
        "ipfail hand-over {} ms after the private link went down",
        cut.elapsed().as_millis()
    );
    assert!(ds[0].logs().contains("ipfail"), "{}", ds[0].logs());
    assert!(ds[0].status().contains("priority 1,"), "{}", ds[0].status());
    client.expect_serving(20, "after dir yielded");

    // The link returns: dir reaches both again and takes the role back.
    sh(&format!("ip -n {lan} link set p-dir up"));
    wait_holder(&net, &ds, 0, 10);
    assert!(
        ds[0].status().contains("priority 200,"),
        "{}",
        ds[0].status()
    );
    // Its real servers re-enter after `reentry` (1 s) of good checks; the
    // requests in flight until then are not what this test is about.
    wait_for("dir's real servers back in service", 10, || {
        ds[0].status().matches("health: alive").count() == 3
    });
    std::thread::sleep(Duration::from_millis(600));
    client.expect_serving(20, "after dir returned");
    let (ok, failed) = client.counts();
    eprintln!("ipfail: {ok} requests succeeded, {failed} failed");
}

#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn the_active_director_syncs_a_newer_lvs_cf_to_its_peer() {
    let net = network("kg", 2);
    let tmp = Scratch::new("ha-sync");
    let key = tmp.file("key");
    std::fs::write(&key, "a sync key of more than sixteen bytes\n").unwrap();
    sh(&format!("chmod 600 {key}"));
    let cf = ha_config(2, &format!("sync = 1\nauth_key_file = {key}\n"));
    let mut ds = vec![Director::new(&tmp, 0, &cf), Director::new(&tmp, 1, &cf)];
    ds[0].start(&net);
    ds[1].start(&net);
    wait_holder(&net, &ds, 0, 5);
    assert!(ds[1].status().contains("(serial 1)"), "{}", ds[1].status());

    // The active director's file moves to serial 2 (wlc instead of rr).
    let cf0 = std::fs::read_to_string(&ds[0].cf).unwrap();
    let v2 = cf0
        .replace("serial_no = 1", "serial_no = 2")
        .replace("scheduler = rr", "scheduler = wlc");
    std::fs::write(&ds[0].cf, &v2).unwrap();
    sh(&format!("{BIN} reload --control {}", ds[0].control));
    let t = Instant::now();
    wait_for("dir2 at serial 2", 10, || {
        ds[1].status().contains("(serial 2)")
    });
    eprintln!(
        "serial 2 applied on the peer {} ms after the reload",
        t.elapsed().as_millis()
    );
    assert_eq!(
        std::fs::read_to_string(&ds[1].cf).unwrap(),
        v2,
        "the peer's file is the active one's"
    );
    // Written private (it names the key file), whatever the umask.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&ds[1].cf).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the synced file is {mode:o}");
    let table = sh(&format!("{BIN} adm --control {} -L -n", ds[1].control));
    assert!(table.contains(&format!("TCP  {VIP}:80 wlc")), "{table}");
    // The sender logs the peer's answer once it arrives.
    wait_for("the peer's answer", 5, || {
        ds[0].logs().contains("applied by the peer")
    });
    // Both still elect the same way.
    wait_holder(&net, &ds, 0, 2);
}

/// Python that records the raw VRRP packets from `from` reaching this
/// namespace for `secs` seconds, one hex line each (IP header removed).
fn record_adverts(from: &str, secs: f32, out: &str) -> String {
    format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,112)\ns.settimeout(0.2)\nend=time.time()+{secs}\nf=open('{out}','w')\nwhile time.time()<end:\n try:\n  p,a=s.recvfrom(2048)\n except socket.timeout:\n  continue\n if a[0]=='{from}':\n  f.write(p[(p[0]&15)*4:].hex()+'\\n')\nf.close()\n"
    )
}

/// Python that sends the recorded packets to `to` again, 0.1 s apart, from
/// this namespace's address, with TTL 255 as VRRP wants.
fn replay_adverts(to: &str, recording: &str) -> String {
    format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,112)\ns.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,255)\nfor l in open('{recording}'):\n s.sendto(bytes.fromhex(l.strip()),('{to}',0))\n time.sleep(0.1)\n"
    )
}

/// Adverts recorded before a director restarts are refused after it: the
/// last accepted sequence numbers survive the restart (kill -9 included),
/// so a replayed master cannot hold the backup down.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn adverts_recorded_before_a_restart_are_refused_after_it() {
    let net = network("rp", 2);
    let tmp = Scratch::new("ha-replay");
    let key = tmp.file("key");
    std::fs::write(&key, "correct horse battery staple 2026\n").unwrap();
    sh(&format!("chmod 600 {key}"));
    let cf = ha_config(2, &format!("auth_key_file = {key}\n"));
    let mut ds = vec![Director::new(&tmp, 0, &cf), Director::new(&tmp, 1, &cf)];
    for d in &mut ds {
        d.start(&net);
    }
    wait_holder(&net, &ds, 0, 5);
    // 3 s of the master's adverts, as the backup receives them.
    let recording = tmp.file("adverts.hex");
    let rec = tmp.file("record.py");
    std::fs::write(&rec, record_adverts(DIRECTOR_PUBLIC[0], 3.0, &recording)).unwrap();
    net.exec(&ds[1].ns, &format!("/usr/bin/python3 {rec}"));
    let recorded = std::fs::read_to_string(&recording).unwrap().lines().count();
    assert!(recorded >= 20, "{recorded} adverts recorded");
    // The master goes; the backup takes over, then is killed and restarted.
    ds[0].signal("TERM");
    wait_holder(&net, &ds, 1, 5);
    ds[1].signal("KILL");
    let rep = tmp.file("replay.py");
    std::fs::write(&rep, replay_adverts(DIRECTOR_PUBLIC[1], &recording)).unwrap();
    let _replayer = net.spawn(&ds[0].ns, "/usr/bin/python3", &[rep.as_str()], &[]);
    ds[1].start(&net);
    // Within deadtime of its start, not after the 3 s the replay lasts.
    let t = Instant::now();
    wait_holder(&net, &ds, 1, 2);
    assert!(t.elapsed() < Duration::from_secs(2));
    wait_for("replays refused and logged", 5, || {
        ds[1].logs().contains("replays sequence")
    });
}

/// keepalived 2.2 as the other director of the virtual router, in both
/// roles: Fulcrum above it, then below it.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn fulcrum_and_keepalived_elect_each_other_by_priority() {
    keepalived_interop("fulcrum_and_keepalived_elect_each_other_by_priority", false);
}

/// The same over multicast (224.0.0.18), keepalived's default.
#[cfg_attr(
    not(netns_tests),
    ignore = "network-namespace test: run as root with FULCRUM_NETNS_TESTS=1 (.ci/run does)"
)]
#[test]
fn fulcrum_and_keepalived_elect_each_other_over_multicast() {
    keepalived_interop(
        "fulcrum_and_keepalived_elect_each_other_over_multicast",
        true,
    );
}

fn keepalived_interop(test: &str, multicast: bool) {
    if !try_sh("command -v keepalived").status.success() {
        fulcrum_testbed::missing_peer(test, "keepalived");
        return;
    }
    let net = network(if multicast { "km" } else { "ke" }, 2);
    let tmp = Scratch::new(if multicast {
        "ha-kd-mcast"
    } else {
        "ha-keepalived"
    });
    let peering = if multicast {
        String::new()
    } else {
        format!(
            " unicast_src_ip {}\n unicast_peer {{\n  {}\n }}\n",
            DIRECTOR_PUBLIC[1], DIRECTOR_PUBLIC[0]
        )
    };
    let fulcrum_extra = if multicast {
        "vrrp_version = 3\nvrrp_multicast = 1\n"
    } else {
        "vrrp_version = 3\n"
    };
    let keepalived = |prio: u8| {
        let conf = tmp.file("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n router_id kd\n vrrp_garp_master_delay 0\n enable_script_security\n}}\n\
                 vrrp_instance VI_1 {{\n state BACKUP\n interface eth0\n virtual_router_id 51\n priority {prio}\n advert_int 0.1\n\
                 version 3\n{peering}\
                 virtual_ipaddress {{\n  {VIP}/32 dev eth0 label eth0:1\n  {NAT_ROUTER}/32 dev eth1 label eth1:1\n }}\n}}\n"
            ),
        )
        .unwrap();
        let p = tmp.file("kd");
        let cmd = format!(
            "exec keepalived -n -l -D -P -f {conf} -p {p}.pid -r {p}-vrrp.pid -c {p}-chk.pid >> {p}.log 2>&1"
        );
        net.spawn("dir2", "sh", &["-c", &cmd], &[])
    };
    let kd_log = || std::fs::read_to_string(tmp.file("kd.log")).unwrap_or_default();
    let kd_has = |net: &FiveNode| net.addrs("dir2", "eth0").contains(&format!("{VIP}/32"));
    let fu_has = |net: &FiveNode| net.addrs("dir", "eth0").contains(&format!("{VIP}/32"));

    // Fulcrum is the primary (priority 200), keepalived 100.
    let mut fu = Director::new(&tmp, 0, &ha_config(2, fulcrum_extra));
    let mut kd = keepalived(100);
    fu.start(&net);
    wait_for("Fulcrum master, keepalived backup", 8, || {
        fu_has(&net) && !kd_has(&net)
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        fu_has(&net) && !kd_has(&net),
        "keepalived took over from a higher priority\n{}",
        kd_log()
    );
    let client = Client::start(&net, &tmp);
    client.expect_serving(10, "through Fulcrum");
    // Fulcrum stops: its priority-0 advert hands over to keepalived.
    fu.signal("TERM");
    wait_for("keepalived master", 3, || kd_has(&net) && !fu_has(&net));
    // Fulcrum returns and preempts keepalived.
    fu.start(&net);
    wait_for("Fulcrum master again", 5, || fu_has(&net) && !kd_has(&net));
    client.expect_serving(10, "through Fulcrum after preempting keepalived");
    assert!(kd_log().contains("Entering BACKUP STATE"), "{}", kd_log());

    // keepalived above Fulcrum (priority 250 vs 50).
    fu.signal("TERM");
    kd.signal_and_wait("TERM");
    std::fs::write(
        &fu.cf,
        format!(
            "priority = 50\n{}",
            std::fs::read_to_string(&fu.cf).unwrap()
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(&fu.state);
    let _kd = keepalived(250);
    wait_for("keepalived master", 8, || kd_has(&net));
    fu.start(&net);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        kd_has(&net) && !fu_has(&net),
        "Fulcrum took over from keepalived\n{}",
        fu.logs()
    );
    assert!(fu.status().contains("failover: BACKUP"), "{}", fu.status());
    assert_eq!(fu.states(), vec!["BACKUP"]);
}

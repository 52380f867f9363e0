//! `fulcrum import`: the example files Debian's keepalived and ldirectord
//! packages ship become lvs.cf that `fulcrum check` accepts, with a note for
//! each setting left out; an imported file runs and serves.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn import(file: &Path, out: &Path) -> (i32, String) {
    let o = Command::new(BIN)
        .arg("import")
        .arg(file)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn debians_keepalived_and_ldirectord_examples_import_and_validate() {
    let samples = Path::new("/usr/share/doc/keepalived/samples");
    let ld = Path::new("/usr/share/doc/ldirectord/examples/ldirectord.cf");
    if !samples.exists() {
        fulcrum_testbed::missing_peer("debians_examples_import", "keepalived (its samples)");
        return;
    }
    if !ld.exists() {
        fulcrum_testbed::missing_peer("debians_examples_import", "ldirectord (its example)");
        return;
    }
    let dir = TempDir::new("import-samples");
    let mut files: Vec<_> = std::fs::read_dir(samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keepalived.conf")
        })
        .collect();
    files.sort();
    files.push(ld.to_path_buf());
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let out = dir.0.join(format!(
            "{}.lvs.cf",
            f.file_name().unwrap().to_string_lossy()
        ));
        let (code, err) = import(f, &out);
        assert_eq!(code, 0, "{}: {err}", f.display());
        let check = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: the imported file does not validate:\n{}\n{}",
            f.display(),
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(&out).unwrap()
        );
    }
    // What the main sample says, said in lvs.cf; what it cannot, noted at
    // its line.
    let out = dir.0.join("sample.cf");
    let (_, err) = import(&samples.join("keepalived.conf.sample"), &out);
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "\taddress = 10.10.10.2\n",
        "\tport = 1358\n",
        "\tscheduler = rr\n",
        "\tforwarding = nat\n",
        "\tpersistent = 50\n",
        "\tprotocol = tcp\n",
        "\tsorry_server = 192.168.200.200:1358\n",
        "\tcheck_interval = 6\n",
        "\trequest = /testurl3/test.jsp\n",
        "\tdigest = 640205b7b0fc66c1ea91c463fac6334d\n",
        "\tchecktype = http_get\n",
        "smtp_server = 192.168.200.1\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let sample = samples.join("keepalived.conf.sample").display().to_string();
    assert!(
        err.contains(&format!(
            "{sample}:10: `router_id LVS_DEVEL`: no equivalent"
        )),
        "{err}"
    );
    assert!(
        err.contains("failover left out: this instance names no director addresses"),
        "{err}"
    );
    // ldirectord's example.
    let (_, err) = import(ld, &out);
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "\taddress = 192.168.6.240\n",
        "\t\taddress = 192.168.6.2\n",
        "\t\tforwarding = direct\n",
        "\tsorry_server = 127.0.0.1:80\n",
        "\trequest = /index.html\n",
        "\treceive = \"Test Page\"\n",
        "\tvirtualhost = www.x.y.z\n",
        "\tchecktype = http_get\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(err.contains("`autoreload`: no equivalent"), "{err}");
}

#[test]
fn an_imported_keepalived_conf_runs_and_keeps_its_weights() {
    let _rs = realservers(79, 2);
    let dir = TempDir::new("import-run-files");
    let kc = dir.0.join("keepalived.conf");
    std::fs::write(
        &kc,
        "! a director\nglobal_defs {\n   router_id TEST\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface lo\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  authentication {\n    auth_type PASS\n    auth_pass secret\n  }\n}\n\
         virtual_server 127.79.0.1 8080 {\n  delay_loop 1\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n\
         real_server 127.79.0.11 8081 {\n    weight 2\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n\
         real_server 127.79.0.12 8081 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n",
    )
    .unwrap();
    let out = dir.0.join("lvs.cf");
    let (code, err) = import(&kc, &out);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(":11: `authentication`: Fulcrum authenticates adverts with an HMAC key"),
        "{err}"
    );
    let cfg = std::fs::read_to_string(&out).unwrap();
    let d = Director::start("import-run", &cfg);
    let names: Vec<String> = (0..6).map(|_| get("127.79.0.1:8080")).collect();
    let c = counts(&names);
    assert_eq!(
        (c.get("rs1"), c.get("rs2")),
        (Some(&4), Some(&2)),
        "{names:?}"
    );
    assert!(d.ok("-L -n").contains("127.79.0.1:8080 wrr"));
}

#[test]
fn an_imported_ldirectord_cf_runs() {
    let _rs = realservers(80, 2);
    let dir = TempDir::new("import-ld-files");
    let lc = dir.0.join("ldirectord.cf");
    std::fs::write(
        &lc,
        "checktimeout=3\ncheckinterval=1\nautoreload=yes\nquiescent=no\n\
         virtual=127.80.0.1:8080\n\treal=127.80.0.11->127.80.0.12:8081 masq\n\tservice=http\n\tscheduler=rr\n\tprotocol=tcp\n\tchecktype=connect\n",
    )
    .unwrap();
    let out = dir.0.join("lvs.cf");
    let (code, err) = import(&lc, &out);
    assert_eq!(code, 0, "{err}");
    let cfg = std::fs::read_to_string(&out).unwrap();
    assert!(
        cfg.contains("server rs2 {\n\t\taddress = 127.80.0.12\n"),
        "{cfg}"
    );
    let _d = Director::start("import-ld", &cfg);
    let names: Vec<String> = (0..4).map(|_| get("127.80.0.1:8080")).collect();
    let c = counts(&names);
    assert_eq!(
        (c.get("rs1"), c.get("rs2")),
        (Some(&2), Some(&2)),
        "{names:?}"
    );
}

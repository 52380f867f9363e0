//! Wireshark's own IPVS sync dissector (tshark) reads what Fulcrum writes:
//! the counts, addresses, ports and timeouts it finds are the ones encoded,
//! and it reports nothing malformed.

use std::net::IpAddr;
use std::process::Command;

use fulcrum_sync::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pcap file (Ethernet) of UDP datagrams from 10.0.0.1 to the sync
/// group, port 8848 both ways.
fn pcap(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        // magic, version 2.4 (as two u16 in one word), zone, sigfigs,
        // snaplen, Ethernet.
        f.extend_from_slice(&w.to_le_bytes());
    }
    f[4..8].copy_from_slice(&[2, 0, 4, 0]);
    for (i, p) in payloads.iter().enumerate() {
        let mut frame = vec![
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x51, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
        ];
        let total = (20 + 8 + p.len()) as u16;
        let mut iph = vec![0x45, 0];
        iph.extend_from_slice(&total.to_be_bytes());
        iph.extend_from_slice(&[0, 0, 0x40, 0, 1, 17, 0, 0, 10, 0, 0, 1, 224, 0, 0, 81]);
        let sum: u32 = iph
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let c = !(((sum & 0xffff) + (sum >> 16)) as u16);
        iph[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&iph);
        frame.extend_from_slice(&PORT.to_be_bytes());
        frame.extend_from_slice(&PORT.to_be_bytes());
        frame.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(p);
        for w in [i as u32 + 1, 0, frame.len() as u32, frame.len() as u32] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(&frame);
    }
    f
}

#[test]
fn wiresharks_dissector_reads_fulcrums_messages_without_errors() {
    if Command::new("tshark").arg("--version").output().is_err() {
        return fulcrum_testbed::missing_peer("the tshark sync test", "tshark");
    }
    let v4: Vec<Conn> = (0..3)
        .map(|i| Conn {
            protocol: 6,
            flags: flags::INACTIVE,
            state: 3,
            client: (ip("198.51.100.7"), 40000 + i),
            virt: (ip("192.0.2.1"), 80),
            dest: (ip("10.0.0.2"), 8080),
            fwmark: 0,
            timeout: Some(60),
            seq: None,
            pe: None,
        })
        .collect();
    let v6 = Conn {
        protocol: 17,
        flags: 3,
        state: 0,
        client: (ip("2001:db8:2::7"), 5353),
        virt: (ip("2001:db8::1"), 53),
        dest: (ip("2001:db8:1::3"), 53),
        fwmark: 0,
        timeout: Some(300),
        seq: None,
        pe: None,
    };
    let mut msgs = encode(5, &v4, DEFAULT_MAXLEN).unwrap();
    msgs.extend(encode(5, std::slice::from_ref(&v6), DEFAULT_MAXLEN).unwrap());
    let v0 = Conn {
        timeout: None,
        ..v4[0].clone()
    };
    msgs.push(encode_v0(5, &[v0]).unwrap());
    let dir = std::env::temp_dir().join(format!("fulcrum-sync-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sync.pcap");
    std::fs::write(&file, pcap(&msgs)).unwrap();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "fields", "-E", "separator=;", "-E", "aggregator=,"])
        .args([
            "-e",
            "ipvs.conncount",
            "-e",
            "ipvs.syncid",
            "-e",
            "ipvs.cport",
        ])
        .args(["-e", "ipvs.caddr", "-e", "ipvs.caddr6", "-e", "ipvs.daddr6"])
        .args([
            "-e",
            "ipvs.timeout",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert",
        ])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0], "3;5;40000,40001,40002;198.51.100.7,198.51.100.7,198.51.100.7;;;60,60,60;;",
        "{text}"
    );
    assert_eq!(
        lines[1], "1;5;5353;;2001:db8:2::7;2001:db8:1::3;300;;",
        "{text}"
    );
    assert_eq!(lines[2], "1;5;40000;198.51.100.7;;;;;", "version 0: {text}");
}

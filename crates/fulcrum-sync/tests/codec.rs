//! The sync codec against the layout the kernel writes (`ip_vs_sync.c`,
//! as `reference` describes it), the kernel backup's reading rules, and
//! hostile bytes.

use std::net::IpAddr;

use fulcrum_sync::*;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A NAT TCP connection in ESTABLISHED, as a master syncs it.
fn tcp_conn() -> Conn {
    Conn {
        protocol: 6,
        flags: 0, // Masq, active
        state: 1,
        client: (ip("198.51.100.7"), 40000),
        virt: (ip("192.0.2.1"), 80),
        dest: (ip("10.0.0.2"), 8080),
        fwmark: 0,
        timeout: Some(900),
        seq: None,
        pe: None,
    }
}

#[test]
fn an_ipv4_entry_is_laid_out_as_the_kernel_writes_it() {
    let msgs = encode(7, &[tcp_conn()], DEFAULT_MAXLEN).unwrap();
    assert_eq!(msgs.len(), 1);
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        // header: reserved, syncid, size, nr_conns, version, spare
        0, 7, 0, 44, 1, 1, 0, 0,
        // type (IPv4), protocol, version 0 | size 36
        0, 6, 0, 36,
        0, 0, 0, 0,             // flags
        0, 1,                   // state ESTABLISHED
        0x9c, 0x40,             // cport 40000
        0, 80,                  // vport
        0x1f, 0x90,             // dport 8080
        0, 0, 0, 0,             // fwmark
        0, 0, 0x03, 0x84,       // timeout 900 s
        198, 51, 100, 7,        // caddr
        192, 0, 2, 1,           // vaddr
        10, 0, 0, 2,            // daddr
    ];
    assert_eq!(msgs[0], want);
    let d = decode(&msgs[0]).unwrap();
    assert_eq!((d.syncid, d.version, d.announced), (7, Version::V1, 1));
    assert_eq!(d.conns, vec![tcp_conn()]);
    assert_eq!((d.skipped.len(), d.stopped), (0, None));
}

#[test]
fn ipv6_entries_options_and_padding() {
    let v6 = Conn {
        protocol: 17,
        flags: flags::NOOUTPUT | 3, // direct routing
        state: 0,
        client: (ip("2001:db8:2::7"), 5353),
        virt: (ip("2001:db8::1"), 53),
        dest: (ip("2001:db8:1::3"), 53),
        fwmark: 0,
        timeout: Some(300),
        seq: None,
        pe: None,
    };
    let with_seq = Conn {
        flags: flags::IN_SEQ | flags::OUT_SEQ,
        seq: Some(SeqData {
            in_seq: Seq {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            out_seq: Seq {
                init_seq: 4,
                delta: 5,
                previous_delta: 6,
            },
        }),
        pe: Some(PeData {
            name: b"sip".to_vec(),
            data: b"call-id-42@example".to_vec(),
        }),
        ..tcp_conn()
    };
    let msgs = encode(
        0,
        &[with_seq.clone(), v6.clone(), tcp_conn()],
        DEFAULT_MAXLEN,
    )
    .unwrap();
    let m = &msgs[0];
    // 36 + 2+24 (sequence data) + 2+18 (PE data) + 2+3 (PE name) = 87.
    assert_eq!(u16::from_be_bytes([m[10], m[11]]), 87);
    assert_eq!(&m[8 + 36..8 + 38], &[1, 24], "sequence data first");
    assert_eq!(&m[8 + 62..8 + 64], &[2, 18], "then PE data");
    assert_eq!(&m[8 + 82..8 + 84], &[3, 3], "then the PE name");
    // The IPv6 entry starts on the next 4-byte boundary, zero-padded.
    assert_eq!(&m[95..96], &[0]);
    assert_eq!(m[96], 1, "IPv6 type bit");
    assert_eq!(u16::from_be_bytes([m[98], m[99]]), 72);
    assert_eq!(m.len(), 96 + 72 + 36);
    assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
    let d = decode(m).unwrap();
    assert_eq!(d.conns, vec![with_seq, v6, tcp_conn()]);
}

#[test]
fn flags_write_back_as_read_whatever_the_options() {
    // Found by the fuzz target: sequence flags without sequence data (a
    // kernel reads the option, not the flags) must not be "corrected".
    let c = Conn {
        flags: flags::IN_SEQ | flags::OUT_SEQ | flags::INACTIVE,
        ..tcp_conn()
    };
    let m = encode(0, std::slice::from_ref(&c), DEFAULT_MAXLEN).unwrap();
    assert_eq!(decode(&m[0]).unwrap().conns, vec![c]);
}

#[test]
fn messages_hold_forty_ipv4_entries_and_at_most_255() {
    let conns: Vec<Conn> = (0..41)
        .map(|i| Conn {
            client: (ip("198.51.100.7"), 1000 + i),
            ..tcp_conn()
        })
        .collect();
    let msgs = encode(1, &conns, DEFAULT_MAXLEN).unwrap();
    assert_eq!(msgs.iter().map(|m| m[4]).collect::<Vec<_>>(), [40, 1]);
    assert_eq!(msgs[0].len(), 8 + 40 * 36);
    let back: Vec<Conn> = msgs.iter().flat_map(|m| decode(m).unwrap().conns).collect();
    assert_eq!(back, conns);
    let many: Vec<Conn> = (0..300).map(|_| tcp_conn()).collect();
    let msgs = encode(1, &many, 65_000).unwrap();
    assert_eq!(msgs.iter().map(|m| m[4]).collect::<Vec<_>>(), [255, 45]);
    // An entry longer than a message can hold is refused.
    assert!(matches!(
        encode(1, &[tcp_conn()], 40),
        Err(EncodeError::TooLong { len: 36, .. })
    ));
    let mixed = Conn {
        dest: (ip("2001:db8::2"), 80),
        ..tcp_conn()
    };
    assert!(matches!(
        encode(1, &[mixed], DEFAULT_MAXLEN),
        Err(EncodeError::MixedFamilies(_))
    ));
}

#[test]
fn version_0_is_read_without_timeouts() {
    let c = Conn {
        timeout: None,
        flags: flags::INACTIVE,
        state: 3,
        ..tcp_conn()
    };
    let t = Conn {
        protocol: 6,
        flags: flags::TEMPLATE | flags::NO_CPORT,
        state: 0,
        client: (ip("198.51.100.0"), 0),
        virt: (ip("192.0.2.1"), 80),
        dest: (ip("10.0.0.2"), 8080),
        fwmark: 0,
        timeout: None,
        seq: None,
        pe: None,
    };
    let m = encode_v0(9, &[c.clone(), t.clone()]).unwrap();
    #[rustfmt::skip]
    assert_eq!(&m[..28], &[
        2, 9, 0, 52,                 // nr_conns, syncid, size
        0, 6, 0x9c, 0x40, 0, 80, 0x1f, 0x90,
        198, 51, 100, 7, 192, 0, 2, 1, 10, 0, 0, 2,
        0x01, 0x00, 0, 3,            // flags INACTIVE, state SYN_RECV
    ]);
    let d = decode(&m).unwrap();
    assert_eq!((d.version, d.syncid), (Version::V0, 9));
    assert_eq!(d.conns, vec![c, t]);
    // 61 entries fit the default length.
    let many: Vec<Conn> = (0..61)
        .map(|_| Conn {
            timeout: None,
            ..tcp_conn()
        })
        .collect();
    assert_eq!(encode_v0(0, &many).unwrap().len(), 4 + 61 * 24);
    const { assert!(4 + 61 * 24 <= DEFAULT_MAXLEN && 4 + 62 * 24 > DEFAULT_MAXLEN) };
}

#[test]
fn entries_the_backup_cannot_take_are_skipped_and_the_rest_read() {
    let bad_state = Conn {
        state: 11,
        ..tcp_conn()
    };
    let bad_proto = Conn {
        protocol: 1,
        ..tcp_conn()
    };
    let bad_template = Conn {
        flags: flags::TEMPLATE,
        state: 1,
        ..tcp_conn()
    };
    let msgs = encode(
        0,
        &[bad_state, tcp_conn(), bad_proto, bad_template],
        DEFAULT_MAXLEN,
    )
    .unwrap();
    let d = decode(&msgs[0]).unwrap();
    assert_eq!(d.conns, vec![tcp_conn()]);
    assert_eq!(
        d.skipped,
        vec![
            Skipped::State {
                protocol: 6,
                state: 11
            },
            Skipped::Protocol(1),
            Skipped::State {
                protocol: 6,
                state: 1
            },
        ]
    );
    // An unknown mandatory option skips its entry; one marked optional
    // (0x40) is ignored.
    let mut e = encode_entry(&tcp_conn()).unwrap();
    e.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    e[3] = 40;
    let mut o = encode_entry(&tcp_conn()).unwrap();
    o.extend_from_slice(&[9 | 0x40, 2, 0xaa, 0xbb]);
    o[3] = 40;
    let m = message(&[&e, &o]);
    let d = decode(&m).unwrap();
    assert_eq!(d.skipped, vec![Skipped::UnknownOption(9)]);
    assert_eq!(d.conns, vec![tcp_conn()]);
}

/// A version-1 message of these entries (each already 4-byte sized).
fn message(entries: &[&[u8]]) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0, entries.len() as u8, 1, 0, 0];
    for e in entries {
        m.resize((m.len() + 3) & !3, 0);
        m.extend_from_slice(e);
    }
    let n = m.len() as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
    m
}

#[test]
fn malformed_messages_stop_where_the_kernel_stops() {
    let good = encode(0, &[tcp_conn(), tcp_conn()], DEFAULT_MAXLEN).unwrap();
    let m = &good[0];
    // The header's size must be the length.
    let mut short = m.clone();
    short.pop();
    assert_eq!(
        decode(&short),
        Err(Stopped::SizeMismatch { said: 80, len: 79 })
    );
    assert_eq!(decode(&[0, 1]), Err(Stopped::Short(2)));
    // The second entry's size runs past the end: the first stands.
    let mut long = m.clone();
    long[8 + 36 + 3] = 40;
    let d = decode(&long).unwrap();
    assert_eq!(
        (d.conns.len(), d.stopped),
        (1, Some(Stopped::Truncated { at: 1 }))
    );
    // An entry version other than 0.
    let mut ver = m.clone();
    ver[8 + 2] = 0x10;
    assert_eq!(
        decode(&ver).unwrap().stopped,
        Some(Stopped::EntryVersion { at: 0, version: 1 })
    );
    // More entries announced than there are.
    let mut more = m.clone();
    more[4] = 3;
    let d = decode(&more).unwrap();
    assert_eq!(
        (d.conns.len(), d.stopped),
        (2, Some(Stopped::Truncated { at: 2 }))
    );
    // Options: a zero length, a repeated sequence option, a wrong size.
    for opts in [&[9u8, 0, 0, 0][..], &[1, 24, 0, 0][..], &[2, 255, 0, 0][..]] {
        let mut e = encode_entry(&tcp_conn()).unwrap();
        e.extend_from_slice(opts);
        e[3] = 40;
        let d = decode(&message(&[&e])).unwrap();
        assert_eq!(d.stopped, Some(Stopped::Options { at: 0 }), "{opts:?}");
    }
}

fn arb_addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

fn arb_seq() -> impl Strategy<Value = Seq> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Seq {
        init_seq: a,
        delta: b,
        previous_delta: c,
    })
}

prop_compose! {
    fn arb_conn()(v6 in any::<bool>())(
        proto in prop_oneof![Just(6u8), Just(17), Just(132)],
        template in any::<bool>(),
        state in 0u16..11,
        fwd in 0u32..4,
        inactive in any::<bool>(),
        c in arb_addr(v6), v in arb_addr(v6), d in arb_addr(v6),
        ports in any::<(u16, u16, u16)>(),
        fwmark in any::<u32>(),
        timeout in any::<u32>(),
        seq in proptest::option::of((arb_seq(), arb_seq())),
        pe in proptest::option::of((proptest::collection::vec(any::<u8>(), 1..=16), proptest::collection::vec(any::<u8>(), 1..=255))),
    ) -> Conn {
        let state = if template { 0 } else { state % fulcrum_sync::states_of(proto).unwrap() };
        let mut flags = fwd | if inactive { flags::INACTIVE } else { 0 };
        if template { flags |= flags::TEMPLATE; }
        if seq.is_some() { flags |= flags::IN_SEQ; }
        Conn {
            protocol: proto,
            flags,
            state,
            client: (c, ports.0),
            virt: (v, ports.1),
            dest: (d, ports.2),
            fwmark,
            timeout: Some(timeout),
            seq: seq.map(|(i, o)| SeqData { in_seq: i, out_seq: o }),
            pe: pe.map(|(name, data)| PeData { name, data }),
        }
    }
}

proptest! {
    #[test]
    fn what_is_written_reads_back_the_same(
        conns in proptest::collection::vec(arb_conn(), 0..120),
        syncid in any::<u8>(),
        maxlen in 400usize..9000,
    ) {
        let msgs = encode(syncid, &conns, maxlen).unwrap();
        let mut back = Vec::new();
        for m in &msgs {
            prop_assert!(m.len() <= maxlen);
            let d = decode(m).unwrap();
            prop_assert_eq!(d.syncid, syncid);
            prop_assert_eq!(d.announced, d.conns.len());
            prop_assert!(d.skipped.is_empty() && d.stopped.is_none());
            back.extend(d.conns);
        }
        prop_assert_eq!(back, conns);
    }

    #[test]
    fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(d) = decode(&bytes) {
            prop_assert!(d.conns.len() + d.skipped.len() <= d.announced);
        }
    }

    #[test]
    fn damaged_messages_are_read_without_a_panic(
        conns in proptest::collection::vec(arb_conn(), 1..20),
        hits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut m = encode(0, &conns, 9000).unwrap().remove(0);
        for (at, b) in hits {
            let n = m.len();
            m[at % n] = b;
        }
        m.truncate(1 + cut % m.len());
        // With the size fixed up, the damage reaches the entries.
        if m.len() >= 4 {
            let n = m.len() as u16;
            m[2..4].copy_from_slice(&n.to_be_bytes());
        }
        if let Ok(d) = decode(&m) {
            prop_assert!(d.conns.len() + d.skipped.len() <= d.announced);
        }
    }
}

//! The kernel's connection table as `/proc/net/ip_vs_conn` shows it, read
//! the way `ipvsadm -L -c` reads it: hexadecimal IPv4 addresses and ports,
//! IPv6 addresses written out, the state name, the seconds left, and the
//! persistence engine's name and data when there is one.

use std::net::{IpAddr, Ipv4Addr};

/// Where the kernel shows its connections (of this network namespace).
pub const PROC_PATH: &str = "/proc/net/ip_vs_conn";

pub use fulcrum_core::conn::ConnEntry;

fn addr(word: &str) -> Option<IpAddr> {
    if word.contains(':') {
        word.parse().ok()
    } else if word.len() == 8 {
        u32::from_str_radix(word, 16)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
    } else {
        None
    }
}

fn port(word: &str) -> Option<u16> {
    u16::from_str_radix(word, 16).ok()
}

/// One line; `None` for the header and anything that does not read.
fn line(l: &str) -> Option<ConnEntry> {
    let w: Vec<&str> = l.split_ascii_whitespace().collect();
    if !(w.len() == 9 || w.len() == 11) {
        return None;
    }
    Some(ConnEntry {
        proto: w[0].to_string(),
        caddr: addr(w[1])?,
        cport: port(w[2])?,
        vaddr: addr(w[3])?,
        vport: port(w[4])?,
        daddr: addr(w[5])?,
        dport: port(w[6])?,
        state: w[7].to_string(),
        expires: w[8].parse().ok()?,
        pe: (w.len() == 11).then(|| (w[9].to_string(), w[10].to_string())),
    })
}

/// Every connection in `text` (the file's contents), in its order; lines
/// that do not read are skipped, as ipvsadm skips them.
pub fn parse(text: &str) -> Vec<ConnEntry> {
    text.lines().skip(1).filter_map(line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_ipvsadm_reads_them() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
                    TCP 0A000002 8C1A 0A000064 0050 C0A80101 0050 TIME_WAIT       119\n\
                    UDP 0A000002 D431 0A000064 0035 C0A80102 0035 UDP             299\n\
                    UDP 0A000002 13C4 0A000064 13C4 C0A80101 13C4 UDP             170 sip 6162636465\n\
                    TCP 2001:0db8:0000:0000:0000:0000:0000:0002 C350 2001:0db8:0000:0000:0000:0000:0000:0064 01BB 2001:0db8:0000:0000:0000:0000:0001:0001 01BB ESTABLISHED     899\n\
                    TCP zz 8C1A 0A000064 0050 C0A80101 0050 TIME_WAIT 119\n\
                    TCP 0A000002\n";
        let c = parse(text);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].caddr, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((c[0].cport, c[0].vport, c[0].dport), (0x8C1A, 80, 80));
        assert_eq!(c[0].daddr, "192.168.1.1".parse::<IpAddr>().unwrap());
        assert_eq!((c[0].state.as_str(), c[0].expires), ("TIME_WAIT", 119));
        assert_eq!(c[2].pe, Some(("sip".into(), "6162636465".into())));
        assert_eq!(c[3].vaddr, "2001:db8::64".parse::<IpAddr>().unwrap());
        assert_eq!(c[3].vport, 443);
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_without_panic(text in ".{0,300}") {
            let _ = parse(&text);
        }
    }
}

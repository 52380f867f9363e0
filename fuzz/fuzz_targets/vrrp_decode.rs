//! A VRRP advert from arbitrary bytes, over IPv4 and IPv6: never panics, and
//! whatever decodes encodes back to an advert that decodes the same.
#![no_main]

use std::net::IpAddr;

use fulcrum_ha::vrrp::Advert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs: [(IpAddr, IpAddr); 2] = [
        ([10, 0, 0, 1].into(), [10, 0, 0, 2].into()),
        (
            "fe80::1".parse().expect("an address"),
            "fe80::2".parse().expect("an address"),
        ),
    ];
    for (src, dst) in pairs {
        if let Ok(a) = Advert::decode(data, src, dst)
            && let Ok(bytes) = a.encode(src, dst)
        {
            assert_eq!(Advert::decode(&bytes, src, dst).ok(), Some(a));
        }
    }
});

//! Netlink replies from arbitrary bytes: framing, attributes and the IPVS
//! decoders (services, real servers, sync daemons) never panic; nor does
//! reading the kernel's connection table (`/proc/net/ip_vs_conn`) as text.
#![no_main]

use fulcrum_core::Family;
use fulcrum_ipvs::{msg, nl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for m in nl::messages(data).flatten() {
        let _ = m.error_code();
        if let Ok((_, body)) = m.genl() {
            let _ = msg::decode_service(body);
            let _ = msg::decode_dest(body, Family::V4);
            let _ = msg::decode_dest(body, Family::V6);
            let _ = msg::decode_info(body);
            let _ = msg::decode_timeouts(body);
            let _ = msg::decode_daemon(body);
        }
    }
    let _ = msg::decode_service(data);
    let _ = fulcrum_ipvs::conns::parse(&String::from_utf8_lossy(data));
});

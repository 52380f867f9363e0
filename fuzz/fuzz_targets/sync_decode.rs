//! Reading an IPVS sync message from arbitrary bytes: never panics, never
//! reports more connections than the message announced, and what it read
//! writes back to messages that read the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = fulcrum_sync::decode(data) {
        assert!(d.conns.len() + d.skipped.len() <= d.announced);
        if d.version == fulcrum_sync::Version::V1 {
            let again = fulcrum_sync::encode(d.syncid, &d.conns, 65_535).unwrap();
            let back: Vec<_> = again
                .iter()
                .flat_map(|m| fulcrum_sync::decode(m).unwrap().conns)
                .collect();
            assert_eq!(back, d.conns);
        }
    }
});

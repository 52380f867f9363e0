//! Hellos and sync frames from arbitrary bytes: never panic; a hello that
//! decodes encodes to the same bytes.
#![no_main]

use fulcrum_ha::cluster::{Hello, SyncPush, SyncReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Hello::decode(data) {
        assert_eq!(&h.encode()[..], data);
    }
    let _ = SyncPush::frame_len(data);
    if let Ok(p) = SyncPush::decode(data) {
        assert_eq!(p.encode().ok().as_deref(), Some(data));
    }
    let _ = SyncReply::decode(data);
});

//! Opening an authenticated advert from arbitrary bytes: never panics, and
//! nothing forged opens.
#![no_main]

use fulcrum_ha::auth::Authenticator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = Authenticator::new(b"a fuzzing key of some length", 1);
    let src = [10, 0, 0, 1].into();
    let dst = [10, 0, 0, 2].into();
    assert!(a.open(src, dst, data).is_err());
    // A sealed copy opens once, then is a replay.
    let sealed = a.seal(src, dst, data);
    assert_eq!(a.open(src, dst, &sealed).ok(), Some(data));
    assert!(a.open(src, dst, &sealed).is_err());
});

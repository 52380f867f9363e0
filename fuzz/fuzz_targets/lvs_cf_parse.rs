//! lvs.cf from arbitrary text: never panics, and a file without errors
//! writes back to one that parses to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = fulcrum_config::parse(text);
    let _ = parsed.render("fuzz.cf", text);
    if !parsed.has_errors() {
        let again = fulcrum_config::parse(&fulcrum_config::write(&parsed.config));
        assert!(!again.has_errors());
        assert_eq!(again.config, parsed.config);
    }
});

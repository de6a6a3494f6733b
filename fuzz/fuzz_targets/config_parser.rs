//! Any config file text: loading must never panic, and an error must name a key path or a position.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Err(e) = homarus_config::parse_str(text, "fuzz.json", &env) {
        let msg = e.to_string();
        assert!(msg.contains("fuzz.json") || e.key().is_some(), "error names neither key nor file: {msg}");
    }
});

//! Any text a client may send: the frame decoder and the connect-params validator must never panic,
//! and every rejection must be a non-empty, located error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match homarus_protocol::parse_client_frame(text) {
        Ok(frame) => {
            if let Err(e) = homarus_protocol::parse_connect_params(frame.params.as_ref()) {
                assert!(e.starts_with("at /"), "unlocated connect error: {e}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

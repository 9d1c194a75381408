//! One websocket frame of bridge JSON, as bytes and as text, decoded into an
//! Event and written back out as JSON. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirius::protocol::events::{decode_bytes, decode_text};

fuzz_target!(|data: &[u8]| {
    let event = decode_bytes(data);
    let _ = event.to_json();
    if let Ok(s) = std::str::from_utf8(data) {
        let event = decode_text(s);
        let _ = event.to_json();
    }
});

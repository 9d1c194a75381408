//! Binary printer payloads and device events. Must never panic; a payload
//! that decodes must re-encode to bytes that decode to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirius::protocol::device::decode_device_event;
use sirius::protocol::payload::{decode_payload, encode_payload};

fuzz_target!(|data: &[u8]| {
    let _ = decode_device_event(data);

    if let Ok(decoded) = decode_payload(data, 384) {
        let encoded = encode_payload(decoded.command, decoded.file_id, &decoded.pages)
            .expect("a decoded payload has the right number of images");
        let again = decode_payload(&encoded, 384).expect("a re-encoded payload decodes");
        assert_eq!(again, decoded, "payload round trip changed the decoded value");
    }
});

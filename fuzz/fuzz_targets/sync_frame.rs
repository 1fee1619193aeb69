//! Fuzz target: the automerge-repo protocol frame decoder (`alliance_core::sync::protocol`).
//! Any bytes decode or fail; a decoded message survives an encode-decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alliance_tests::fuzz_inputs::decode_frame(data);
});

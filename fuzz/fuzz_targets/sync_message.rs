//! Fuzz target: sync messages received by a store (`Alliance::receive_sync_message`). The
//! input is a plan id and a stream of messages (seeds: a counselor's plan, then a client's
//! edits); each message is applied or refused, and a refused one changes nothing stored.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alliance_tests::fuzz_inputs::receive_input(data);
});

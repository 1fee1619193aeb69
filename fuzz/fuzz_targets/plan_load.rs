//! Fuzz target: loading a saved plan document (`PlanDoc::load`) and reading it whole (plan,
//! summary, history, devices). Any bytes load and read, or fail with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alliance_tests::fuzz_inputs::load_plan_document(data);
});

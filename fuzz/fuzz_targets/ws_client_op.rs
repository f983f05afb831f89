//! Fuzz target `ws_client_op`: see checks::ws_client_op and docs/fuzzing.md.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ws_client_op(data));

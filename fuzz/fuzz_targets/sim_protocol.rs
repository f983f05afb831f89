//! Fuzz target `sim_protocol`: see checks::sim_protocol and docs/fuzzing.md.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sim_protocol(data));

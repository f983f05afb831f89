//! Fuzz target `phone`: see checks::phone and docs/fuzzing.md.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::phone(data));

//! Fuzz target `template`: see checks::template and docs/fuzzing.md.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::template(data));

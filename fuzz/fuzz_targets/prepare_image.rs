//! Fuzz target `prepare_image`: see checks::prepare_image and docs/fuzzing.md.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::prepare_image(data));

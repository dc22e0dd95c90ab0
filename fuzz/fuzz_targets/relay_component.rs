#![no_main]

#[path = "../relay_checks.rs"]
mod relay_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_checks::relay_component(data));

#![no_main]

#[path = "../link_checks.rs"]
mod link_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| link_checks::link_invite(data));

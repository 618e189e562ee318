#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ossup_fuzz_targets::mock_bodies(data));

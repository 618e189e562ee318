#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ossup_fuzz_targets::client_xml(data));

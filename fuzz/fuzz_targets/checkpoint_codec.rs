#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ossup_fuzz_targets::checkpoint_codec(data));

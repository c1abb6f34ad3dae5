//! cargo fuzz target `webhook`: see `gitmoxi_fuzz::webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitmoxi_fuzz::webhook(data));

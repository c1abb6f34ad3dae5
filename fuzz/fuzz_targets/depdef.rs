//! cargo fuzz target `depdef`: see `gitmoxi_fuzz::depdef`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitmoxi_fuzz::depdef(data));

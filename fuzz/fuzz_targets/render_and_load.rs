//! cargo fuzz target `render_and_load`: see `gitmoxi_fuzz::render_and_load`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitmoxi_fuzz::render_and_load(data));

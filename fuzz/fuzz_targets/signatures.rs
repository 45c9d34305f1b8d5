#![no_main]
//! Properties: `allot_server::fuzzing::signatures`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::signatures(data));

#![no_main]
//! Properties: `allot_server::fuzzing::connect_codec`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::connect_codec(data));

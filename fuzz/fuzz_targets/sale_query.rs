#![no_main]
//! Properties: `allot_server::fuzzing::sale_query`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::sale_query(data));

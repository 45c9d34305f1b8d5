#![no_main]
//! Properties: `allot_server::fuzzing::domain_values`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::domain_values(data));

#![no_main]
//! Properties: `allot_server::fuzzing::idempotency_key`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::idempotency_key(data));

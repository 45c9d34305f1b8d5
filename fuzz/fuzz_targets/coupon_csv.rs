#![no_main]
//! Properties: `allot_server::fuzzing::coupon_csv`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| allot_server::fuzzing::coupon_csv(data));

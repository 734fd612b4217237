#![no_main]
//! Arbitrary bytes through every decoder a request to testenv meets.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kubeflex_testenv::http::exercise_decoders(data);
});

//! Streaming, whole-frame (no limit) and one-shot decoding agree with a
//! model of the framing rules, under a random terminator schedule and random
//! read splits, and every input byte comes out exactly once. See
//! `asynchat_fuzz::Case::parse` for how the bytes are read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| asynchat_fuzz::check_agreement(data));

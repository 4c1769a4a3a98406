//! A `Chat` over an in-memory IO that cuts reads and writes, goes `Pending`
//! and fails where the fuzzer says, driven by a reading and a writing task
//! and by operations between polls (producers of every kind, terminators,
//! streaming, discards, close-when-done, upgrades, parts); checked against
//! a model of the frames, the output and the end of the stream, with a poll
//! budget and a check for lost wake-ups. See `asynchat_fuzz::chat`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| asynchat_fuzz::chat::check_chat(data));

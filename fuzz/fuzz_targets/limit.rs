//! Whole-frame mode with a small `max_frame_length` (0..=64): each overlong
//! message gives one `FrameTooLong`, is skipped, and decoding resumes with
//! the next messages intact, however the input is split; the buffer never
//! holds more than the limit plus a delimiter's length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| asynchat_fuzz::check_limit(data));

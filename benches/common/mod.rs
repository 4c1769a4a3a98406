//! What the bench files share: CPU-time clocks, read with `clock_gettime`.

// Each bench file uses one of the clocks.
#![allow(dead_code)]

use std::time::Duration;

/// The CPU time of the calling thread.
pub const THREAD_CPU: i32 = 3;

/// The CPU time of the whole process, all threads, user and system.
pub const PROCESS_CPU: i32 = 2;

/// The time of a `clock_gettime` clock ([`THREAD_CPU`], [`PROCESS_CPU`]);
/// `None` where it cannot be read.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn cpu_time(clock: i32) -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    let mut time = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: `time` is a valid `struct timespec` (64-bit Linux) to write to.
    let result = unsafe { clock_gettime(clock, &mut time) };
    (result == 0).then(|| Duration::new(time.seconds as u64, time.nanoseconds as u32))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn cpu_time(_clock: i32) -> Option<Duration> {
    None
}

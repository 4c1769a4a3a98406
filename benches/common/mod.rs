//! What the bench files share: CPU-time clocks, read with `clock_gettime`,
//! and paired rounds.

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

/// Whether this run takes paired rounds, and of which rows: `Some(filter)`
/// under `cargo bench` (which passes `--bench`), not under `--list` or
/// `cargo test`. The filter is criterion's (its first argument that is
/// neither a flag nor a flag's value); a paired row is selected when its
/// group's name contains it (criterion matches a regular expression).
pub fn paired_filter() -> Option<Option<String>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let benching = arguments.iter().any(|argument| argument == "--bench")
        && !arguments.iter().any(|argument| argument == "--list");
    benching.then(|| criterion_filter(&arguments).map(str::to_owned))
}

/// Whether the paired row `group` is selected by `filter` (see
/// [`paired_filter`]).
pub fn selected(filter: Option<&str>, group: &str) -> bool {
    filter.map_or(true, |filter| group.contains(filter))
}

/// The number of paired rounds a row takes: `ASYNCHAT_PAIRED_ROUNDS`, 21
/// unless set, or one under `--test` (criterion's check that each bench
/// runs); `None` for 0 (no paired rounds).
pub fn paired_rounds() -> Option<usize> {
    let testing = std::env::args().any(|argument| argument == "--test");
    let rounds = match std::env::var("ASYNCHAT_PAIRED_ROUNDS") {
        _ if testing => 1,
        Ok(rounds) => rounds
            .parse()
            .expect("ASYNCHAT_PAIRED_ROUNDS: a number of rounds"),
        Err(_) => 21,
    };
    (rounds > 0).then_some(rounds)
}

/// Paired rounds: each round times ours then the contender, or the other
/// way round (in turns), back to back; one ratio a round, the contender's
/// time over ours, after one round not counted, to warm up. Load that
/// comes and goes on a shared machine hits both halves of a round alike,
/// where criterion measures one contender for seconds, then the other.
pub fn paired_ratios(
    rounds: usize,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) -> Vec<f64> {
    ours();
    theirs();
    (0..rounds)
        .map(|round| {
            let (our_time, their_time) = if round % 2 == 0 {
                let our_time = ours();
                (our_time, theirs())
            } else {
                let their_time = theirs();
                (ours(), their_time)
            };
            their_time.as_secs_f64() / our_time.as_secs_f64()
        })
        .collect()
}

/// Prints a paired row for `scripts/bench-table.sh`: `paired <group> <ours>
/// <contender> <median> <lowest> <highest> <rounds>`, of the rounds'
/// ratios.
pub fn report(group: &str, ours: &str, contender: &str, mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    let median = if ratios.len() % 2 == 0 {
        (ratios[middle - 1] + ratios[middle]) / 2.0
    } else {
        ratios[middle]
    };
    let (lowest, highest) = (ratios[0], ratios[ratios.len() - 1]);
    println!(
        "paired {group} {ours} {contender} {median:.3} {lowest:.3} {highest:.3} {}",
        ratios.len()
    );
}

/// Criterion's filter: the first argument that is neither a flag nor a
/// flag's value. Paired rows are selected by a substring of their group's
/// name (criterion matches a regular expression).
fn criterion_filter(arguments: &[String]) -> Option<&str> {
    const TAKING_A_VALUE: [&str; 16] = [
        "--baseline",
        "--color",
        "--confidence-level",
        "--format",
        "--load-baseline",
        "--logfile",
        "--measurement-time",
        "--noise-threshold",
        "--nresamples",
        "--output-format",
        "--plotting-backend",
        "--profile-time",
        "--sample-size",
        "--save-baseline",
        "--significance-level",
        "--warm-up-time",
    ];
    let mut arguments = arguments.iter();
    while let Some(argument) = arguments.next() {
        if TAKING_A_VALUE.contains(&argument.as_str()) {
            arguments.next();
        } else if !argument.starts_with('-') {
            return Some(argument);
        }
    }
    None
}

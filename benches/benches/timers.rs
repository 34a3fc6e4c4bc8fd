//! What `aiopoll_std::Timer::arm` and `disarm` cost with many timers armed,
//! and how often arming wakes the timer thread.
//!
//! `cargo bench -p aiopoll-benches --bench timers` (or `cargo xtask
//! server-bench`, which records the table in BENCHMARKS.md) prints one
//! Markdown table: for 1, 1,000, 10,000 and 100,000 armed timers, the
//! nanoseconds of one re-arm of a random armed timer (to a new deadline
//! between one and two hours away, so nothing expires during the run), of
//! one disarm, and how many times the timer thread woke during 20,000
//! re-arms (its voluntary context switches, read from
//! `/proc/self/task/*/status`: each is one wait on its condition variable
//! that ended).
//!
//! `AIOPOLL_TIMER_SIZES=1,1000` picks other sizes.

use std::time::{Duration, Instant};

use aiopoll_std::Timer;

/// Re-arms (and disarms) measured per size.
const OPERATIONS: usize = 20_000;

/// A small deterministic generator (xorshift), so every run arms the same
/// deadlines.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A deadline between one and two hours away, to the microsecond.
    fn far(&mut self) -> Duration {
        Duration::from_secs(3600) + Duration::from_micros(self.next() % 3_600_000_000)
    }
}

/// The timer thread's voluntary context switches so far (`None` where
/// `/proc` does not say, or no timer thread runs).
fn timer_thread_switches() -> Option<u64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "aiopoll-timer" {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        return status.lines().find_map(|line| {
            line.strip_prefix("voluntary_ctxt_switches:")?
                .trim()
                .parse()
                .ok()
        });
    }
    None
}

struct Row {
    armed: usize,
    arm_ns: f64,
    disarm_ns: f64,
    wakes: Option<u64>,
}

fn measure(armed: usize, random: &mut Random) -> Row {
    let timers: Vec<Timer> = (0..armed).map(|_| Timer::new()).collect();
    for timer in &timers {
        timer.arm(random.far()).expect("the timer thread starts");
    }
    // Which timer each operation touches, drawn before the clock starts.
    let picks: Vec<usize> = (0..OPERATIONS)
        .map(|_| (random.next() % armed as u64) as usize)
        .collect();
    let afters: Vec<Duration> = (0..OPERATIONS).map(|_| random.far()).collect();

    // The thread names itself once it runs: give it up to a second to
    // show up under its name.
    for _ in 0..1000 {
        if timer_thread_switches().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let switches_before = timer_thread_switches();
    let started = Instant::now();
    for (pick, after) in picks.iter().zip(&afters) {
        timers[*pick].arm(*after).expect("the timer thread runs");
    }
    let arm_ns = started.elapsed().as_nanos() as f64 / OPERATIONS as f64;
    let switches_after = timer_thread_switches();

    // Disarm, then re-arm outside the clock, so the count stays `armed`.
    let mut disarm_total = Duration::ZERO;
    for (pick, after) in picks.iter().zip(&afters) {
        let started = Instant::now();
        timers[*pick].disarm();
        disarm_total += started.elapsed();
        timers[*pick].arm(*after).expect("the timer thread runs");
    }
    let disarm_ns = disarm_total.as_nanos() as f64 / OPERATIONS as f64;
    Row {
        armed,
        arm_ns,
        disarm_ns,
        wakes: switches_before
            .zip(switches_after)
            .map(|(before, after)| after.saturating_sub(before)),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and wants a quick run.
    let sizes: Vec<usize> = std::env::var("AIOPOLL_TIMER_SIZES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|size| size.trim().parse().ok())
                .filter(|size| *size > 0)
                .collect()
        })
        .unwrap_or_else(|| {
            if std::env::args().any(|arg| arg == "--bench") {
                vec![1, 1_000, 10_000, 100_000]
            } else {
                vec![1, 100]
            }
        });
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    println!(
        "| timers armed | ns per arm (re-arm of a random armed timer) | ns per disarm | timer-thread wakes in {OPERATIONS} arms |"
    );
    println!("|---:|---:|---:|---:|");
    for size in sizes {
        let row = measure(size, &mut random);
        let wakes = row
            .wakes
            .map_or_else(|| "-".to_string(), |wakes| wakes.to_string());
        println!(
            "| {} | {:.0} | {:.0} | {wakes} |",
            row.armed, row.arm_ns, row.disarm_ns
        );
    }
}

//! aiopoll and its peers, each case measured side by side in one run.
//!
//! `cargo bench -p aiopoll-benches --bench peers` runs every case under
//! criterion. The same binary has two more modes, chosen by environment
//! variables, which `cargo xtask bench` uses:
//!
//! - `AIOPOLL_BENCH_LIST=1`: print one line per case, tab-separated:
//!   `group  peer  operations-per-iteration  user|kernel|threads  available|reason  note`;
//! - `AIOPOLL_BENCH_COUNT=<group>/<peer>` with `AIOPOLL_BENCH_ITERS=<k>`: set
//!   the case up and run `k` iterations of it, nothing else (for
//!   `valgrind --tool=callgrind`: two runs with different `k` give the
//!   instructions of one iteration, setup and teardown cancelling out).

mod cases;
#[cfg(target_os = "linux")]
mod linux_aio;
mod scale;
mod threads;
#[cfg(target_os = "linux")]
mod uring;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion, SamplingMode, Throughput};

use cases::{Kind, Runner, CASES};

/// Runs each iteration under criterion's timer.
struct Timed<'b, 'c> {
    bencher: &'b mut Bencher<'c>,
}

impl Runner for Timed<'_, '_> {
    fn run<T>(&mut self, op: impl FnMut() -> T) {
        self.bencher.iter(op);
    }

    fn run_part<S, T>(
        &mut self,
        state: &mut S,
        mut before: impl FnMut(&mut S),
        mut part: impl FnMut(&mut S) -> T,
        mut after: impl FnMut(&mut S),
    ) {
        self.bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                before(state);
                let start = Instant::now();
                black_box(measured_part(state, &mut part));
                total += start.elapsed();
                after(state);
            }
            total
        });
    }
}

/// The measured part of a [`Kind::UserPart`](cases::Kind::UserPart) case:
/// out of line, so that callgrind can collect inside it only
/// (`--toggle-collect`).
#[inline(never)]
pub fn measured_part<S, T>(state: &mut S, part: &mut impl FnMut(&mut S) -> T) -> T {
    part(state)
}

/// Runs a fixed number of iterations (for instruction counting).
struct Counted {
    iterations: u64,
}

impl Runner for Counted {
    fn run<T>(&mut self, mut op: impl FnMut() -> T) {
        for _ in 0..self.iterations {
            black_box(op());
        }
    }

    fn run_part<S, T>(
        &mut self,
        state: &mut S,
        mut before: impl FnMut(&mut S),
        mut part: impl FnMut(&mut S) -> T,
        mut after: impl FnMut(&mut S),
    ) {
        for _ in 0..self.iterations {
            before(state);
            black_box(measured_part(state, &mut part));
            after(state);
        }
    }
}

fn criterion_main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut groups: Vec<&str> = CASES.iter().map(|case| case.group).collect();
    groups.dedup();
    for name in groups {
        let mut group = criterion.benchmark_group(name);
        if CASES
            .iter()
            .any(|case| case.group == name && matches!(case.kind, Kind::Threads))
        {
            // More threads than cores (and other programs on the machine):
            // a sample during which the measured thread was descheduled
            // reads as long as the time slice it lost. Criterion's default
            // samples grow to tens of milliseconds, so that most of them
            // contained a lost slice and the median swung with the
            // machine's load (0.1 to 2.9 us for one case). A thousand
            // samples of equal length, about a millisecond each (one second
            // of measurement, whatever the command line says), leave the
            // median to the samples in which every thread ran, as long as
            // most of them did: 3 ms samples swung more, and a case whose
            // threads outnumber the cores still swings in runs where the
            // scheduler hands out slices of about a millisecond. (Fewer
            // bootstrap resamples than the default 100,000: the median is
            // the figure read, and a thousand samples would otherwise take
            // longer to analyse than to measure.)
            group
                .sample_size(1000)
                .sampling_mode(SamplingMode::Flat)
                .measurement_time(Duration::from_secs(1))
                .nresamples(10_000);
        }
        for case in CASES.iter().filter(|case| case.group == name) {
            if let Err(reason) = case.available() {
                println!("{name}/{}: unavailable here: {reason}", case.peer);
                continue;
            }
            group.throughput(Throughput::Elements(case.per));
            group.bench_function(case.peer, |bencher| {
                let mut runner = Timed { bencher };
                if let Err(reason) = case.run(&mut runner) {
                    panic!("{name}/{}: {reason}", case.peer);
                }
            });
        }
        group.finish();
    }
    criterion.final_summary();
}

fn main() -> ExitCode {
    if std::env::var_os("AIOPOLL_BENCH_LIST").is_some() {
        for case in CASES {
            let status = match case.available() {
                Ok(()) => "available".to_string(),
                Err(reason) => reason.replace(['\t', '\n'], " "),
            };
            println!(
                "{}\t{}\t{}\t{}\t{status}\t{}",
                case.group,
                case.peer,
                case.per,
                case.kind.name(),
                case.note()
            );
        }
        return ExitCode::SUCCESS;
    }
    if let Ok(name) = std::env::var("AIOPOLL_BENCH_COUNT") {
        let iterations = std::env::var("AIOPOLL_BENCH_ITERS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(1000);
        let Some(case) = CASES
            .iter()
            .find(|case| format!("{}/{}", case.group, case.peer) == name)
        else {
            eprintln!("no case `{name}`: AIOPOLL_BENCH_LIST=1 lists them");
            return ExitCode::FAILURE;
        };
        return match case.run(&mut Counted { iterations }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("{name}: {reason}");
                ExitCode::FAILURE
            }
        };
    }
    criterion_main();
    ExitCode::SUCCESS
}

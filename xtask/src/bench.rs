//! `cargo xtask bench`: every benchmark case of `aiopoll-benches`, aiopoll
//! and its peers side by side in one run, then one table: nanoseconds per
//! operation (criterion's median), instructions per operation (callgrind,
//! single-thread user-space cases), and the ratios the targets are set in;
//! then the scale curve (the `scale-` cases: 1 to 4,096 requests pending on
//! one wait queue).
//!
//! Options:
//! - `--runs N`: run the whole criterion suite N times and report the median
//!   of the N medians (default 1);
//! - `--quick`: shorter warm-up and measurement (for a smoke run);
//! - `--no-callgrind`: skip the instruction counts;
//! - `--filter TEXT`: only the cases whose `group/peer` contains TEXT;
//! - `--write FILE`: also write the report (command, machine, tables) to FILE.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{cargo, output, root, step};

/// One case, as the benchmark binary lists it.
struct Case {
    group: String,
    peer: String,
    /// Operations per iteration.
    per: u64,
    /// `user`, `kernel` or `threads`.
    kind: String,
    /// `None` when available, else why not.
    unavailable: Option<String>,
    /// How the peer is set up.
    note: String,
}

impl Case {
    fn name(&self) -> String {
        format!("{}/{}", self.group, self.peer)
    }
}

/// What one case measured.
#[derive(Default, Clone)]
struct Figures {
    /// Nanoseconds per operation, one per run.
    nanos: Vec<f64>,
    /// Instructions per operation.
    instructions: Option<f64>,
}

impl Figures {
    fn median_nanos(&self) -> Option<f64> {
        let mut values = self.nanos.clone();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(values[values.len() / 2])
    }
}

struct Options {
    runs: usize,
    quick: bool,
    callgrind: bool,
    filter: Option<String>,
    /// Where to write the table as Markdown, beside printing it.
    write: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        runs: 1,
        quick: false,
        callgrind: true,
        filter: None,
        write: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                options.runs = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .filter(|runs| *runs > 0)
                    .ok_or("--runs needs a whole number above 0")?;
            }
            "--quick" => options.quick = true,
            "--no-callgrind" => options.callgrind = false,
            "--filter" => {
                options.filter = Some(args.next().ok_or("--filter needs a text")?.clone());
            }
            "--write" => {
                options.write = Some(PathBuf::from(args.next().ok_or("--write needs a file")?));
            }
            other => {
                return Err(format!(
                    "bench: unknown option `{other}` (try --runs N, --quick, --no-callgrind, --filter TEXT, --write FILE)"
                ))
            }
        }
    }
    Ok(options)
}

/// The cargo target directory the benchmarks are built in.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        })
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the benchmark binary and returns its path.
fn build() -> Result<PathBuf, String> {
    step(
        "build the benchmarks",
        cargo().args([
            "bench",
            "-p",
            "aiopoll-benches",
            "--bench",
            "peers",
            "--no-run",
        ]),
    )?;
    let json = output(cargo().args([
        "bench",
        "-p",
        "aiopoll-benches",
        "--bench",
        "peers",
        "--no-run",
        "--message-format=json",
    ]))
    .ok_or("cargo bench --no-run --message-format=json failed")?;
    json.lines()
        .filter(|line| line.contains("\"name\":\"peers\"") && line.contains("\"kind\":[\"bench\"]"))
        .find_map(|line| json_string(line, "executable"))
        .map(PathBuf::from)
        .ok_or_else(|| "cargo did not report the `peers` benchmark's executable".to_string())
}

/// The string value of `"key":"..."` in one line of JSON (no escapes needed
/// for the paths and numbers read here).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

fn list(binary: &Path) -> Result<Vec<Case>, String> {
    let text = output(Command::new(binary).env("AIOPOLL_BENCH_LIST", "1"))
        .ok_or_else(|| format!("`{}` could not list its cases", binary.display()))?;
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [group, peer, per, kind, status, note] = fields[..] else {
                return Err(format!("unexpected case line `{line}`"));
            };
            Ok(Case {
                group: group.to_string(),
                peer: peer.to_string(),
                per: per.parse().map_err(|_| format!("bad count in `{line}`"))?,
                kind: kind.to_string(),
                unavailable: (status != "available").then(|| status.to_string()),
                note: note.to_string(),
            })
        })
        .collect()
}

/// criterion's median for one case, in nanoseconds per iteration.
fn criterion_median(home: &Path, case: &Case) -> Option<f64> {
    let path = home
        .join(&case.group)
        .join(&case.peer)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let start = median.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let end = median[start..].find([',', '}'])? + start;
    median[start..end].trim().parse().ok()
}

/// Instructions of one iteration: two callgrind runs of `small` and `large`
/// iterations, so that setup and teardown cancel out.
fn instructions(binary: &Path, case: &Case) -> Result<f64, String> {
    let small = (2000 / case.per).max(10);
    let large = small + (20_000 / case.per).max(20);
    let count = |iterations: u64| -> Result<u64, String> {
        let mut valgrind = Command::new("valgrind");
        valgrind.args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--cache-sim=no",
        ]);
        if case.kind == "user-part" {
            // Only the measured part of each iteration (the benchmark's
            // `measured_part`), not its setup and teardown.
            valgrind.args(["--collect-atstart=no", "--toggle-collect=*measured_part*"]);
        }
        let result = valgrind
            .arg(binary)
            .env("AIOPOLL_BENCH_COUNT", case.name())
            .env("AIOPOLL_BENCH_ITERS", iterations.to_string())
            .output()
            .map_err(|error| format!("valgrind: {error}"))?;
        let stderr = String::from_utf8_lossy(&result.stderr);
        if !result.status.success() {
            return Err(format!("callgrind of {} failed:\n{stderr}", case.name()));
        }
        stderr
            .lines()
            .find_map(|line| {
                let (_, value) = line.split_once("Collected :")?;
                value.trim().parse().ok()
            })
            .ok_or_else(|| format!("no `Collected :` line from callgrind:\n{stderr}"))
    };
    let (few, many) = (count(small)?, count(large)?);
    let iterations = (large - small) as f64 * case.per as f64;
    Ok(many.saturating_sub(few) as f64 / iterations)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let binary = build()?;
    let cases: Vec<Case> = list(&binary)?
        .into_iter()
        .filter(|case| {
            options
                .filter
                .as_ref()
                .is_none_or(|text| case.name().contains(text.as_str()))
        })
        .collect();
    let home = target_dir().join("criterion");
    let mut figures: BTreeMap<String, Figures> = BTreeMap::new();

    for run in 1..=options.runs {
        let mut command = Command::new(&binary);
        command
            .current_dir(root())
            .env("CRITERION_HOME", &home)
            .args(["--bench", "--noplot"]);
        if options.quick {
            command.args(["--warm-up-time", "0.3", "--measurement-time", "1"]);
        }
        if let Some(filter) = &options.filter {
            command.arg(filter);
        }
        step(
            &format!("criterion, run {run} of {}", options.runs),
            &mut command,
        )?;
        for case in cases.iter().filter(|case| case.unavailable.is_none()) {
            let nanos = criterion_median(&home, case).ok_or_else(|| {
                format!(
                    "no criterion estimate for {} in {}",
                    case.name(),
                    home.display()
                )
            })?;
            figures
                .entry(case.name())
                .or_default()
                .nanos
                .push(nanos / case.per as f64);
        }
    }

    let valgrind = options.callgrind && output(Command::new("valgrind").arg("--version")).is_some();
    if options.callgrind && !valgrind {
        println!("\nvalgrind is not installed (apt-get install valgrind): no instruction counts");
    }
    if valgrind {
        println!("\n==> instruction counts (valgrind --tool=callgrind, two runs per case)");
        for case in cases.iter().filter(|case| {
            case.unavailable.is_none() && (case.kind == "user" || case.kind == "user-part")
        }) {
            let count = instructions(&binary, case)?;
            println!("    {:<28} {count:>10.1} instructions/op", case.name());
            figures.entry(case.name()).or_default().instructions = Some(count);
        }
    }

    let report = format!(
        "command: `cargo xtask bench {}`\n\n{}\n{}",
        args.join(" "),
        machine(),
        table(&cases, &figures, options.runs)
    );
    println!("\n{report}");
    if let Some(path) = &options.write {
        std::fs::write(path, &report)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("(written to {})", path.display());
    }
    Ok(())
}

/// The machine the figures come from: cores, CPU model, kernel, load.
pub(crate) fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, model)| {
            model.trim().to_string()
        });
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = read("/proc/sys/kernel/osrelease");
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cores} cores (nproc), {model}, Linux {}, load average {} at the end of the run",
        kernel.trim(),
        load.join(" ")
    )
}

fn table(cases: &[Case], figures: &BTreeMap<String, Figures>, runs: usize) -> String {
    let mut text = String::new();
    let median = if runs > 1 {
        format!("median of {runs} runs of criterion's median")
    } else {
        "criterion's median".to_string()
    };
    let main: Vec<&Case> = cases
        .iter()
        .filter(|case| !case.group.starts_with("scale-"))
        .collect();
    if !main.is_empty() {
        text.push_str(&format!(
            "\n| case | peer | ns/op ({median}) | instructions/op | notes |\n|---|---|---:|---:|---|\n"
        ));
    }
    for case in main {
        let figure = figures.get(&case.name());
        let nanos = figure
            .and_then(Figures::median_nanos)
            .map_or("-".to_string(), |nanos| format!("{nanos:.1}"));
        let instructions = figure
            .and_then(|figure| figure.instructions)
            .map_or("-".to_string(), |count| format!("{count:.0}"));
        let mut notes = vec![case.note.clone()];
        if case.per > 1 {
            notes.push(format!("per request, {} per iteration", case.per));
        }
        match case.kind.as_str() {
            "kernel" => notes.push("system calls: user-space instructions not counted".into()),
            "threads" => notes.push(format!(
                "threads on a machine of {} cores",
                std::thread::available_parallelism().map_or(0, usize::from)
            )),
            _ => {}
        }
        notes.retain(|note| !note.is_empty());
        let mut notes = notes.join("; ");
        if let Some(reason) = &case.unavailable {
            notes = format!("unavailable here: {reason}");
        }
        text.push_str(&format!(
            "| {} | {} | {nanos} | {instructions} | {} |\n",
            case.group, case.peer, notes
        ));
    }

    let nanos = |name: &str| figures.get(name).and_then(Figures::median_nanos);
    let count = |name: &str| figures.get(name).and_then(|figure| figure.instructions);
    // (what, numerator, denominator, target, whether the ratio must be at
    // most the target (true) or at least it (false)): issue 12's targets,
    // and issue 5's for Linux aio.
    let ratios: [(&str, &str, &str, f64, bool); 12] = [
        (
            "round trip: aiopoll / maitake-sync",
            "round-trip/aiopoll",
            "round-trip/maitake-sync",
            0.6,
            true,
        ),
        (
            "round trip: aiopoll / floor",
            "round-trip/aiopoll",
            "round-trip/floor",
            3.0,
            true,
        ),
        (
            "round trip: Linux aio / aiopoll",
            "round-trip/linux-aio",
            "round-trip/aiopoll",
            20.0,
            false,
        ),
        (
            "cancel: aiopoll / maitake-sync",
            "cancel/aiopoll",
            "cancel/maitake-sync",
            0.75,
            true,
        ),
        (
            "fan-out: aiopoll / maitake-sync",
            "fan-out/aiopoll",
            "fan-out/maitake-sync",
            0.75,
            true,
        ),
        (
            "ping-pong, threads on two CPUs: aiopoll / Condvar",
            "ping-pong/aiopoll-std",
            "ping-pong/condvar",
            0.5,
            true,
        ),
        (
            "ping-pong, threads on one CPU: aiopoll / Condvar",
            "ping-pong-one-cpu/aiopoll-std",
            "ping-pong-one-cpu/condvar",
            f64::NAN,
            true,
        ),
        (
            "ping-pong: Linux aio / aiopoll",
            "ping-pong/linux-aio",
            "ping-pong/aiopoll-std",
            f64::NAN,
            false,
        ),
        (
            "contention: aiopoll / maitake-sync",
            "contention/aiopoll-std",
            "contention/maitake-sync",
            2.0,
            true,
        ),
        (
            "contention: Linux aio / aiopoll",
            "contention/linux-aio",
            "contention/aiopoll-std",
            f64::NAN,
            false,
        ),
        (
            "tokio round trip, threads on two CPUs: aiopoll / Notify",
            "tokio-round-trip/aiopoll-std",
            "tokio-round-trip/tokio-notify",
            f64::NAN,
            true,
        ),
        (
            "tokio round trip, threads on one CPU: aiopoll / Notify",
            "tokio-round-trip-one-cpu/aiopoll-std",
            "tokio-round-trip-one-cpu/tokio-notify",
            f64::NAN,
            true,
        ),
    ];
    let mut rows = String::new();
    for (what, top, bottom, target, at_most) in ratios {
        let time = nanos(top).zip(nanos(bottom)).map(|(a, b)| a / b);
        let instructions = count(top).zip(count(bottom)).map(|(a, b)| a / b);
        if time.is_none() && instructions.is_none() {
            continue;
        }
        let show =
            |ratio: Option<f64>| ratio.map_or("-".to_string(), |ratio| format!("{ratio:.2}x"));
        let (goal, verdict) = if target.is_nan() {
            ("-".to_string(), "(no target)".to_string())
        } else {
            let goal = format!("{} {target}x", if at_most { "≤" } else { "≥" });
            let verdict = match time {
                None => "-".to_string(),
                Some(ratio) if (at_most && ratio <= target) || (!at_most && ratio >= target) => {
                    "met".to_string()
                }
                Some(ratio) if at_most => {
                    format!("missed by {:.0}%", (ratio / target - 1.0) * 100.0)
                }
                Some(ratio) => format!("missed by {:.0}%", (target / ratio - 1.0) * 100.0),
            };
            (goal, verdict)
        };
        rows.push_str(&format!(
            "| {what} | {} | {} | {goal} | {verdict} |\n",
            show(time),
            show(instructions)
        ));
    }
    if !rows.is_empty() {
        text.push_str(
            "\n| ratio | time | instructions | target | met? |\n|---|---:|---:|---:|---|\n",
        );
        text.push_str(&rows);
    }
    text.push_str(&scale_table(cases, figures));
    text
}

/// The scale curve: with n requests pending on one wait queue, what the
/// wakeup of all n costs per request woken, and what a cancel of one costs
/// (both measured alone: the benchmark's `measured_part`).
fn scale_table(cases: &[Case], figures: &BTreeMap<String, Figures>) -> String {
    let mut sizes: Vec<u64> = cases
        .iter()
        .filter_map(|case| case.group.strip_prefix("scale-wake-")?.parse().ok())
        .collect();
    sizes.dedup();
    if sizes.is_empty() {
        return String::new();
    }
    let show = |value: Option<f64>, digits: usize| {
        value.map_or("-".to_string(), |value| format!("{value:.digits$}"))
    };
    let figure = |name: String| figures.get(&name);
    let mut text = String::from(
        "\n| requests pending on one queue | wake all, per request woken: aiopoll ns | instructions | maitake-sync ns | instructions | aiopoll / maitake-sync (instructions) | cancel one: aiopoll ns | instructions | maitake-sync ns | instructions | aiopoll / maitake-sync (instructions) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in sizes {
        let mut row = format!("| {n} |");
        for what in ["wake", "cancel"] {
            let ours = figure(format!("scale-{what}-{n}/aiopoll"));
            let theirs = figure(format!("scale-{what}-{n}/maitake-sync"));
            let ours_count = ours.and_then(|figure| figure.instructions);
            let theirs_count = theirs.and_then(|figure| figure.instructions);
            row.push_str(&format!(
                " {} | {} | {} | {} | {} |",
                show(ours.and_then(Figures::median_nanos), 1),
                show(ours_count, 0),
                show(theirs.and_then(Figures::median_nanos), 1),
                show(theirs_count, 0),
                ours_count
                    .zip(theirs_count)
                    .map_or("-".to_string(), |(a, b)| format!("{:.2}x", a / b)),
            ));
        }
        text.push_str(&row);
        text.push('\n');
    }
    text
}

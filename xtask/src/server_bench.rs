//! `cargo xtask server-bench`: aiopoll-std as a server's event engine, beside
//! the servers a user would pick instead, under the same load in one run;
//! and the timer curve. `cargo xtask test` runs [`load_test`].
//!
//! Every server is a separate process on 127.0.0.1: the `echo_server`
//! example (with one and with two reaping threads) and the peers of
//! `aiopoll-benches` (`echo-tokio`, `echo-mio`, `echo-threads`). Each prints
//! `listening on ADDRESS`, serves until its standard input ends, and is
//! driven by the `echo-load` generator (see its docs). Runs interleave the
//! servers; each figure is from the run with the median lines/s.
//!
//! Options: `--runs N` (default 3), `--clients N` (200), `--lines N` (500),
//! `--idle-clients N` (20), `--no-timers` (skip the timer curve), `--write
//! FILE` (also write the report to FILE); `--load-test` runs only the
//! load test of `cargo xtask test`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::shell::{cargo, output, step};

/// One server under test.
struct Server {
    name: &'static str,
    /// The binary, relative to the profile's directory.
    binary: &'static str,
    args: &'static [&'static str],
}

const SERVERS: &[Server] = &[
    Server {
        name: "aiopoll-std, 2 reaping threads",
        binary: "examples/echo_server",
        args: &["--reapers", "2"],
    },
    Server {
        name: "aiopoll-std, 1 reaping thread",
        binary: "examples/echo_server",
        args: &["--reapers", "1"],
    },
    Server {
        name: "tokio, 2 worker threads",
        binary: "echo-tokio",
        args: &["--threads", "2"],
    },
    Server {
        name: "mio, 1 event-loop thread",
        binary: "echo-mio",
        args: &[],
    },
    Server {
        name: "thread per connection",
        binary: "echo-threads",
        args: &[],
    },
];

/// The idle timeout every server gets, and the load's idle clients check.
const IDLE_MS: &str = "2000";

struct Options {
    runs: usize,
    clients: String,
    lines: String,
    idle_clients: String,
    timers: bool,
    write: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        runs: 3,
        clients: "200".into(),
        lines: "500".into(),
        idle_clients: "20".into(),
        timers: true,
        write: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<String, String> {
            args.next()
                .filter(|value| value.parse::<u64>().is_ok_and(|value| value > 0))
                .cloned()
                .ok_or(format!("{name} needs a whole number above 0"))
        };
        match arg.as_str() {
            "--runs" => {
                options.runs = number("--runs")?.parse().map_err(|_| "bad --runs")?;
            }
            "--clients" => options.clients = number("--clients")?,
            "--lines" => options.lines = number("--lines")?,
            "--idle-clients" => options.idle_clients = number("--idle-clients")?,
            "--no-timers" => options.timers = false,
            "--write" => {
                options.write = Some(PathBuf::from(args.next().ok_or("--write needs a file")?));
            }
            other => return Err(format!(
                "server-bench: unknown option `{other}` (try --runs N, --clients N, --lines N, --idle-clients N, --no-timers, --write FILE)"
            )),
        }
    }
    Ok(options)
}

/// A server process serving on its announced address.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    address: String,
}

fn start(binary: &Path, args: &[&str]) -> Result<Running, String> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let Some(address) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} did not say `listening on ADDRESS` (said {line:?})",
            binary.display()
        ));
    };
    Ok(Running {
        address: address.to_string(),
        child,
        stdin,
        stdout,
    })
}

impl Running {
    /// Ends its standard input and waits for it to exit (killing it after
    /// 30 s); returns what else it printed.
    fn stop(mut self) -> Result<String, String> {
        drop(self.stdin.take());
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        for _ in 0..300 {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(rest),
                Ok(Some(status)) => return Err(format!("the server exited with {status}: {rest}")),
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(error) => return Err(error.to_string()),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("the server did not stop within 30 s of its input ending".into())
    }
}

/// CPU seconds of a process (all its threads, exited ones included) and of
/// its living threads by name, from /proc.
fn cpu(pid: u32) -> (f64, BTreeMap<String, f64>) {
    // utime and stime, in clock ticks (USER_HZ, 100 on Linux), are the
    // 14th and 15th fields; the name before them may hold spaces, so count
    // from the closing parenthesis.
    let seconds = |stat: &str| -> f64 {
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let tick = |index: usize| {
            fields
                .get(index)
                .and_then(|field| field.parse::<f64>().ok())
        };
        (tick(11).unwrap_or(0.0) + tick(12).unwrap_or(0.0)) / 100.0
    };
    let process = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut threads = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            *threads.entry(comm.trim().to_string()).or_insert(0.0) += seconds(&stat);
        }
    }
    (seconds(&process), threads)
}

/// What `echo-load` printed, as key and value.
fn figures(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// One server's run.
struct Measured {
    load: BTreeMap<String, String>,
    cpu: f64,
    threads: BTreeMap<String, f64>,
}

impl Measured {
    fn number(&self, key: &str) -> f64 {
        self.load
            .get(key)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Runs `echo-load` against a fresh server and checks both.
fn measure(
    directory: &Path,
    server: &Server,
    server_args: &[&str],
    load_args: &[&str],
) -> Result<(Measured, String), String> {
    let mut args = server.args.to_vec();
    args.extend_from_slice(server_args);
    let running = start(&directory.join(server.binary), &args)?;
    let pid = running.child.id();
    let (cpu_before, threads_before) = cpu(pid);
    let load = Command::new(directory.join("echo-load"))
        .args(["--addr", &running.address])
        .args(load_args)
        .output()
        .map_err(|error| format!("cannot start echo-load: {error}"))?;
    let (cpu_after, threads_after) = cpu(pid);
    let said = running.stop();
    let stdout = String::from_utf8_lossy(&load.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&load.stderr).into_owned();
    if !load.status.success() {
        return Err(format!(
            "{}: the load failed ({}):\n{stdout}{stderr}",
            server.name, load.status
        ));
    }
    let said = said.map_err(|error| format!("{}: {error}", server.name))?;
    let threads = threads_after
        .into_iter()
        .map(|(name, after)| {
            let before = threads_before.get(&name).copied().unwrap_or(0.0);
            (name, after - before)
        })
        .collect();
    Ok((
        Measured {
            load: figures(&stdout),
            cpu: cpu_after - cpu_before,
            threads,
        },
        said,
    ))
}

/// Builds the `echo_server` example and the load generator, and with
/// `release` the peer servers too (optimised), and returns the directory
/// they are in.
fn build(release: bool) -> Result<PathBuf, String> {
    let mut command = cargo();
    command.args([
        "build",
        "-p",
        "aiopoll-std",
        "--example",
        "echo_server",
        "-p",
        "aiopoll-benches",
    ]);
    if release {
        command.args(["--bins", "--release"]);
    } else {
        command.args(["--bin", "echo-load"]);
    }
    step("build the echo servers and echo-load", &mut command)?;
    Ok(crate::bench::target_dir().join(if release { "release" } else { "debug" }))
}

/// The load test `cargo xtask test` runs on the `echo_server` example
/// (debug build, 127.0.0.1 only): hundreds of clients and idle clients,
/// every reply checked, the idle clients closed no sooner than the idle
/// timeout and at most 5 s after it; then a server admitting 16
/// connections at a time serves 100 clients in turn, without a refused
/// submit.
pub fn load_test() -> Result<(), String> {
    let directory = build(false)?;
    let server = &SERVERS[0];
    println!("\n==> echo_server under load: 300 clients x 100 lines, 50 idle clients");
    let (measured, said) = measure(
        &directory,
        server,
        &["--reapers", "2", "--idle-ms", IDLE_MS],
        &[
            "--clients",
            "300",
            "--lines",
            "100",
            "--idle-clients",
            "50",
            "--idle-ms",
            IDLE_MS,
            "--idle-bound-ms",
            "5000",
        ],
    )?;
    println!("    load: {}", join(&measured.load));
    println!("    {}", said.trim());
    expect_counters(&said, 350, None, 50)?;

    println!("\n==> echo_server admitting 16 connections at a time: 100 clients x 20 lines");
    let (measured, said) = measure(
        &directory,
        server,
        &["--reapers", "3", "--max-connections", "16"],
        &["--clients", "100", "--lines", "20", "--no-warmup"],
    )?;
    println!("    load: {}", join(&measured.load));
    println!("    {}", said.trim());
    // Never more than it admits, and that many while clients wait.
    expect_counters(&said, 100, Some(16), 0)?;
    println!("<== echo_server load tests: ok");
    Ok(())
}

fn join(figures: &BTreeMap<String, String>) -> String {
    figures
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the line the example prints when it stops: `accepted`
/// connections, `idle` of them closed idle, the rest by the peer, none on
/// errors, no refused submit, and (if given) at most `most_open` at once.
fn expect_counters(
    said: &str,
    accepted: u64,
    most_open: Option<u64>,
    idle: u64,
) -> Result<(), String> {
    let matches = |line: &str| -> Option<()> {
        let rest = line.trim().strip_prefix(&format!(
            "echo_server: accepted {accepted} connections, at most "
        ))?;
        let (open, rest) = rest.split_once(' ')?;
        let open: u64 = open.parse().ok()?;
        (most_open.is_none_or(|most| most == open) && open <= accepted).then_some(())?;
        (rest
            == format!(
            "at once; closed {} by the peer, {idle} idle, 0 on errors; 0 refused submits (busy)",
            accepted - idle
        ))
        .then_some(())
    };
    if said.lines().any(|line| matches(line).is_some()) {
        Ok(())
    } else {
        Err(format!(
            "the server said {said:?}: expected {accepted} accepted (at most {most_open:?} at once), {idle} closed idle, the rest by the peer, no errors, no refused submits"
        ))
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|arg| arg == "--load-test") {
        return load_test();
    }
    let options = parse(args)?;
    let mut report = format!("command: `cargo xtask server-bench {}`\n\n", args.join(" "));
    if options.timers {
        step(
            "build the timer benchmark",
            cargo().args([
                "bench",
                "-p",
                "aiopoll-benches",
                "--bench",
                "timers",
                "--no-run",
            ]),
        )?;
        println!("\n==> the timer curve");
        let table = output(cargo().args(["bench", "-p", "aiopoll-benches", "--bench", "timers"]))
            .ok_or("the timer benchmark failed")?;
        let table: String = table
            .lines()
            .filter(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect();
        println!("{table}");
        report.push_str(&table);
        report.push('\n');
    }

    let directory = build(true)?;
    let load_args = [
        "--clients",
        &options.clients,
        "--lines",
        &options.lines,
        "--idle-clients",
        &options.idle_clients,
        "--idle-ms",
        IDLE_MS,
    ];
    let mut runs: Vec<Vec<Measured>> = SERVERS.iter().map(|_| Vec::new()).collect();
    for run in 1..=options.runs {
        // Each run starts one server later than the last: in a fixed order
        // the same server always came first, after the same one's
        // teardown, and its place in the order moved its figures.
        let first = (run - 1) % SERVERS.len();
        let order = (0..SERVERS.len()).map(|turn| (first + turn) % SERVERS.len());
        for index in order {
            let (server, measured) = (&SERVERS[index], &mut runs[index]);
            println!("\n==> run {run} of {}: {}", options.runs, server.name);
            let started = Instant::now();
            let (result, _) = measure(&directory, server, &["--idle-ms", IDLE_MS], &load_args)?;
            println!(
                "    {} ({:.1} s)",
                join(&result.load),
                started.elapsed().as_secs_f64()
            );
            measured.push(result);
        }
    }

    report.push_str(&format!(
        "load: {} clients x {} lines of 32 bytes (send, wait for the echo, check it, send the next), plus {} idle clients; idle timeout {IDLE_MS} ms; {} runs, servers interleaved, each run starting one server later than the last; each row is the run with the median lines/s\n\n{}\n\n",
        options.clients,
        options.lines,
        options.idle_clients,
        options.runs,
        crate::bench::machine()
    ));
    report.push_str("| server | lines/s | p50 µs | p99 µs | server CPU µs per line | lines/s of every run |\n|---|---:|---:|---:|---:|---|\n");
    let mut threads_table = String::new();
    for (server, measured) in SERVERS.iter().zip(&mut runs) {
        measured.sort_by(|a, b| {
            a.number("lines_per_sec")
                .total_cmp(&b.number("lines_per_sec"))
        });
        let all: Vec<String> = measured
            .iter()
            .map(|run| format!("{:.0}", run.number("lines_per_sec")))
            .collect();
        let median = &measured[measured.len() / 2];
        let lines = median.number("lines").max(1.0);
        report.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {} |\n",
            server.name,
            median.number("lines_per_sec"),
            median.number("p50_us"),
            median.number("p99_us"),
            median.cpu * 1e6 / lines,
            all.join(", ")
        ));
        // Threads by name, numbered ones together (`echo-reaper-0`, `-1`).
        let mut groups: BTreeMap<String, f64> = BTreeMap::new();
        for (name, seconds) in &median.threads {
            let group = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            *groups.entry(group.to_string()).or_insert(0.0) += seconds;
        }
        let mut groups: Vec<(String, f64)> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        let parts: Vec<String> = groups
            .iter()
            .filter(|(_, seconds)| seconds * 1e6 / lines >= 0.05)
            .map(|(name, seconds)| format!("{name} {:.1}", seconds * 1e6 / lines))
            .collect();
        threads_table.push_str(&format!("| {} | {} |\n", server.name, parts.join(", ")));
    }
    report.push_str(&format!(
        "\n| server | CPU µs per line, by thread name (same run; threads that exited during the run are not counted) |\n|---|---|\n{threads_table}"
    ));
    println!("\n{report}");
    if let Some(path) = &options.write {
        std::fs::write(path, &report)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("(written to {})", path.display());
    }
    Ok(())
}

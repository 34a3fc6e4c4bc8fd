//! `cargo xtask`: the project's task runner.
//!
//! ```text
//! cargo xtask demo [--board B]  the demo on QEMU (default lm3s6965evb)
//! cargo xtask qemu BOARD EXAMPLE  one firmware example in QEMU
//! cargo xtask flash BOARD EXAMPLE one firmware example on a dev board (probe-rs)
//! cargo xtask test            fmt, clippy, host tests, loom, Miri, target builds, QEMU scenarios
//! cargo xtask setup           install what the other tasks need (targets, Miri, the rust-version toolchain, qemu-system-arm)
//! cargo xtask fuzz            fuzz the core against its reference model
//! cargo xtask bench           aiopoll and its peers side by side: one table of ns/op, instructions/op, ratios
//! cargo xtask server-bench    aiopoll-std's echo server beside tokio, mio and thread-per-connection servers; the timer curve
//! cargo xtask size            bytes per request slot and per wait queue on thumbv6m, thumbv7m, x86_64
//! cargo xtask scenarios [--bless] [BOARD..]  the QEMU scenarios against tests/qemu/
//! cargo xtask firmware-size [--bless] [BOARD..]  every board example's text/data/bss against tests/firmware-size/
//! ```
//!
//! Every task installs what it is missing itself (rustup targets, the nightly
//! Miri component, qemu-system-arm through apt when root) or says exactly
//! what to install.

mod bench;
mod firmware;
mod firmware_size;
mod flash;
mod fuzz;
mod publish;
mod qemu;
mod readme;
mod scenarios;
mod server_bench;
mod setup;
mod shell;
mod size;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  demo [--board B]
                  run the demo on a QEMU board (default lm3s6965evb)
  qemu BOARD EXAMPLE [-- QEMU ARGS]
                  build and run one firmware example in QEMU, its defmt decoded
  flash BOARD EXAMPLE
                  build and flash one example with probe-rs
  scenarios [--bless] [BOARD..]
                  the QEMU scenarios alone (part of `test`): those listed in
                  tests/qemu/scenarios.txt, each output compared with
                  tests/qemu/<board>/<example>.run (--bless writes them)
  test            run every check CI runs: fmt, clippy -D warnings, docs (also as
                  docs.rs builds them), host tests, cargo package, the
                  rust-version build, loom models, Miri, fuzzing, target builds,
                  firmware sizes, QEMU scenarios
  setup           install what the tasks need (rustup targets, nightly Miri,
                  the rust-version toolchain, qemu-system-arm)
  fuzz [--seconds N]
                  fuzz the core against its reference model (default 60 s)
  bench [--runs N] [--quick] [--no-callgrind] [--filter TEXT] [--write FILE]
                  benchmark aiopoll and its peers in one run; print one table
  server-bench [--runs N] [--clients N] [--lines N] [--idle-clients N] [--no-timers] [--write FILE]
                  the echo_server example beside tokio, mio and thread-per-connection
                  servers under one load on 127.0.0.1; and the timer curve
                  (--load-test: only the echo_server load test that `test` runs)
  size            bytes per request slot and per wait queue, per target
  firmware-size [--bless] [BOARD..]
                  text/data/bss of every board example (or the named boards')
                  against tests/firmware-size/<board>/<example>.size (--bless writes them)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "test" => test::run(rest),
        "setup" => setup::run(rest),
        "fuzz" => fuzz::run(rest),
        "demo" => qemu::demo(rest),
        "qemu" => qemu::qemu(rest),
        "flash" => flash::flash(rest),
        "scenarios" => scenarios::run(rest),
        "bench" => bench::run(rest),
        "server-bench" => server_bench::run(rest),
        "size" => size::run(rest),
        "firmware-size" => firmware_size::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

//! `cargo xtask test`: every check CI runs, in order, cheapest first.

use crate::setup;
use crate::shell::{cargo, cargo_toolchain, step};

/// The adapter's optional async half (embedded-hal-async), built, linted,
/// documented and tested with the rest of the workspace.
const ASYNC: [&str; 2] = ["--features", "aiopoll-cortex-m/async"];

/// Options: `--skip-miri`, `--skip-loom`, `--skip-fuzz`, `--skip-tsan` for a quick local
/// loop (CI runs everything).
pub fn run(args: &[String]) -> Result<(), String> {
    let skip = |name: &str| args.iter().any(|arg| arg == &format!("--skip-{name}"));
    let started = std::time::Instant::now();
    setup::targets()?;

    step("rustfmt", cargo().args(["fmt", "--all", "--check"]))?;
    println!("\n==> README.md's programs, word for word the examples CI builds");
    crate::readme::check()?;
    step(
        "clippy (host, all targets, -D warnings)",
        cargo()
            .args(["clippy", "--workspace", "--all-targets"])
            .args(ASYNC)
            .args(["--", "-D", "warnings"]),
    )?;
    step(
        "docs (-D warnings)",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .args(ASYNC)
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    crate::publish::docs_rs()?;
    step(
        "host tests",
        cargo().args(["test", "--workspace"]).args(ASYNC),
    )?;
    crate::publish::rust_version_build()?;
    crate::publish::package()?;

    step(
        "soak: a million requests on six threads, each accounted once",
        cargo()
            .args([
                "test",
                "-p",
                "aiopoll-tests",
                "--release",
                "--test",
                "soak",
                "--",
                "--nocapture",
            ])
            .env("AIOPOLL_SOAK_REQUESTS", "1000000"),
    )?;

    if !skip("tsan") {
        setup::miri()?; // nightly with rust-src, which -Zbuild-std needs
        step(
            "soak under ThreadSanitizer (a million requests)",
            cargo_toolchain("nightly")
                .args([
                    "test",
                    "-Zbuild-std",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                ])
                .args([
                    "-p",
                    "aiopoll-tests",
                    "--release",
                    "--test",
                    "soak",
                    "--",
                    "--nocapture",
                ])
                .env("RUSTFLAGS", "-Zsanitizer=thread")
                .env("AIOPOLL_SOAK_REQUESTS", "1000000")
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/tsan")),
        )?;
        step(
            "aiopoll-std under ThreadSanitizer (stress, sources, Fd, requests, awaited requests)",
            cargo_toolchain("nightly")
                .args([
                    "test",
                    "-Zbuild-std",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                ])
                .args([
                    "-p",
                    "aiopoll-std",
                    "-p",
                    "aiopoll-tests",
                    "--release",
                    "--test",
                    "stress",
                    "--test",
                    "semantics",
                    "--test",
                    "fd",
                    "--test",
                    "requests",
                    "--test",
                    "awaited",
                ])
                .env("RUSTFLAGS", "-Zsanitizer=thread")
                .env("AIOPOLL_STRESS_ITERATIONS", "30000")
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/tsan")),
        )?;
    }

    if !skip("loom") {
        step(
            "loom models of the core's races",
            cargo()
                .args(["test", "-p", "aiopoll", "--release", "--test", "loom"])
                .env("RUSTFLAGS", "--cfg loom")
                .env("LOOM_MAX_PREEMPTIONS", "8")
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/loom")),
        )?;
    }

    if !skip("miri") {
        setup::miri()?;
        step(
            "Miri: the core's host tests",
            cargo_toolchain("nightly")
                .args(["miri", "test", "-p", "aiopoll"])
                .env("MIRIFLAGS", "-Zmiri-strict-provenance")
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/miri")),
        )?;
    }

    if !skip("miri") {
        // parking_lot's parking code casts integers to pointers, which
        // -Zmiri-strict-provenance rejects: the adapter runs with Miri's
        // default (permissive) provenance. Its OS-touching tests are
        // `cfg(not(miri))`.
        step(
            "Miri: aiopoll-std's tests that do not touch the OS",
            cargo_toolchain("nightly")
                .args(["miri", "test", "-p", "aiopoll-std"])
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/miri")),
        )?;
        step(
            "Miri: the std stress test (fewer iterations)",
            cargo_toolchain("nightly")
                .args(["miri", "test", "-p", "aiopoll-tests", "--test", "stress"])
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/miri")),
        )?;
    }

    if !skip("miri") {
        // The Cortex-M adapter's host tests: critical-section's std
        // implementation stands in for masking interrupts; what needs the
        // core itself (WFI, BASEPRI, NVIC) is left to the QEMU scenarios.
        step(
            "Miri: aiopoll-cortex-m's host tests",
            cargo_toolchain("nightly")
                .args([
                    "miri",
                    "test",
                    "-p",
                    "aiopoll-cortex-m",
                    "--features",
                    "async",
                ])
                .env("MIRIFLAGS", "-Zmiri-strict-provenance")
                .env("CARGO_TARGET_DIR", crate::shell::root().join("target/miri")),
        )?;
    }

    for example in ["pipe_ping_pong", "tokio_echo"] {
        step(
            &format!("aiopoll-std example {example}"),
            cargo().args(["run", "-p", "aiopoll-std", "--example", example]),
        )?;
    }
    crate::server_bench::load_test()?;

    if !skip("fuzz") {
        crate::fuzz::fuzz(60)?;
    }

    for target in setup::TARGETS {
        let mut build = cargo();
        build.args([
            "build",
            "-p",
            "aiopoll",
            "--target",
            target,
            "--features",
            "defmt",
        ]);
        if target == "thumbv6m-none-eabi" {
            // No compare-and-swap: atomics go through critical-section.
            build.args(["--features", "critical-section"]);
        }
        step(&format!("build aiopoll for {target}"), &mut build)?;
    }

    step(
        "firmware: aiopoll-cortex-m for thumbv7m (clippy -D warnings)",
        cargo().args([
            "clippy",
            "-p",
            "aiopoll-cortex-m",
            "--target",
            "thumbv7m-none-eabi",
            "--features",
            "defmt,async",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "firmware: aiopoll-cortex-m for thumbv6m (no CAS, no BASEPRI)",
        cargo().args([
            "build",
            "-p",
            "aiopoll-cortex-m",
            "--target",
            "thumbv6m-none-eabi",
            "--features",
            "defmt,critical-section,async",
        ]),
    )?;
    for board in crate::qemu::BOARDS
        .iter()
        .map(|board| board.name)
        .chain(["scenarios"])
        .chain(crate::flash::dev_boards())
    {
        let directory = crate::shell::root().join("boards").join(board);
        step(
            &format!("firmware: boards/{board} rustfmt"),
            cargo()
                .current_dir(&directory)
                .args(["fmt", "--check"])
                .env(
                    "CARGO_TARGET_DIR",
                    crate::shell::root().join("boards/target"),
                ),
        )?;
        step(
            &format!("firmware: boards/{board} clippy -D warnings"),
            cargo()
                .current_dir(&directory)
                .args([
                    "clippy",
                    "--release",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
                .env(
                    "CARGO_TARGET_DIR",
                    crate::shell::root().join("boards/target"),
                ),
        )?;
    }
    // The firmware that `cargo xtask size` counts instructions with: not
    // run here (its figures are not a pass/fail check), kept clean.
    let bench_firmware = crate::shell::root().join("benches/firmware");
    step(
        "firmware: benches/firmware rustfmt",
        cargo()
            .current_dir(&bench_firmware)
            .args(["fmt", "--check"]),
    )?;
    step(
        "firmware: benches/firmware clippy -D warnings (thumbv7m, every program)",
        cargo()
            .current_dir(&bench_firmware)
            .args([
                "clippy",
                "--target",
                "thumbv7m-none-eabi",
                "--bins",
                "--",
                "-D",
                "warnings",
            ])
            .env("CARGO_TARGET_DIR", crate::shell::root().join("target")),
    )?;
    println!("\n==> firmware sizes: every example of every board, release, against its .size file");
    crate::firmware_size::check()?;
    println!(
        "\n==> QEMU scenarios: every one in {}",
        crate::scenarios::LIST
    );
    crate::scenarios::run(&[])?;

    println!(
        "\nall checks passed in {:.1} minutes",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

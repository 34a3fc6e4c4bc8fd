//! `cargo xtask fuzz [--seconds N]`: the core's libFuzzer target against the
//! reference model, then a replay of the grown corpus that prints what the
//! runs did. The test command runs it for a bounded minute.

use std::process::Command;

use crate::shell::{cargo, cargo_toolchain, output, root, step};

/// Options: `--seconds N` (default 60).
pub fn run(args: &[String]) -> Result<(), String> {
    let seconds = match args.iter().position(|arg| arg == "--seconds") {
        Some(index) => args
            .get(index + 1)
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or("--seconds needs a whole number")?,
        None => 60,
    };
    fuzz(seconds)
}

/// Fuzzes for `seconds`, then replays the corpus through the model test.
pub fn fuzz(seconds: u64) -> Result<(), String> {
    crate::setup::miri()?; // the nightly toolchain, which cargo fuzz needs
    if output(Command::new("cargo-fuzz").arg("--version")).is_none() {
        step(
            "install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    let corpus = root().join("target/fuzz-corpus/operations");
    std::fs::create_dir_all(&corpus)
        .map_err(|error| format!("cannot create {}: {error}", corpus.display()))?;
    step(
        &format!("fuzz the core against the reference model ({seconds} s)"),
        cargo_toolchain("nightly")
            .current_dir(root().join("core"))
            .args(["fuzz", "run", "operations"])
            .arg(&corpus)
            .arg("fuzz/corpus/operations")
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
            ]),
    )?;
    step(
        "replay the fuzz corpus through the reference model",
        cargo()
            .args(["test", "-p", "aiopoll", "--release", "--test", "model"])
            .args(["replays_the_fuzz_corpus", "--", "--nocapture"])
            .env("AIOPOLL_FUZZ_CORPUS", &corpus),
    )
}

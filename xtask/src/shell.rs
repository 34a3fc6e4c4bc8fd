//! Running commands, with each step announced and timed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `cargo` as invoked by the user (respects `$CARGO`).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// A `cargo +toolchain` command through rustup.
pub fn cargo_toolchain(toolchain: &str) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", toolchain, "cargo"])
        .current_dir(root());
    // The outer cargo's variables would pin the stable toolchain.
    for variable in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MANIFEST_DIR",
    ] {
        command.env_remove(variable);
    }
    command
}

/// Runs `command` as the step `name`, failing with a clear message.
pub fn step(name: &str, command: &mut Command) -> Result<(), String> {
    println!("\n==> {name}");
    println!("    $ {}", describe(command));
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|error| format!("{name}: could not start `{}`: {error}", describe(command)))?;
    let seconds = started.elapsed().as_secs_f64();
    if status.success() {
        println!("<== {name}: ok ({seconds:.1} s)");
        Ok(())
    } else {
        Err(format!("{name} failed ({status}) after {seconds:.1} s"))
    }
}

/// Runs `command` and returns its standard output, or `None` if it fails.
pub fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut text = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            text.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    text.push_str(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

//! Installing what the tasks need, or saying exactly what to install.

use std::process::Command;

use crate::shell::{self, output, step};

/// The embedded targets the core and the firmware build for.
pub const TARGETS: [&str; 4] = [
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabi",
];

/// `cargo xtask setup`: everything at once.
pub fn run(_args: &[String]) -> Result<(), String> {
    targets()?;
    miri()?;
    toolchain(
        &crate::publish::rust_version()?,
        &[crate::publish::MSRV_TARGET],
    )?;
    toolchain("nightly", &crate::publish::docs_rs_targets()?)?;
    crate::qemu::ensure_qemu()?;
    Ok(())
}

/// Installs `toolchain` (minimal profile) with `targets`, or adds the
/// targets it lacks.
pub fn toolchain<S: AsRef<str>>(toolchain: &str, targets: &[S]) -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["toolchain", "list"]))
        .ok_or("`rustup` is needed to install toolchains: install it from https://rustup.rs")?;
    let prefix = format!("{toolchain}-");
    if !installed.lines().any(|line| line.starts_with(&prefix)) {
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", toolchain, "--profile", "minimal"]);
        for target in targets {
            install.args(["--target", target.as_ref()]);
        }
        return step(&format!("install the {toolchain} toolchain"), &mut install);
    }
    let present = output(Command::new("rustup").args([
        "target",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))
    .unwrap_or_default();
    let missing: Vec<&str> = targets
        .iter()
        .map(AsRef::as_ref)
        .filter(|target| !present.lines().any(|line| line.trim() == *target))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(
        &format!("add targets to the {toolchain} toolchain"),
        Command::new("rustup")
            .args(["target", "add", "--toolchain", toolchain])
            .args(&missing),
    )
}

/// Adds the rustup targets that are missing.
pub fn targets() -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .ok_or("`rustup` is needed to add targets: install it from https://rustup.rs")?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(
        "install rustup targets",
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
}

/// Makes sure the nightly toolchain has Miri (and rust-src, which Miri needs).
pub fn miri() -> Result<(), String> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|line| line.starts_with("nightly")) {
        step(
            "install the nightly toolchain (for Miri)",
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "miri,rust-src",
            ]),
        )?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .unwrap_or_default();
    let has = |name: &str| components.lines().any(|line| line.starts_with(name));
    if !has("miri") || !has("rust-src") {
        step(
            "install Miri on nightly",
            Command::new("rustup").args([
                "component",
                "add",
                "miri",
                "rust-src",
                "--toolchain",
                "nightly",
            ]),
        )?;
    }
    step(
        "prepare Miri's sysroot",
        shell::cargo_toolchain("nightly").args(["miri", "setup"]),
    )
}

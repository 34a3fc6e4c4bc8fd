//! `cargo xtask flash BOARD EXAMPLE`: builds a firmware example for a real
//! board and runs it there with `probe-rs run` (flash, reset, print the
//! defmt log until Ctrl-C).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::firmware::{self, Examples};
use crate::shell::output;

/// A board probe-rs can flash.
pub struct Flashable {
    /// The name on the command line.
    pub name: &'static str,
    /// Its directory under `boards/`.
    pub directory: &'static str,
    /// The rustup target it builds for.
    pub target: &'static str,
    /// probe-rs's `--chip`.
    pub chip: &'static str,
    /// How to connect it, for when probe-rs finds no probe.
    pub connect: &'static str,
}

/// The boards `cargo xtask flash` knows.
pub const BOARDS: [Flashable; 3] = [
    Flashable {
        name: "nrf52840-dk",
        directory: "nrf52840-dk",
        target: "thumbv7em-none-eabihf",
        chip: "nRF52840_xxAA",
        connect: "plug the DK's debugger USB port (its on-board J-Link, not the port marked \
                  nRF USB) into this machine and switch the DK on",
    },
    Flashable {
        name: "rpi-pico",
        directory: "rpi-pico",
        target: "thumbv6m-none-eabi",
        chip: "RP2040",
        connect: "wire a debug probe (the Raspberry Pi Debug Probe, or a second Pico running \
                  debugprobe) to the Pico's SWD pins and plug the probe into this machine",
    },
    Flashable {
        name: "lm3s6965evb",
        directory: "lm3s6965evb",
        target: "thumbv7m-none-eabi",
        chip: "LM3S6965",
        connect: "plug the EK-LM3S6965's debug USB port into this machine",
    },
];

/// The directories of the boards only probe-rs runs (not QEMU): their
/// rustfmt and clippy steps in `cargo xtask test` are these.
pub fn dev_boards() -> impl Iterator<Item = &'static str> {
    BOARDS
        .iter()
        .map(|board| board.directory)
        .filter(|directory| {
            !crate::qemu::BOARDS
                .iter()
                .any(|board| board.name == *directory)
        })
}

fn board(name: &str) -> Result<&'static Flashable, String> {
    BOARDS
        .iter()
        .find(|board| board.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = BOARDS.iter().map(|board| board.name).collect();
            format!(
                "no flashable board `{name}`: probe-rs flashes {}",
                names.join(", ")
            )
        })
}

/// `cargo xtask flash BOARD EXAMPLE`.
pub fn flash(args: &[String]) -> Result<(), String> {
    let (Some(name), Some(example)) = (args.first(), args.get(1)) else {
        return Err("usage: cargo xtask flash BOARD EXAMPLE".into());
    };
    let board = board(name)?;
    if output(Command::new("probe-rs").arg("--version")).is_none() {
        return Err(
            "probe-rs is missing: install it with `cargo install probe-rs-tools --locked` \
             (see https://probe.rs/docs/getting-started/installation/)"
                .into(),
        );
    }
    crate::setup::targets()?;
    firmware::build(board.directory, board.target, Examples::One(example))?;
    run(board, &firmware::elf(board.target, example), example)
}

/// Runs `probe-rs run --chip CHIP ELF`, its output passed through as it
/// comes; on failure, says what to do next.
fn run(board: &Flashable, elf: &Path, example: &str) -> Result<(), String> {
    let mut command = Command::new("probe-rs");
    command
        .args(["run", "--chip", board.chip])
        .arg(elf)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    println!("\n==> flash {}/{example} ({})", board.name, board.chip);
    println!("    $ probe-rs run --chip {} {}", board.chip, elf.display());
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start probe-rs: {error}"))?;
    // Pass probe-rs's messages on as they come, keeping them to read after.
    let mut errors = Vec::new();
    if let Some(mut stderr) = child.stderr.take() {
        let mut buffer = [0u8; 4096];
        loop {
            match stderr.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    let _ = std::io::stderr().write_all(&buffer[..count]);
                    errors.extend_from_slice(&buffer[..count]);
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|error| format!("probe-rs failed: {error}"))?;
    if status.success() {
        return Ok(());
    }
    let errors = String::from_utf8_lossy(&errors).to_lowercase();
    let no_probe = ["no connected probes", "no probe", "probe was not found"]
        .iter()
        .any(|phrase| errors.contains(phrase));
    if no_probe {
        Err(format!(
            "probe-rs found no debug probe (its message is above): {}, then run this again \
             (if it is connected already, your user needs access to its USB device: see the \
             udev rules at https://probe.rs/docs/getting-started/probe-setup/)",
            board.connect
        ))
    } else {
        Err(format!(
            "probe-rs failed ({status}; its message is above). If it could not reach the \
             board: {}, then run this again",
            board.connect
        ))
    }
}

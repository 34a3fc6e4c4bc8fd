//! Firmware on qemu-system-arm: the boards QEMU runs ([`BOARDS`]),
//! building and running an example with its defmt output decoded, `cargo
//! xtask demo` and `cargo xtask qemu BOARD EXAMPLE`. The scenarios (what
//! runs, and what it must print) are in `scenarios`; flashing real boards
//! is in `flash`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::firmware::Examples;
use crate::shell::{output, step};

/// A board QEMU can run.
pub struct Board {
    /// Its directory under `boards/`.
    pub name: &'static str,
    /// The rustup target it builds for.
    pub target: &'static str,
    /// `-machine`.
    pub machine: &'static str,
    /// `-cpu`.
    pub cpu: &'static str,
    /// `-icount` for the deterministic scenario runs, `sleep=off` on every
    /// board: with the default `sleep=on`, QEMU 7.2 advances virtual time
    /// by real time while every core sleeps, which moved `storm`'s
    /// interrupts run to run (mps2-an521: 1 run in 8; lm3s6965evb: once in
    /// a CI run, 291 distinct preempted instructions instead of 290); with
    /// `sleep=off` it jumps to the next timer deadline.
    pub icount: &'static str,
}

/// The boards QEMU runs, the demo's default first.
pub const BOARDS: [Board; 6] = [
    Board {
        name: "lm3s6965evb",
        target: "thumbv7m-none-eabi",
        machine: "lm3s6965evb",
        cpu: "cortex-m3",
        icount: "shift=3,sleep=off",
    },
    Board {
        name: "microbit",
        target: "thumbv6m-none-eabi",
        machine: "microbit",
        cpu: "cortex-m0",
        icount: "shift=3,sleep=off",
    },
    Board {
        name: "netduinoplus2",
        target: "thumbv7em-none-eabihf",
        machine: "netduinoplus2",
        cpu: "cortex-m4",
        icount: "shift=3,sleep=off",
    },
    Board {
        name: "mps2-an385",
        target: "thumbv7m-none-eabi",
        machine: "mps2-an385",
        cpu: "cortex-m3",
        icount: "shift=3,sleep=off",
    },
    Board {
        name: "mps2-an386",
        target: "thumbv7em-none-eabihf",
        machine: "mps2-an386",
        cpu: "cortex-m4",
        icount: "shift=3,sleep=off",
    },
    Board {
        name: "mps2-an521",
        target: "thumbv8m.main-none-eabi",
        machine: "mps2-an521",
        cpu: "cortex-m33",
        icount: "shift=3,sleep=off",
    },
];

fn board(name: &str) -> Result<&'static Board, String> {
    BOARDS
        .iter()
        .find(|board| board.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = BOARDS.iter().map(|board| board.name).collect();
            format!(
                "unknown board `{name}`: QEMU boards are {}",
                names.join(", ")
            )
        })
}

/// Installs qemu-system-arm through apt when it is missing and we are root,
/// or says exactly what to install.
pub fn ensure_qemu() -> Result<(), String> {
    if output(Command::new("qemu-system-arm").arg("--version")).is_some() {
        return Ok(());
    }
    let root_user = output(Command::new("id").arg("-u")).is_some_and(|id| id.trim() == "0");
    let apt = output(Command::new("apt-get").arg("--version")).is_some();
    if root_user && apt {
        step(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        step(
            "install qemu-system-arm",
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "qemu-system-arm"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        return Ok(());
    }
    Err("qemu-system-arm is missing: install it with `sudo apt-get install qemu-system-arm` \
         (Debian, Ubuntu), `sudo dnf install qemu-system-arm` (Fedora) or `brew install qemu` (macOS)"
        .into())
}

/// Builds `example` of `board` (release) and returns the ELF's path. The
/// build is `firmware::build`'s, the one the size check measures: the
/// scenarios run the very binaries whose sizes are recorded, and `cargo
/// xtask test` builds each example once.
pub fn build(board: &Board, example: &str) -> Result<PathBuf, String> {
    crate::firmware::build(board.name, board.target, Examples::One(example))?;
    Ok(crate::firmware::elf(board.target, example))
}

/// What a run printed and how it ended.
pub struct Run {
    /// QEMU exited with status 0 (the firmware's semihosting verdict).
    pub success: bool,
    /// The decoded defmt lines, `LEVEL message`.
    pub lines: Vec<String>,
}

/// Runs `elf` on `board` in QEMU; `extra` goes on QEMU's command line and
/// `input` to the emulated UART.
pub fn run(board: &Board, elf: &Path, extra: &[&str], input: Option<&[u8]>) -> Result<Run, String> {
    ensure_qemu()?;
    let mut command = Command::new("qemu-system-arm");
    command.args(["-cpu", board.cpu, "-machine", board.machine]);
    if input.is_some() {
        command.args(["-display", "none", "-serial", "stdio"]);
    } else {
        command.arg("-nographic");
    }
    command
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(extra)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start qemu-system-arm: {error}"))?;
    let mut stdin = child.stdin.take();
    if let (Some(stdin), Some(input)) = (stdin.as_mut(), input) {
        stdin
            .write_all(input)
            .map_err(|error| format!("cannot feed the UART: {error}"))?;
    }
    drop(stdin);
    let result = child
        .wait_with_output()
        .map_err(|error| format!("qemu-system-arm failed: {error}"))?;
    let lines = decode(elf, &result.stdout)?;
    Ok(Run {
        success: result.status.success(),
        lines,
    })
}

impl Run {
    /// The decoded lines as one text, each line ended by a newline: the
    /// form of a scenario's expected `.run` file.
    pub fn text(&self) -> String {
        self.lines.join("\n") + "\n"
    }
}

/// Decodes defmt frames from `bytes` with the table in `elf`.
fn decode(elf: &Path, bytes: &[u8]) -> Result<Vec<String>, String> {
    let image =
        std::fs::read(elf).map_err(|error| format!("cannot read {}: {error}", elf.display()))?;
    let table = defmt_decoder::Table::parse(&image)
        .map_err(|error| format!("{}: bad defmt data: {error}", elf.display()))?
        .ok_or_else(|| format!("{} has no defmt data", elf.display()))?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame.level().map_or("", |level| level.as_str());
                lines.push(format!(
                    "{:<5} {}",
                    level.to_uppercase(),
                    frame.display_message()
                ));
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => {
                lines.push("(malformed defmt frame)".into());
                break;
            }
        }
    }
    Ok(lines)
}

/// `cargo xtask demo [--board B]`.
pub fn demo(args: &[String]) -> Result<(), String> {
    let name = match args.iter().position(|arg| arg == "--board") {
        Some(index) => args
            .get(index + 1)
            .ok_or("--board needs a board name")?
            .as_str(),
        None => BOARDS[0].name,
    };
    crate::setup::targets()?;
    ensure_qemu()?;
    let board = board(name)?;
    let elf = build(board, "demo")?;
    let run = run(board, &elf, &[], None)?;
    println!();
    for line in &run.lines {
        println!("{line}");
    }
    if run.success {
        Ok(())
    } else {
        Err(format!(
            "the demo on {name} failed (QEMU exit status non-zero)"
        ))
    }
}

/// `cargo xtask qemu BOARD EXAMPLE [-- QEMU ARGS]`.
pub fn qemu(args: &[String]) -> Result<(), String> {
    let (Some(name), Some(example)) = (args.first(), args.get(1)) else {
        return Err("usage: cargo xtask qemu BOARD EXAMPLE [-- QEMU ARGS]".into());
    };
    let extra: Vec<&str> = args
        .iter()
        .skip_while(|arg| *arg != "--")
        .skip(1)
        .map(String::as_str)
        .collect();
    crate::setup::targets()?;
    let board = board(name)?;
    let elf = build(board, example)?;
    let input = crate::scenarios::uart_input(name, example)?;
    let run = run(board, &elf, &extra, input.as_deref().map(str::as_bytes))?;
    for line in &run.lines {
        println!("{line}");
    }
    if run.success {
        Ok(())
    } else {
        Err(format!(
            "{name}/{example} failed (QEMU exit status non-zero)"
        ))
    }
}

//! `cargo xtask size`: the bytes aiopoll's types take on each target
//! (thumbv6m, thumbv7m, x86_64), read from the object file of the
//! `aiopoll-sizes` crate built for that target, so nothing has to run there;
//! then, from the bench firmware (`benches/firmware`, thumbv7m, opt-level
//! "s"), the flash and RAM that a context with one source adds; and the
//! firmware's instruction counts under `qemu-system-arm -icount shift=0`
//! (aiopoll beside embassy-sync's `Signal` and maitake-sync's `WaitQueue`)
//! on a Cortex-M0 (microbit), a Cortex-M3 (mps2-an385) and a Cortex-M33
//! (mps2-an505), each run twice to show they repeat.

use std::path::{Path, PathBuf};

use object::read::archive::ArchiveFile;
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind};

use crate::shell::{cargo, output, root, step};

/// The targets whose sizes are reported, with the features they need.
const TARGETS: [(&str, &[&str]); 3] = [
    ("thumbv6m-none-eabi", &["--features", "critical-section"]),
    ("thumbv7m-none-eabi", &[]),
    ("x86_64-unknown-linux-gnu", &[]),
];

/// What `AIOPOLL_SIZES` holds, in order (as `benches/sizes/src/lib.rs`).
const NAMES: [&str; 10] = [
    "Context<N=1, W=1>",
    "Context<N=2, W=1>",
    "Context<N=1, W=2>",
    "Context<N=2, W=2>",
    "Context<N=16, W=2>",
    "WaitQueue",
    "Completion",
    "Handle",
    "Context<N=1, W=2, QueuedOneShot>",
    "Context<N=16, W=2, QueuedOneShot>",
];

fn target_dir() -> PathBuf {
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

/// Reads the `AIOPOLL_SIZES` static out of an rlib's object files.
fn read_sizes(rlib: &Path) -> Result<Vec<u32>, String> {
    let data = std::fs::read(rlib).map_err(|error| format!("{}: {error}", rlib.display()))?;
    let archive =
        ArchiveFile::parse(&*data).map_err(|error| format!("{}: {error}", rlib.display()))?;
    for member in archive.members() {
        let member = member.map_err(|error| format!("{}: {error}", rlib.display()))?;
        let Ok(bytes) = member.data(&*data) else {
            continue;
        };
        let Ok(file) = object::File::parse(bytes) else {
            continue; // lib.rmeta and the like
        };
        let Some(symbol) = file
            .symbols()
            .find(|symbol| symbol.name() == Ok("AIOPOLL_SIZES"))
        else {
            continue;
        };
        let index = symbol
            .section_index()
            .ok_or("AIOPOLL_SIZES has no section")?;
        let section = file
            .section_by_index(index)
            .map_err(|error| error.to_string())?;
        let contents = section.data().map_err(|error| error.to_string())?;
        let start = (symbol.address() - section.address()) as usize;
        let little = file.is_little_endian();
        return contents
            .get(start..start + 4 * NAMES.len())
            .map(|bytes| {
                bytes
                    .chunks_exact(4)
                    .map(|word| {
                        let word = [word[0], word[1], word[2], word[3]];
                        if little {
                            u32::from_le_bytes(word)
                        } else {
                            u32::from_be_bytes(word)
                        }
                    })
                    .collect()
            })
            .ok_or_else(|| "AIOPOLL_SIZES is shorter than expected".to_string());
    }
    Err(format!("no AIOPOLL_SIZES symbol in {}", rlib.display()))
}

pub fn run(_args: &[String]) -> Result<(), String> {
    crate::setup::targets()?;
    let mut rows = Vec::new();
    for (target, features) in TARGETS {
        step(
            &format!("build aiopoll-sizes for {target}"),
            cargo()
                .args([
                    "build",
                    "-p",
                    "aiopoll-sizes",
                    "--release",
                    "--target",
                    target,
                ])
                .args(features),
        )?;
        let rlib = target_dir()
            .join(target)
            .join("release/libaiopoll_sizes.rlib");
        rows.push((target, read_sizes(&rlib)?));
    }

    let mut text = String::from("\n| type | ");
    text.push_str(
        &TARGETS
            .iter()
            .map(|(target, _)| *target)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    text.push_str(" |\n|---|");
    text.push_str(&"---:|".repeat(TARGETS.len()));
    text.push('\n');
    let mut line = |name: &str, value: &dyn Fn(&[u32]) -> i64| {
        text.push_str(&format!("| {name} |"));
        for (_, sizes) in &rows {
            text.push_str(&format!(" {} |", value(sizes)));
        }
        text.push('\n');
    };
    for (index, name) in NAMES.iter().enumerate() {
        line(&format!("size_of {name}"), &|sizes| i64::from(sizes[index]));
    }
    let delta = |a: usize, b: usize| move |sizes: &[u32]| i64::from(sizes[b]) - i64::from(sizes[a]);
    line("bytes per request slot, W=2 (N=2 − N=1)", &delta(2, 3));
    line(
        "bytes per request slot, W=2 ((N=16 − N=1) / 15)",
        &|sizes| (i64::from(sizes[4]) - i64::from(sizes[2])) / 15,
    );
    line("bytes per request slot, W=1 (N=2 − N=1)", &delta(0, 1));
    line(
        "bytes per request slot, W=2, `QueuedOneShot` ((N=16 − N=1) / 15)",
        &|sizes| (i64::from(sizes[9]) - i64::from(sizes[8])) / 15,
    );
    line("bytes per wait entry (W=2 − W=1, N=1)", &delta(0, 2));
    line("bytes per wait queue (size_of WaitQueue)", &|sizes| {
        i64::from(sizes[5])
    });
    print!("{text}");
    let thumbv7m = &rows[1].1;
    let slot = (i64::from(thumbv7m[4]) - i64::from(thumbv7m[2])) / 15;
    let queued_slot = (i64::from(thumbv7m[9]) - i64::from(thumbv7m[8])) / 15;
    let mut verdicts = vec![
        verdict("bytes per request slot, W=2, thumbv7m", slot as f64, 48.0),
        verdict(
            "the same, a `QueuedOneShot` context",
            queued_slot as f64,
            48.0,
        ),
    ];
    firmware(&mut verdicts)?;
    println!("\n| target (issue 12) | measured | at most | met? |\n|---|---:|---:|---|");
    for line in verdicts {
        println!("{line}");
    }
    Ok(())
}

/// One row of the targets table: `measured` against an upper `limit`.
fn verdict(what: &str, measured: f64, limit: f64) -> String {
    let met = if measured <= limit {
        "met".to_string()
    } else {
        format!("missed by {:.0}%", (measured / limit - 1.0) * 100.0)
    };
    format!("| {what} | {measured:.0} | {limit:.0} | {met} |")
}

/// The flash (everything loaded: code, read-only data, initial values) and
/// RAM (initialised and zeroed data; not the stack) of an ELF image.
fn flash_and_ram(elf: &Path) -> Result<(u64, u64), String> {
    let data = std::fs::read(elf).map_err(|error| format!("{}: {error}", elf.display()))?;
    let file =
        object::File::parse(&*data).map_err(|error| format!("{}: {error}", elf.display()))?;
    let (mut flash, mut ram) = (0, 0);
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        const ALLOC: u64 = 0x2;
        const WRITE: u64 = 0x1;
        if sh_flags & ALLOC == 0 {
            continue;
        }
        let zeroed = matches!(
            section.kind(),
            SectionKind::UninitializedData | SectionKind::UninitializedTls
        );
        if !zeroed {
            flash += section.size();
        }
        if sh_flags & WRITE != 0 {
            ram += section.size();
        }
    }
    Ok((flash, ram))
}

const FIRMWARE_TARGET: &str = "thumbv7m-none-eabi";

/// A QEMU machine the instruction-count firmware runs on.
struct Machine {
    /// The column's title.
    core: &'static str,
    target: &'static str,
    /// `qemu-system-arm`'s machine options.
    qemu: &'static [&'static str],
}

/// The Cortex-M0 (thumbv6m: no compare-and-swap, so atomics go through the
/// critical section), the Cortex-M3 the targets are stated for, and the
/// Cortex-M33 (thumbv8m.main); the firmware picks the machine's timer
/// (`benches/firmware/src/lib.rs`).
const MACHINES: [Machine; 3] = [
    Machine {
        core: "Cortex-M0 (microbit)",
        target: "thumbv6m-none-eabi",
        qemu: &["-machine", "microbit"],
    },
    Machine {
        core: "Cortex-M3 (mps2-an385)",
        target: "thumbv7m-none-eabi",
        qemu: &["-machine", "mps2-an385", "-cpu", "cortex-m3"],
    },
    Machine {
        core: "Cortex-M33 (mps2-an505)",
        target: "thumbv8m.main-none-eabi",
        qemu: &["-machine", "mps2-an505"],
    },
];

/// The firmware's output: each case's instructions per operation, net of
/// its loop, in the firmware's order.
fn counts(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, _raw, net] = fields[..] else {
                return None;
            };
            Some((name.to_string(), net.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// One machine's counts, and whether its two runs agreed.
type Column<'m> = (&'m Machine, Vec<(String, f64)>, bool);

/// What the ratio table compares: aiopoll's case over a peer's, in the
/// same firmware.
const RATIOS: [(&str, &str, &str); 8] = [
    (
        "round trip (submit, wake, reap) / maitake-sync (wait, wake, ready)",
        "aiopoll submit->wake->reap",
        "maitake-sync WaitQueue wait->wake->ready",
    ),
    (
        "round trip woken by an interrupt / maitake-sync's",
        "aiopoll submit->interrupt wake->reap",
        "maitake-sync WaitQueue wait->interrupt wake->ready",
    ),
    (
        "the same, a `QueuedOneShot` context / maitake-sync's",
        "aiopoll QueuedOneShot submit->interrupt wake->reap",
        "maitake-sync WaitQueue wait->interrupt wake->ready",
    ),
    (
        "awaited round trip woken by an interrupt / maitake-sync's",
        "aiopoll awaited Request wait->interrupt wake->ready",
        "maitake-sync WaitQueue wait->interrupt wake->ready",
    ),
    (
        "submit, cancel, reap / maitake-sync wait, drop",
        "aiopoll submit->cancel->reap",
        "maitake-sync WaitQueue wait->drop (cancel)",
    ),
    (
        "awaited request, handler side / maitake-sync WaitQueue",
        "aiopoll awaited Request: interrupt wakes the task (handler side)",
        "maitake-sync WaitQueue: interrupt wakes the task (handler side)",
    ),
    (
        "round trip woken by an interrupt / embassy-sync Signal's",
        "aiopoll submit->interrupt wake->reap",
        "embassy-sync Signal wait->interrupt signal->ready",
    ),
    (
        "awaited request, handler side / embassy-sync Signal",
        "aiopoll awaited Request: interrupt wakes the task (handler side)",
        "embassy-sync Signal: interrupt wakes the task (handler side)",
    ),
];

/// The instruction counts of every machine side by side (net of each
/// case's loop), the ratios to the peers in the same firmware, and the
/// Cortex-M3 targets' verdicts.
fn icount_tables(columns: &[Column], verdicts: &mut Vec<String>) -> String {
    let mut text =
        String::from("\n| instructions per operation, net of the loop (QEMU, -icount shift=0) |");
    for (machine, _, _) in columns {
        text.push_str(&format!(" {} |", machine.core));
    }
    text.push_str("\n|---|");
    text.push_str(&"---:|".repeat(columns.len()));
    text.push('\n');
    let find = |counts: &[(String, f64)], name: &str| {
        counts
            .iter()
            .find(|(case, _)| case == name)
            .map(|(_, count)| *count)
    };
    if let Some((_, first, _)) = columns.first() {
        for (name, _) in first {
            text.push_str(&format!("| {name} |"));
            for (_, counts, _) in columns {
                match find(counts, name) {
                    Some(count) => text.push_str(&format!(" {count:.1} |")),
                    None => text.push_str(" - |"),
                }
            }
            text.push('\n');
        }
    }
    text.push_str("\n| aiopoll / peer, same firmware |");
    for (machine, _, _) in columns {
        text.push_str(&format!(" {} |", machine.core));
    }
    text.push_str("\n|---|");
    text.push_str(&"---:|".repeat(columns.len()));
    text.push('\n');
    for (what, ours, theirs) in RATIOS {
        text.push_str(&format!("| {what} |"));
        for (_, counts, _) in columns {
            match find(counts, ours).zip(find(counts, theirs)) {
                Some((ours, theirs)) => text.push_str(&format!(" {:.2}x |", ours / theirs)),
                None => text.push_str(" - |"),
            }
        }
        text.push('\n');
    }
    for (machine, _, same) in columns {
        text.push_str(&format!(
            "\n{}: two runs {}",
            machine.core,
            if *same {
                "gave identical counts"
            } else {
                "DIFFERED (the counts are not deterministic)"
            }
        ));
    }
    text.push('\n');
    if let Some((_, m3, _)) = columns
        .iter()
        .find(|(machine, _, _)| machine.target == FIRMWARE_TARGET)
    {
        for (name, what, limit) in [
            (
                "aiopoll submit->interrupt wake->reap",
                "Cortex-M3 instructions, submit -> interrupt wake -> reap",
                180.0,
            ),
            (
                "aiopoll wake of one waiter (interrupt side)",
                "Cortex-M3 instructions, interrupt-side wake of one waiter",
                80.0,
            ),
            (
                "aiopoll cancel (one request)",
                "Cortex-M3 instructions, cancel of one request",
                60.0,
            ),
            (
                "aiopoll reap (one completion)",
                "Cortex-M3 instructions, reap of one completion",
                40.0,
            ),
        ] {
            if let Some(count) = find(m3, name) {
                verdicts.push(verdict(what, count, limit));
            }
            // The same step on a context that takes queued one-shot
            // requests only (`icount-queued`).
            let queued = name.replacen("aiopoll ", "aiopoll QueuedOneShot ", 1);
            if let Some(count) = find(m3, &queued) {
                verdicts.push(verdict(&format!("{what}, `QueuedOneShot`"), count, limit));
            }
        }
        // Issue 12: the round trip at most 0.66x maitake-sync's; issue 11:
        // the awaited round trip at most maitake-sync's.
        for (what, ours, limit) in [
            (
                "Cortex-M3 submit -> interrupt wake -> reap / maitake-sync's (ratio)",
                "aiopoll submit->interrupt wake->reap",
                0.66,
            ),
            (
                "Cortex-M3 awaited request, wait -> interrupt wake -> ready / maitake-sync's (ratio)",
                "aiopoll awaited Request wait->interrupt wake->ready",
                1.0,
            ),
        ] {
            let theirs = find(m3, "maitake-sync WaitQueue wait->interrupt wake->ready");
            if let Some((ours, theirs)) = find(m3, ours).zip(theirs) {
                let ratio = ours / theirs;
                let met = if ratio <= limit {
                    "met".to_string()
                } else {
                    format!("missed by {:.0}%", (ratio / limit - 1.0) * 100.0)
                };
                verdicts.push(format!("| {what} | {ratio:.2}x | {limit:.2}x | {met} |"));
            }
        }
    }
    text
}

fn firmware_cargo() -> Command {
    let mut command = cargo();
    command
        .current_dir(root().join("benches/firmware"))
        .env("CARGO_TARGET_DIR", target_dir());
    command
}

/// Flash and RAM of the size firmware, and the instruction counts.
fn firmware(verdicts: &mut Vec<String>) -> Result<(), String> {
    step(
        "build the size firmware (thumbv7m, opt-level \"s\")",
        firmware_cargo().args([
            "build",
            "--release",
            "--bin",
            "size-base",
            "--bin",
            "size-aiopoll",
            "--bin",
            "size-aiopoll-queued",
        ]),
    )?;
    let dir = target_dir().join(FIRMWARE_TARGET).join("release");
    let (base_flash, base_ram) = flash_and_ram(&dir.join("size-base"))?;
    let (flash, ram) = flash_and_ram(&dir.join("size-aiopoll"))?;
    let (queued_flash, queued_ram) = flash_and_ram(&dir.join("size-aiopoll-queued"))?;
    println!(
        "\n| firmware (thumbv7m, opt-level \"s\") | flash bytes | RAM bytes |\n|---|---:|---:|\n\
         | size-base: runtime, panic handler, main loop | {base_flash} | {base_ram} |\n\
         | size-aiopoll: + a context (1 slot, 2 wait entries, every kind of request) and one source, submit/wake/cancel/reap | {flash} | {ram} |\n\
         | what aiopoll adds (core + the Cortex-M adapter: CortexMLocks, IrqEvent) | {} | {} |\n\
         | size-aiopoll-queued: the same with a `QueuedOneShot` context | {queued_flash} | {queued_ram} |\n\
         | what aiopoll adds, `QueuedOneShot` | {} | {} |",
        flash as i64 - base_flash as i64,
        ram as i64 - base_ram as i64,
        queued_flash as i64 - base_flash as i64,
        queued_ram as i64 - base_ram as i64,
    );
    verdicts.push(verdict(
        "flash aiopoll adds for a context with one source, opt-level \"s\" (bytes)",
        flash as f64 - base_flash as f64,
        2048.0,
    ));
    verdicts.push(verdict(
        "the same, a `QueuedOneShot` context (bytes)",
        queued_flash as f64 - base_flash as f64,
        2048.0,
    ));

    let mut columns = Vec::new();
    for machine in &MACHINES {
        step(
            &format!(
                "build the instruction-count firmware ({}, opt-level 3)",
                machine.target
            ),
            firmware_cargo().args([
                "build",
                "--profile",
                "icount",
                "--bin",
                "icount",
                "--bin",
                "icount-queued",
                "--target",
                machine.target,
            ]),
        )?;
        // `icount`, then `icount-queued` (a `QueuedOneShot` context alone in
        // its firmware), each run twice: one column of counts.
        let mut column = Vec::new();
        let mut agreed = true;
        for binary in ["icount", "icount-queued"] {
            let elf = target_dir()
                .join(machine.target)
                .join("icount")
                .join(binary);
            let qemu = || {
                output(
                    Command::new("qemu-system-arm")
                        .args(machine.qemu)
                        .arg("-nographic")
                        .args(["-icount", "shift=0"])
                        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
                        .arg(&elf),
                )
            };
            let Some(first) = qemu() else {
                println!(
                    "\nqemu-system-arm is missing or the {} firmware `{binary}` failed: no \
                     instruction counts (apt-get install qemu-system-arm)",
                    machine.core
                );
                return Ok(());
            };
            let second = qemu().unwrap_or_default();
            agreed &= first == second;
            column.extend(counts(&first));
        }
        columns.push((machine, column, agreed));
    }
    println!("{}", icount_tables(&columns, verdicts));
    Ok(())
}

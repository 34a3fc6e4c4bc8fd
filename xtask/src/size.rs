//! `cargo xtask size`: the bytes aiopoll's types take on each target
//! (thumbv6m, thumbv7m, x86_64), read from the object file of the
//! `aiopoll-sizes` crate built for that target, so nothing has to run there;
//! then, from the bench firmware (`benches/firmware`, thumbv7m, opt-level
//! "s"), the flash and RAM that a context with one source adds; and the
//! firmware's instruction counts under `qemu-system-arm -icount shift=0`
//! (aiopoll beside embassy-sync's `Signal` and maitake-sync's `WaitQueue`),
//! run twice to show they repeat.

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
const NAMES: [&str; 8] = [
    "Context<N=1, W=1>",
    "Context<N=2, W=1>",
    "Context<N=1, W=2>",
    "Context<N=2, W=2>",
    "Context<N=16, W=2>",
    "WaitQueue",
    "Completion",
    "Handle",
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
    line("bytes per wait entry (W=2 − W=1, N=1)", &delta(0, 2));
    line("bytes per wait queue (size_of WaitQueue)", &|sizes| {
        i64::from(sizes[5])
    });
    print!("{text}");
    let thumbv7m = &rows[1].1;
    let slot = (i64::from(thumbv7m[4]) - i64::from(thumbv7m[2])) / 15;
    let mut verdicts = vec![verdict(
        "bytes per request slot, W=2, thumbv7m",
        slot as f64,
        48.0,
    )];
    firmware(&mut verdicts)?;
    println!("\n| target (issue 5) | measured | at most | met? |\n|---|---:|---:|---|");
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
        ]),
    )?;
    let dir = target_dir().join(FIRMWARE_TARGET).join("release");
    let (base_flash, base_ram) = flash_and_ram(&dir.join("size-base"))?;
    let (flash, ram) = flash_and_ram(&dir.join("size-aiopoll"))?;
    println!(
        "\n| firmware (thumbv7m, opt-level \"s\") | flash bytes | RAM bytes |\n|---|---:|---:|\n\
         | size-base: runtime, panic handler, main loop | {base_flash} | {base_ram} |\n\
         | size-aiopoll: + a context (1 slot, 2 wait entries) and one source, submit/wake/cancel/reap | {flash} | {ram} |\n\
         | what aiopoll adds (core + the Cortex-M adapter: CortexMLocks, IrqEvent) | {} | {} |",
        flash as i64 - base_flash as i64,
        ram as i64 - base_ram as i64,
    );
    verdicts.push(verdict(
        "flash aiopoll adds for a context with one source, opt-level \"s\" (bytes)",
        flash as f64 - base_flash as f64,
        4096.0,
    ));

    step(
        "build the instruction-count firmware (thumbv7m, opt-level 3)",
        firmware_cargo().args(["build", "--profile", "icount", "--bin", "icount"]),
    )?;
    let elf = target_dir().join(FIRMWARE_TARGET).join("icount/icount");
    let qemu = |elf: &Path| {
        output(
            Command::new("qemu-system-arm")
                .args(["-machine", "mps2-an385", "-cpu", "cortex-m3", "-nographic"])
                .args(["-icount", "shift=0"])
                .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
                .arg(elf),
        )
    };
    let Some(first) = qemu(&elf) else {
        println!(
            "\nqemu-system-arm is missing or the firmware failed: no instruction counts \
             (apt-get install qemu-system-arm)"
        );
        return Ok(());
    };
    let second = qemu(&elf).unwrap_or_default();
    println!(
        "\n| Cortex-M3 (QEMU mps2-an385, -icount shift=0) | instructions/op | net of the loop |\n|---|---:|---:|"
    );
    for line in first.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [name, raw, net] = fields[..] {
            println!("| {name} | {raw} | {net} |");
            let net: f64 = net.parse().unwrap_or(f64::NAN);
            match name {
                "aiopoll submit->interrupt wake->reap" => verdicts.push(verdict(
                    "Cortex-M3 instructions, submit -> interrupt wake -> reap",
                    net,
                    180.0,
                )),
                "aiopoll wake of one waiter (interrupt side)" => verdicts.push(verdict(
                    "Cortex-M3 instructions, interrupt-side wake of one waiter",
                    net,
                    80.0,
                )),
                _ => {}
            }
        }
    }
    println!(
        "\ntwo runs {}",
        if first == second {
            "gave identical counts"
        } else {
            "DIFFERED (the counts are not deterministic)"
        }
    );
    Ok(())
}

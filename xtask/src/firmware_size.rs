//! `cargo xtask firmware-size [--bless] [BOARD..]`: the text, data and bss
//! bytes of every example of every board (QEMU boards and dev boards; or of
//! the boards named), as `size`
//! counts them, read from the release ELF and compared with
//! `tests/firmware-size/<board>/<example>.size`, so that a change in size shows
//! up in review. `--bless` writes the files (and removes those of examples
//! that are gone).
//!
//! - text: allocated sections that are not writable (vector table, code,
//!   read-only data, the RP2040's boot loader): flash.
//! - data: allocated, writable, with contents (`.data`): flash and RAM.
//! - bss: allocated, without contents (`.bss`, `.uninit`): RAM.
//!
//! The sizes depend on the toolchain and on each board's lock file; the
//! builds remap source paths, so they do not depend on where the checkout
//! lies (see `firmware`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, SectionFlags, SectionKind};

use crate::firmware::{self, Examples};
use crate::shell::{output, root};

/// The bytes of one ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizes {
    text: u64,
    data: u64,
    bss: u64,
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "text {}\ndata {}\nbss {}\n",
            self.text, self.data, self.bss
        )
    }
}

impl Sizes {
    /// Reads a `.size` file's contents (the `Display` form).
    fn parse(text: &str) -> Option<Sizes> {
        let mut sizes = (None, None, None);
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else {
                return None;
            };
            let value = value.parse().ok();
            match name {
                "text" => sizes.0 = value,
                "data" => sizes.1 = value,
                "bss" => sizes.2 = value,
                _ => return None,
            }
        }
        Some(Sizes {
            text: sizes.0?,
            data: sizes.1?,
            bss: sizes.2?,
        })
    }

    /// Measures the ELF at `path`.
    fn measure(path: &Path) -> Result<Sizes, String> {
        const SHF_WRITE: u64 = 0x1;
        const SHF_ALLOC: u64 = 0x2;
        let data = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let file = object::File::parse(&*data)
            .map_err(|error| format!("{} is not an ELF: {error}", path.display()))?;
        let mut sizes = Sizes {
            text: 0,
            data: 0,
            bss: 0,
        };
        for section in file.sections() {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                return Err(format!("{} is not an ELF", path.display()));
            };
            if sh_flags & SHF_ALLOC == 0 {
                continue;
            }
            let bytes = section.size();
            if matches!(
                section.kind(),
                SectionKind::UninitializedData | SectionKind::UninitializedTls
            ) {
                sizes.bss += bytes;
            } else if sh_flags & SHF_WRITE != 0 {
                sizes.data += bytes;
            } else {
                sizes.text += bytes;
            }
        }
        Ok(sizes)
    }
}

/// Every board directory under `boards/` with its target: the QEMU boards
/// and the flashable ones, each once.
fn boards() -> Vec<(&'static str, &'static str)> {
    let mut boards: Vec<(&str, &str)> = crate::qemu::BOARDS
        .iter()
        .map(|board| (board.name, board.target))
        .collect();
    for board in &crate::flash::BOARDS {
        if !boards
            .iter()
            .any(|(directory, _)| *directory == board.directory)
        {
            boards.push((board.directory, board.target));
        }
    }
    boards
}

/// The examples of the package in `boards/<directory>`, by name, read from
/// `cargo metadata` (examples may live outside the directory).
fn examples(directory: &str) -> Result<Vec<String>, String> {
    let board = root().join("boards").join(directory);
    let json = output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&board)
            .args(["metadata", "--no-deps", "--format-version", "1"]),
    )
    .ok_or_else(|| format!("`cargo metadata` failed in {}", board.display()))?;
    let metadata: serde_json::Value = serde_json::from_str(&json)
        .map_err(|error| format!("`cargo metadata` in {}: {error}", board.display()))?;
    let manifest = board.join("Cargo.toml");
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| {
            package["manifest_path"]
                .as_str()
                .is_some_and(|path| Path::new(path) == manifest)
        })
        .ok_or_else(|| format!("no package at {}", manifest.display()))?;
    let mut names: Vec<String> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "example"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// The `.size` files in `expected`, by example name.
fn size_files(expected: &Path) -> BTreeSet<String> {
    std::fs::read_dir(expected)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "size")
        })
        .filter_map(|path| {
            path.file_stem()
                .and_then(|stem| stem.to_str())
                .map(str::to_owned)
        })
        .collect()
}

fn signed(now: u64, then: u64) -> String {
    match now.cmp(&then) {
        std::cmp::Ordering::Equal => String::new(),
        std::cmp::Ordering::Greater => format!(" (+{})", now - then),
        std::cmp::Ordering::Less => format!(" (-{})", then - now),
    }
}

/// Builds and measures every example of the boards named in `only` (every
/// board if it is empty); with `bless`, writes the `.size` files, else
/// compares with them.
fn sizes(bless: bool, only: &[String]) -> Result<(), String> {
    let all = boards();
    if let Some(unknown) = only
        .iter()
        .find(|name| !all.iter().any(|(directory, _)| directory == name))
    {
        let names: Vec<&str> = all.iter().map(|(directory, _)| *directory).collect();
        return Err(format!(
            "unknown board `{unknown}`: the boards are {}",
            names.join(", ")
        ));
    }
    crate::setup::targets()?;
    let mut table = vec![format!(
        "| {:<26} | {:>13} | {:>11} | {:>11} | |",
        "board/example", "text", "data", "bss"
    )];
    table.push(format!(
        "|{:-<28}|{:->15}|{:->13}|{:->13}|-|",
        "", "", "", ""
    ));
    let mut differences = Vec::new();
    for (directory, target) in all {
        if !only.is_empty() && !only.iter().any(|name| name == directory) {
            continue;
        }
        let names = examples(directory)?;
        let expected_dir = root().join("tests/firmware-size").join(directory);
        // Measured right after the board's build: boards of one target
        // share a directory of ELFs, and may share example names.
        firmware::build(directory, target, Examples::All)?;
        for example in &names {
            let sizes = Sizes::measure(&firmware::elf(target, example))?;
            let path = expected_dir.join(format!("{example}.size"));
            let previous = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| Sizes::parse(&text));
            let note = match previous {
                Some(previous) if previous == sizes => "",
                Some(_) => "changed",
                None => "new",
            };
            let delta = |now, then: fn(&Sizes) -> u64| {
                previous.map_or(String::new(), |previous| signed(now, then(&previous)))
            };
            table.push(format!(
                "| {:<26} | {:>13} | {:>11} | {:>11} | {note} |",
                format!("{directory}/{example}"),
                format!("{}{}", sizes.text, delta(sizes.text, |s| s.text)),
                format!("{}{}", sizes.data, delta(sizes.data, |s| s.data)),
                format!("{}{}", sizes.bss, delta(sizes.bss, |s| s.bss)),
            ));
            if previous == Some(sizes) {
                continue;
            }
            if bless {
                std::fs::create_dir_all(&expected_dir).map_err(|error| {
                    format!("cannot create {}: {error}", expected_dir.display())
                })?;
                std::fs::write(&path, sizes.to_string())
                    .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            } else {
                differences.push(match previous {
                    Some(previous) => format!(
                        "{directory}/{example}: text {}{}, data {}{}, bss {}{} ({} says text {}, data {}, bss {})",
                        sizes.text,
                        signed(sizes.text, previous.text),
                        sizes.data,
                        signed(sizes.data, previous.data),
                        sizes.bss,
                        signed(sizes.bss, previous.bss),
                        relative(&path),
                        previous.text,
                        previous.data,
                        previous.bss
                    ),
                    None => format!(
                        "{directory}/{example}: text {}, data {}, bss {}, and {} is missing or unreadable",
                        sizes.text,
                        sizes.data,
                        sizes.bss,
                        relative(&path)
                    ),
                });
            }
        }
        for stale in size_files(&expected_dir) {
            if names.contains(&stale) {
                continue;
            }
            let path = expected_dir.join(format!("{stale}.size"));
            if bless {
                std::fs::remove_file(&path)
                    .map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
                table.push(format!(
                    "| {directory}/{stale}: removed {} |",
                    relative(&path)
                ));
            } else {
                differences.push(format!(
                    "{}: boards/{directory} has no example `{stale}`",
                    relative(&path)
                ));
            }
        }
    }
    println!("\n{}", table.join("\n"));
    if differences.is_empty() {
        println!(
            "\n{}",
            if bless {
                "sizes written to tests/firmware-size/*/*.size"
            } else {
                "every example's size matches tests/firmware-size/*/*.size"
            }
        );
        return Ok(());
    }
    Err(format!(
        "firmware sizes differ from the recorded ones:\n  {}\nIf the change is meant, run `cargo xtask firmware-size --bless` (or name the boards: \
         `cargo xtask firmware-size --bless BOARD..`) and commit the .size files \
         (sizes depend on the toolchain and the boards' lock files too)",
        differences.join("\n  ")
    ))
}

/// `path` relative to the repository, for messages.
fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .map_or_else(|_| path.to_path_buf(), PathBuf::from)
        .display()
        .to_string()
}

/// `cargo xtask firmware-size [--bless] [BOARD..]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let bless = args.iter().any(|arg| arg == "--bless");
    let boards: Vec<String> = args
        .iter()
        .filter(|arg| *arg != "--bless")
        .cloned()
        .collect();
    if let Some(option) = boards.iter().find(|arg| arg.starts_with('-')) {
        return Err(format!(
            "unknown option `{option}`: usage: cargo xtask firmware-size [--bless] [BOARD..]"
        ));
    }
    sizes(bless, &boards)
}

/// The size check of `cargo xtask test`: every board.
pub fn check() -> Result<(), String> {
    sizes(false, &[])
}

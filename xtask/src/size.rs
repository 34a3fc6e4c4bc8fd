//! `cargo xtask size`: the bytes aiopoll's types take on each target
//! (thumbv6m, thumbv7m, x86_64), read from the object file of the
//! `aiopoll-sizes` crate built for that target, so nothing has to run there.

use std::path::{Path, PathBuf};

use object::read::archive::ArchiveFile;
use object::{Object, ObjectSection, ObjectSymbol};

use crate::shell::{cargo, root, step};

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
    Ok(())
}

//! Building the firmware examples the same way wherever the xtask needs
//! them (`flash`, `firmware-size`): release, from `boards/<directory>`
//! (whose `.cargo/config.toml` names the target and the link scripts), into
//! `boards/target`.
//!
//! Source paths are remapped (`--remap-path-prefix`): panic locations put
//! the path of every source file that can panic into `.rodata`, and without
//! the remapping a binary's size would depend on where the repository and
//! cargo's registry happen to lie (another checkout, another user).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{root, step};

/// Which examples to build.
#[derive(Clone, Copy)]
pub enum Examples<'a> {
    /// One, by name.
    One(&'a str),
    /// Every example of the board.
    All,
}

/// Where the firmware is built.
pub fn target_dir() -> PathBuf {
    root().join("boards/target")
}

/// The ELF of `example` built for `target`.
pub fn elf(target: &str, example: &str) -> PathBuf {
    target_dir()
        .join(target)
        .join("release/examples")
        .join(example)
}

/// Builds `examples` of the board in `boards/<directory>` for `target`
/// (release).
pub fn build(directory: &str, target: &str, examples: Examples<'_>) -> Result<(), String> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(root().join("boards").join(directory))
        .args(["build", "--release"])
        .args(["--config", &remap_config(target)])
        .env("CARGO_TARGET_DIR", target_dir())
        // RUSTFLAGS would replace the board's rustflags (its link scripts).
        .env_remove("RUSTFLAGS");
    let name = match examples {
        Examples::One(example) => {
            command.args(["--example", example]);
            format!("build {directory}/{example}")
        }
        Examples::All => {
            command.arg("--examples");
            format!("build every example of boards/{directory}")
        }
    };
    step(&name, &mut command)
}

/// `--config` that adds the path remapping to the board's own rustflags
/// for `target` (cargo appends arrays given on the command line to those of
/// the config files).
fn remap_config(target: &str) -> String {
    let mut remaps: Vec<(PathBuf, &str)> = vec![(root(), "/aiopoll")];
    if let Some(home) = cargo_home() {
        remaps.push((home, "/cargo"));
    }
    // rustc applies the last prefix that matches: the longest goes last, in
    // case one directory lies inside the other.
    remaps.sort_by_key(|(from, _)| from.as_os_str().len());
    let flags: Vec<String> = remaps
        .iter()
        .map(|(from, to)| toml_string(&format!("--remap-path-prefix={}={to}", from.display())))
        .collect();
    format!(
        "target.{}.rustflags=[{}]",
        toml_string(target),
        flags.join(", ")
    )
}

/// Cargo's home (`$CARGO_HOME`, else `~/.cargo`), where the registry's
/// sources are unpacked.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

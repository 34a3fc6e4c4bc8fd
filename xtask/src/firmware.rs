//! Building the firmware examples the same way wherever the xtask needs
//! them (`flash`, `firmware-size`): release, from `boards/<directory>`
//! (whose `.cargo/config.toml` names the target and the link scripts), into
//! `boards/target`.
//!
//! A binary must not depend on where the repository lies (another checkout,
//! CI's, another user's), or its recorded size would not hold elsewhere.
//! Two things tie it to the place:
//! - panic locations put the path of every source file that can panic into
//!   `.rodata`: the paths are remapped (`--remap-path-prefix`);
//! - cargo hashes a path dependency's absolute path into its symbol names
//!   when it lies outside the workspace (the core and the adapter do, for
//!   every board workspace), and the hashes steer how code is split into
//!   codegen units, so a few bytes move with the path (seen: 4 bytes on the
//!   nRF52840-DK's `button`). So the build goes through one fixed path, a
//!   symbolic link [`FIXED_ROOT`] to the repository, taken under a file
//!   lock so that two checkouts building at once do not swap it under each
//!   other. Cargo keeps the path it is given (`--manifest-path`) rather
//!   than resolving the link.

use std::fs::File;
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

/// The fixed path every firmware build goes through: a symbolic link to
/// the repository being built.
pub const FIXED_ROOT: &str = "/tmp/aiopoll-firmware-source";

/// Builds `examples` of the board in `boards/<directory>` for `target`
/// (release).
pub fn build(directory: &str, target: &str, examples: Examples<'_>) -> Result<(), String> {
    let fixed = FixedRoot::take()?;
    let manifest = fixed
        .path()
        .join("boards")
        .join(directory)
        .join("Cargo.toml");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        // The board's `.cargo/config.toml` (target, link scripts) is found
        // from here.
        .current_dir(root().join("boards").join(directory))
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .args(["--config", &remap_config(target, fixed.path())])
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
    let built = step(&name, &mut command);
    drop(fixed);
    built
}

/// [`FIXED_ROOT`], pointing at this repository while held.
struct FixedRoot {
    path: PathBuf,
    /// Holds the lock until dropped.
    _lock: File,
}

impl FixedRoot {
    /// Waits for the lock, then points the link at this repository (a new
    /// link renamed over the old one, so it never dangles).
    fn take() -> Result<Self, String> {
        let path = PathBuf::from(FIXED_ROOT);
        let lock_path = path.with_extension("lock");
        let lock = File::create(&lock_path)
            .map_err(|error| format!("cannot create {}: {error}", lock_path.display()))?;
        lock.lock()
            .map_err(|error| format!("cannot lock {}: {error}", lock_path.display()))?;
        let staging = path.with_extension(format!("new-{}", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(root(), &staging);
        // Elsewhere the build goes through the repository's own path, and a
        // size may differ by a few bytes from one checkout to another.
        #[cfg(not(unix))]
        let linked: std::io::Result<()> = return Ok(FixedRoot {
            path: root(),
            _lock: lock,
        });
        linked
            .and_then(|()| std::fs::rename(&staging, &path))
            .map_err(|error| {
                format!(
                    "cannot point {} at {}: {error}",
                    path.display(),
                    root().display()
                )
            })?;
        Ok(FixedRoot { path, _lock: lock })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// `--config` that adds the path remapping to the board's own rustflags
/// for `target` (cargo appends arrays given on the command line to those of
/// the config files).
fn remap_config(target: &str, fixed_root: &Path) -> String {
    let mut remaps: Vec<(PathBuf, &str)> =
        vec![(root(), "/aiopoll"), (fixed_root.to_owned(), "/aiopoll")];
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

//! The checks that keep the library crates publishable, each reading what it
//! checks from the manifests (`cargo metadata`) rather than repeating it:
//!
//! - `cargo package` of every publishable crate, with its verification build
//!   (the crate built alone from its `.crate` file, as crates.io would get
//!   it; packaged together, so that `aiopoll-std` and `aiopoll-cortex-m`
//!   resolve `aiopoll` to the one being packaged);
//! - the declared `rust-version`, by building the crates with that toolchain
//!   against the lock file, for the host and for a Cortex-M target;
//! - the `[package.metadata.docs.rs]` of each crate, by building its docs as
//!   docs.rs does: nightly, every target it names, its features and its
//!   rustdoc arguments, warnings denied.

use std::path::PathBuf;

use crate::shell::{cargo, cargo_toolchain, output, root, step};

/// The crates that build for Cortex-M as well as for the host.
const FIRMWARE_CRATES: [&str; 2] = ["aiopoll", "aiopoll-cortex-m"];

/// The Cortex-M target the `rust-version` build uses (the oldest core with
/// every lock flavour).
pub const MSRV_TARGET: &str = "thumbv7m-none-eabi";

/// docs.rs's target when the metadata names none.
const DOCS_RS_DEFAULT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// A workspace crate that publishes (no `publish = false`).
pub struct Crate {
    /// The package name.
    pub name: String,
    /// Its `rust-version`.
    rust_version: Option<String>,
    /// Its `[package.metadata.docs.rs]` table, if any.
    docs_rs: Option<serde_json::Value>,
}

/// The publishable crates of the workspace, from `cargo metadata`.
pub fn crates() -> Result<Vec<Crate>, String> {
    let json = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))
        .ok_or("`cargo metadata` failed in the workspace root")?;
    let metadata: serde_json::Value =
        serde_json::from_str(&json).map_err(|error| format!("`cargo metadata`: {error}"))?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        // `publish` is null when the crate may go to any registry, an empty
        // list for `publish = false`.
        .filter(|package| {
            package["publish"]
                .as_array()
                .is_none_or(|registries| !registries.is_empty())
        })
        .filter_map(|package| {
            Some(Crate {
                name: package["name"].as_str()?.to_owned(),
                rust_version: package["rust_version"].as_str().map(str::to_owned),
                docs_rs: package["metadata"]["docs"]["rs"]
                    .is_object()
                    .then(|| package["metadata"]["docs"]["rs"].clone()),
            })
        })
        .collect())
}

/// The one `rust-version` the publishable crates declare: the toolchain the
/// `rust-version` build uses.
pub fn rust_version() -> Result<String, String> {
    let crates = crates()?;
    let mut versions: Vec<(&str, Option<&str>)> = crates
        .iter()
        .map(|krate| (krate.name.as_str(), krate.rust_version.as_deref()))
        .collect();
    versions.dedup_by_key(|(_, version)| *version);
    match versions.as_slice() {
        [(_, Some(version))] => Ok((*version).to_owned()),
        _ => Err(format!(
            "the publishable crates must declare one and the same `rust-version` \
             (set `rust-version.workspace = true` in each); they declare {versions:?}"
        )),
    }
}

/// The targets docs.rs builds for the crates: each one's default target and
/// its `targets`.
pub fn docs_rs_targets() -> Result<Vec<String>, String> {
    let mut targets: Vec<String> = crates()?.iter().flat_map(docs_targets).collect();
    targets.sort();
    targets.dedup();
    Ok(targets)
}

fn docs_targets(krate: &Crate) -> Vec<String> {
    let Some(docs_rs) = &krate.docs_rs else {
        return vec![DOCS_RS_DEFAULT_TARGET.to_owned()];
    };
    let default = docs_rs["default-target"]
        .as_str()
        .unwrap_or(DOCS_RS_DEFAULT_TARGET);
    let mut targets = vec![default.to_owned()];
    for target in docs_rs["targets"].as_array().into_iter().flatten() {
        if let Some(target) = target.as_str() {
            if !targets.iter().any(|known| known == target) {
                targets.push(target.to_owned());
            }
        }
    }
    targets
}

/// `cargo package` of every publishable crate, verification build included.
/// Packaged in one command, so that each crate's verification resolves the
/// others to the ones being packaged rather than to crates.io. By name:
/// `--workspace` would package the `publish = false` crates too.
/// `--allow-dirty` so that the check runs on the tree as it is, before a
/// commit; the files packaged are those git knows of.
pub fn package() -> Result<(), String> {
    let crates = crates()?;
    forget_unpacked(&crates)?;
    let mut package = cargo();
    package.args(["package", "--allow-dirty"]);
    for krate in &crates {
        package.args(["-p", &krate.name]);
    }
    step(
        "cargo package: every publishable crate, with its verification build",
        &mut package,
    )
}

/// Removes what an earlier `cargo package` of this workspace unpacked of
/// its own crates. The verification build takes the crates from a temporary
/// local registry, which cargo unpacks under
/// `$CARGO_HOME/registry/src/-<hash of the registry's path>/`, and cargo
/// reuses a crate unpacked there before (same name, same version) without
/// comparing it with the new package: a second run from the same checkout
/// would verify against the sources of the first. Only registries without
/// a name (local ones: crates.io's is `index.crates.io-...`) are touched,
/// and in them only this workspace's publishable crates.
fn forget_unpacked(crates: &[Crate]) -> Result<(), String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(sources) = home.map(|home| home.join("registry/src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return Ok(()); // nothing unpacked yet
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(unpacked) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for entry in unpacked.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = crates.iter().any(|krate| {
                name.strip_prefix(&krate.name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                std::fs::remove_dir_all(entry.path()).map_err(|error| {
                    format!(
                        "could not remove `{}`, which an earlier `cargo package` unpacked: {error}",
                        entry.path().display()
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// Builds the publishable crates, every feature, with the toolchain of the
/// declared `rust-version` and the committed lock file: for the host, and
/// the firmware crates for [`MSRV_TARGET`].
pub fn rust_version_build() -> Result<(), String> {
    let version = rust_version()?;
    let crates = crates()?;
    crate::setup::toolchain(&version, &[MSRV_TARGET])?;
    let target_dir = root().join("target/rust-version");
    let mut host = cargo_toolchain(&version);
    host.args(["build", "--locked", "--all-features"])
        .env("CARGO_TARGET_DIR", &target_dir);
    for krate in &crates {
        host.args(["-p", &krate.name]);
    }
    step(
        &format!("rust-version {version}: the publishable crates build with Rust {version} (host)"),
        &mut host,
    )?;
    let mut firmware = cargo_toolchain(&version);
    firmware
        .args([
            "build",
            "--locked",
            "--all-features",
            "--target",
            MSRV_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    for name in FIRMWARE_CRATES {
        if !crates.iter().any(|krate| krate.name == name) {
            return Err(format!(
                "`{name}` is no longer a publishable workspace crate: update FIRMWARE_CRATES in xtask/src/publish.rs"
            ));
        }
        firmware.args(["-p", name]);
    }
    step(
        &format!(
            "rust-version {version}: the firmware crates build with Rust {version} ({MSRV_TARGET})"
        ),
        &mut firmware,
    )
}

/// Builds each publishable crate's docs as docs.rs would, from its
/// `[package.metadata.docs.rs]`: nightly, every target named, the features
/// named, the rustdoc arguments given, and warnings (broken links, missing
/// docs) denied.
pub fn docs_rs() -> Result<(), String> {
    let crates = crates()?;
    crate::setup::toolchain("nightly", &docs_rs_targets()?)?;
    for krate in &crates {
        let docs_rs = krate.docs_rs.clone().unwrap_or_default();
        let mut rustdoc_flags: Vec<String> = docs_rs["rustdoc-args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|arg| arg.as_str().map(str::to_owned))
            .collect();
        rustdoc_flags.extend(["-D".into(), "warnings".into()]);
        for target in docs_targets(krate) {
            let mut doc = cargo_toolchain("nightly");
            doc.args(["doc", "--no-deps", "-p", &krate.name, "--target", &target])
                .env("RUSTDOCFLAGS", rustdoc_flags.join(" "))
                .env("CARGO_TARGET_DIR", root().join("target/docs-rs"));
            if docs_rs["all-features"].as_bool() == Some(true) {
                doc.arg("--all-features");
            }
            if docs_rs["no-default-features"].as_bool() == Some(true) {
                doc.arg("--no-default-features");
            }
            let features: Vec<&str> = docs_rs["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|feature| feature.as_str())
                .collect();
            if !features.is_empty() {
                doc.args(["--features", &features.join(",")]);
            }
            step(&format!("docs.rs: {} for {target}", krate.name), &mut doc)?;
        }
    }
    Ok(())
}

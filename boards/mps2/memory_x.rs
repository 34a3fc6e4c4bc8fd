//! The build script of every MPS2 board crate (`build = "../mps2/memory_x.rs"`
//! in its Cargo.toml): puts the board's `memory.x` where cortex-m-rt's
//! `link.x` finds it.

use std::path::PathBuf;

fn main() {
    let board = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = board.join("memory.x");
    std::fs::copy(&memory, out.join("memory.x")).expect("the board crate has a memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", memory.display());
}

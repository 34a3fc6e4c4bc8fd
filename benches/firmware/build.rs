//! Puts the memory map of the QEMU machine the firmware runs on where
//! cortex-m-rt's `link.x` finds it: `memory-an385.x` (Cortex-M3) for
//! thumbv7m, `memory-microbit.x` (Cortex-M0) for thumbv6m,
//! `memory-an505.x` (Cortex-M33) for thumbv8m.main; and says which with
//! the cfg `armv6m` or `armv8m`.

use std::path::PathBuf;

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    // The machine's timer module is chosen by these cfgs (src/lib.rs).
    println!("cargo::rustc-check-cfg=cfg(armv6m, armv8m)");
    let (name, map): (&str, &[u8]) = if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=armv6m");
        ("memory-microbit.x", include_bytes!("memory-microbit.x"))
    } else if target.starts_with("thumbv8m") {
        println!("cargo::rustc-cfg=armv8m");
        ("memory-an505.x", include_bytes!("memory-an505.x"))
    } else {
        ("memory-an385.x", include_bytes!("memory-an385.x"))
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), map).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={name}");
}

//! Board support for Arm's MPS2 with the AN386 image (Cortex-M4F), as QEMU's
//! `mps2-an386` machine emulates it: the CMSDK subsystem's memory map
//! ([`mps2::cmsdk`]) and what every MPS2 board shares ([`mps2`]). The
//! examples are the MPS2 ones (`boards/mps2/examples`): run one with
//! `cargo xtask qemu mps2-an386 demo`.
#![no_std]

pub use mps2::cmsdk::*;
pub use mps2::{active_irq, Irq};

/// This board's name, as `cargo xtask qemu` knows it.
pub const NAME: &str = "mps2-an386";

//! What every QEMU board shares, written once:
//!
//! - running on the board ([`exit`], the panic handler, the defmt logger
//!   over semihosting, [`enable`]);
//! - the scenarios: [`demo`]'s body and the interrupt storm ([`storm`]),
//!   each driven by the board's periodic timer ([`Timer`]);
//! - what the scenarios watch with: the exactly-once [`Ledger`], the
//!   [`Stall`] bound, the interrupted instructions ([`Preempted`],
//!   [`frame_vector!`]).
//!
//! A board crate supplies its timer and its interrupt handlers (which call
//! [`IrqEvent::raise`](aiopoll_cortex_m::IrqEvent::raise) and
//! `Context::run_deferred`), and its examples call [`demo`] or [`storm`]
//! from `main` and [`exit`] with the verdict. Linking this crate gives the
//! firmware its panic handler and its defmt logger: a board crate adds
//! neither.
#![no_std]

mod demo;
mod ledger;
mod run;
mod storm;

pub use demo::demo;
pub use ledger::Ledger;
pub use run::{enable, exit};
pub use storm::{
    interrupted_pc, storm, Preempted, Stall, StormReport, Timer, PER_PERIOD, STALL_ROUNDS,
};

#![doc = include_str!("../README.md")]
//!
//! ## The API at a glance
//!
//! - Locks ([`lock`]): [`CriticalSectionLock`], `CeilingLock` (v7-M and
//!   v8-M), [`MultiCoreLock`], paired by [`CortexMLocks`], `CeilingLocks`,
//!   [`MultiCoreLocks`].
//! - Deferred work: [`PendInterrupt`], [`PendSv`], which pend the interrupt
//!   whose handler calls [`Context::run_deferred`](aiopoll::Context::run_deferred).
//! - Deadlines: [`DeadlineTimer`] drives every request deadline of a
//!   context from one hardware timer interrupt ([`Alarm`]).
//! - Sources: [`IrqEvent`], [`PinSource`].
//! - Sleeping: [`reap_blocking`], [`reap_across_cores`]; delays: [`EngineDelay`].
//! - Async (feature `async`): `WaitPin` (embedded-hal-async's
//!   `digital::Wait` on a [`PinSource`]) and `AsyncDelay` (`DelayNs` on
//!   [`Ticks`]), each wait an awaited request
//!   ([`Context::request`](aiopoll::Context::request)).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "async")]
mod async_delay;
mod deadline;
mod delay;
mod irq_event;
pub mod lock;
mod notify;
mod pin;
#[cfg(feature = "async")]
mod pin_wait;
mod wait;

#[cfg(feature = "async")]
pub use async_delay::AsyncDelay;

pub use deadline::{Alarm, DeadlineTimer};
pub use delay::{EngineDelay, Ticks};
pub use irq_event::IrqEvent;
#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
pub use lock::{CeilingLock, CeilingLocks};
pub use lock::{CortexMLocks, CriticalSectionLock, MultiCoreLock, MultiCoreLocks};
pub use notify::{PendInterrupt, PendSv};
pub use pin::{Active, PinSource};
#[cfg(feature = "async")]
pub use pin_wait::{WaitError, WaitPin};
pub use wait::{reap_across_cores, reap_blocking};

pub use aiopoll;

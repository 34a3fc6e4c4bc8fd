//! # aiopoll-cortex-m: aiopoll in firmware
//!
//! The [`aiopoll`] core bound to Cortex-M:
//!
//! - **Locks** ([`lock`]): a critical-section lock for every part, and on
//!   v7-M/v8-M a BASEPRI priority-ceiling lock for the context, so that
//!   interrupts above the ceiling are never masked by aiopoll; for parts
//!   with several cores, a lock that masks this core and spins on a flag
//!   the cores share. Pick a pair by type: [`CortexMLocks`],
//!   [`CeilingLocks`] or [`MultiCoreLocks`].
//! - **Deferred work** ([`PendInterrupt`], [`PendSv`]): when a wakeup cannot
//!   take the context lock (thread mode holds it, or the interrupt is above
//!   the ceiling), the core defers the completion; these hooks pend a
//!   low-priority interrupt of your choice whose handler calls
//!   [`Context::run_deferred`](aiopoll::Context::run_deferred).
//! - **Interrupt glue** ([`IrqEvent`]): one call in a handler sets event bits
//!   and wakes the waiting requests.
//! - **Sleeping** ([`reap_blocking`]): thread mode sleeps in `WFI` until a
//!   completion arrives; [`reap_across_cores`] sleeps in `WFE` for
//!   completions that another core delivers.
//! - **embedded-hal**: [`PinSource`] (any `InputPin`, woken from its edge
//!   interrupt) and [`EngineDelay`] (`DelayNs` on a tick source).
//!
//! ```no_run
//! use aiopoll::{Context, Events};
//! use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
//! # use critical_section as _; // the host's critical section, for this test
//! # #[derive(Clone, Copy)]
//! # enum Interrupt { GPIOB = 1 } // your PAC's interrupt enum
//! # // SAFETY: 1 is a valid interrupt number.
//! # unsafe impl cortex_m::interrupt::InterruptNumber for Interrupt {
//! #     fn number(self) -> u16 { self as u16 }
//! # }
//!
//! static TIMER: IrqEvent = IrqEvent::new();
//! static CONTEXT: Context<'static, 8, CeilingLocks<0x40>, 1, PendInterrupt<Interrupt>> =
//!     Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
//!
//! // The timer's handler (`#[interrupt] fn TIMER0A()` with your PAC):
//! fn timer_interrupt() {
//!     TIMER.raise(Events::IN); // wakes the requests waiting for IN
//! }
//!
//! // The least urgent interrupt's handler (`#[interrupt] fn GPIOB()`):
//! fn deferred_work_interrupt() {
//!     CONTEXT.run_deferred(); // completes what wakeups had to defer
//! }
//! ```
//!
//! Every board under `boards/` has a runnable example.
//!
//! ## Bringing it up on a board
//!
//! `docs/porting.md` in the repository walks through a new board step by
//! step (crates, `memory.x`, interrupts with a PAC or without one, running
//! in QEMU). Two things every firmware must get right:
//!
//! - **Link a critical-section implementation.** The wait queues, `IrqEvent`
//!   and (on thumbv6m) every atomic go through the `critical-section` crate,
//!   which only declares `acquire` and `release`. Without an implementation
//!   the link fails with `undefined symbol: _critical_section_1_0_acquire`.
//!   On one core, turn on cortex-m's feature `critical-section-single-core`;
//!   on several, use one that spans the cores (the HAL's, or your own).
//! - **Priorities, in numbers** (lower is more urgent; only the bits the
//!   part implements count). With [`CeilingLocks<C>`](CeilingLocks): the
//!   deferred-work interrupt's priority value is at least the ceiling
//!   (`>= C`), and so is that of any interrupt that submits, cancels or
//!   reaps; interrupts that only wake requests may have any value, and
//!   those more urgent than the ceiling (a value `< C`) are never masked by
//!   aiopoll. `C` is not 0 and is a value the part implements (with 3
//!   priority bits, 0x10 reads as 0 and masks nothing). For example: timer
//!   0x00, `CeilingLocks<0x20>`, deferred work 0xE0.
#![no_std]
#![warn(missing_docs)]

mod delay;
mod irq_event;
pub mod lock;
mod notify;
mod pin;
mod wait;

pub use delay::{EngineDelay, Ticks};
pub use irq_event::IrqEvent;
#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
pub use lock::{CeilingLock, CeilingLocks};
pub use lock::{CortexMLocks, CriticalSectionLock, MultiCoreLock, MultiCoreLocks};
pub use notify::{PendInterrupt, PendSv};
pub use pin::{Active, PinSource};
pub use wait::{reap_across_cores, reap_blocking};

pub use aiopoll;

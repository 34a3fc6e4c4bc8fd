//! Locks for Cortex-M, as `lock_api::RawMutex` types.
//!
//! - [`CriticalSectionLock`]: masks every interrupt while held (through the
//!   `critical-section` crate, so it also excludes the other core on parts
//!   whose critical-section implementation spans cores, like the RP2040's).
//!   Right for every wait queue: no waker can preempt a holder, whatever its
//!   priority. Right for a context on any part.
//! - `CeilingLock` (v7-M and v8-M; v6-M has no BASEPRI): raises BASEPRI to a ceiling, as RTIC's
//!   Stack Resource Policy does, so interrupts more urgent than the ceiling
//!   are never masked by aiopoll. Meant for the context: an urgent interrupt
//!   that wakes a queue while thread mode holds the context meets a failed
//!   try-lock and defers its completion, exactly the seed mail's path.
//!
//! - [`MultiCoreLock`] (parts with several cores whose critical section
//!   does not span them, like the SSE-200's two Cortex-M33): masks this
//!   core's interrupts (PRIMASK) and spins on a flag shared by the cores
//!   (the `spin` crate's mutex), so the cores exclude each other only on the
//!   same lock, not on every critical section.
//!
//! The pairing is fixed by type: [`CortexMLocks`] (critical section for
//! both), `CeilingLocks` (ceiling for the context, critical section for
//! the queues) and [`MultiCoreLocks`] (the multi-core lock for both). A queue
//! lock must mask every interrupt that wakes the queue: the critical section
//! and the multi-core lock mask every interrupt of the holder's core (and
//! keep the other cores out), a ceiling does not, so no pairing puts a
//! ceiling on the queues.

mod critical_section;
pub use critical_section::{CortexMLocks, CriticalSectionLock};

#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
mod ceiling;
#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
pub use ceiling::{CeilingLock, CeilingLocks};

mod multi_core;
pub use multi_core::{MultiCoreLock, MultiCoreLocks};

// The misuses a lock detects, one function each, for every flavour. They
// panic here, in one file, because a `panic!` records the file it is written
// in: the firmware's flash then holds one location string for all of them
// instead of one per flavour's file. `#[inline(always)]`, so that the code
// at each call is that of a `panic!` written there (left to itself, LLVM
// inlines differently around a call and the firmware grows by 200 to 300
// bytes).

/// A context took a lock it holds already: a hook or a source's `poll`
/// called back into aiopoll. With the holder's interrupts masked nobody
/// else could release it, so the alternative is a hang.
#[inline(always)]
fn taken_again_by_its_holder() -> ! {
    panic!("aiopoll: a lock was taken again by its own holder (a hook or a source's poll called back into aiopoll)");
}

/// A held `CeilingLock` was taken with `lock`: on one core the holder is
/// preempted by the caller, which therefore runs above the ceiling, and
/// waiting would never end.
#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
#[inline(always)]
fn used_above_the_ceiling() -> ! {
    panic!("aiopoll: the context was used from an interrupt above its CeilingLock's ceiling: raise the ceiling (CEILING) to that interrupt's priority, or only wake queues from there");
}

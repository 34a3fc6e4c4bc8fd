//! Locks for Cortex-M, as `lock_api::RawMutex` types.
//!
//! - [`CriticalSectionLock`]: masks every interrupt while held (through the
//!   `critical-section` crate, so it also excludes the other core on parts
//!   whose critical-section implementation spans cores, like the RP2040's).
//!   Right for every wait queue: no waker can preempt a holder, whatever its
//!   priority. Right for a context on any part.
//! - [`CeilingLock`] (v7-M and v8-M): raises BASEPRI to a ceiling, as RTIC's
//!   Stack Resource Policy does, so interrupts more urgent than the ceiling
//!   are never masked by aiopoll. Meant for the context: an urgent interrupt
//!   that wakes a queue while thread mode holds the context meets a failed
//!   try-lock and defers its completion, exactly the seed mail's path.
//!
//! The pairing is fixed by type: [`CortexMLocks`] (critical section for
//! both) and [`CeilingLocks`] (ceiling for the context, critical section for
//! the queues). A queue lock must mask every interrupt that wakes the queue,
//! and only the critical section does that for every interrupt, so no other
//! queue lock is offered.

use core::cell::Cell;
use core::mem::MaybeUninit;

use critical_section::RestoreState;
use lock_api::{GuardNoSend, RawMutex};

/// A lock that masks every interrupt while held: a critical section with a
/// "held" flag, so that a nested `try_lock` (a wakeup from inside a source's
/// `poll`, say) fails instead of deadlocking.
pub struct CriticalSectionLock {
    held: Cell<bool>,
    restore: Cell<MaybeUninit<RestoreState>>,
}

// SAFETY: both cells are only touched inside the critical section this lock
// acquires, which excludes every other execution context (interrupts, and
// the other core where the critical-section implementation spans cores).
unsafe impl Sync for CriticalSectionLock {}
// SAFETY: as above; nothing in it is tied to a thread or core.
unsafe impl Send for CriticalSectionLock {}

impl CriticalSectionLock {
    /// Acquires the critical section and tries to set the flag.
    fn enter(&self) -> bool {
        // SAFETY: every acquire is paired with exactly one release: in
        // `unlock` when we take the lock, right here when we do not. Locks
        // are released in the reverse order of taking them (aiopoll's guards
        // are scoped), as nested critical sections require.
        let restore = unsafe { critical_section::acquire() };
        if self.held.get() {
            // SAFETY: releases the section acquired just above.
            unsafe { critical_section::release(restore) };
            return false;
        }
        self.held.set(true);
        self.restore.set(MaybeUninit::new(restore));
        true
    }
}

// SAFETY: `lock` and `try_lock` return with the flag set only by the one
// execution context that set it inside the critical section; `unlock`
// clears it before leaving the section. Nothing else can observe the flag
// between, since every interrupt is masked while it is set.
unsafe impl RawMutex for CriticalSectionLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CriticalSectionLock {
        held: Cell::new(false),
        restore: Cell::new(MaybeUninit::uninit()),
    };
    // Must be released where it was taken (same core, same context).
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        if !self.enter() {
            // With every interrupt masked nobody else can hold it: this
            // context holds it already. A hook or source that calls back into
            // aiopoll does this; it is a bug, and the alternative is a hang.
            panic!("aiopoll: a lock was taken again by its own holder (a hook or a source's poll called back into aiopoll)");
        }
    }

    fn try_lock(&self) -> bool {
        self.enter()
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock, so `restore` was written by the
        // `enter` that took it.
        let restore = unsafe { self.restore.get().assume_init() };
        self.held.set(false);
        // SAFETY: releases the section the matching `enter` acquired.
        unsafe { critical_section::release(restore) };
    }
}

/// The critical-section lock for the context and its wait queues: correct
/// on every part, single- or multi-core.
pub type CortexMLocks = (CriticalSectionLock, CriticalSectionLock);

#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
pub use ceiling::{CeilingLock, CeilingLocks};

#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
mod ceiling {
    use core::cell::Cell;
    use core::sync::atomic::{AtomicBool, Ordering};

    use cortex_m::register::{basepri, basepri_max};
    use lock_api::{GuardNoSend, RawMutex};

    use super::CriticalSectionLock;

    /// A priority-ceiling lock (v7-M, v8-M): while held, BASEPRI masks every
    /// interrupt whose priority is `CEILING` or less urgent; more urgent
    /// interrupts keep running. `CEILING` is a hardware priority value, as
    /// written to the NVIC (the top bits count: with 3 priority bits,
    /// 0x00, 0x20, .., 0xE0; lower is more urgent), and must not be 0.
    ///
    /// Single core only (BASEPRI is per core). Use it from thread mode and
    /// from interrupts at `CEILING` or below; an interrupt above the ceiling
    /// may only *try* it, which is all a wakeup does. Taking it with `lock`
    /// from above the ceiling while it is held would deadlock; it panics
    /// with an explanation instead.
    pub struct CeilingLock<const CEILING: u8> {
        held: AtomicBool,
        previous: Cell<u8>,
    }

    // SAFETY: `held` is atomic; `previous` is written by the holder after it
    // has won `held` and read by the holder in `unlock`, and an interrupt
    // that preempts the holder cannot win `held`, so only the holder touches
    // it.
    unsafe impl<const CEILING: u8> Sync for CeilingLock<CEILING> {}
    // SAFETY: as above.
    unsafe impl<const CEILING: u8> Send for CeilingLock<CEILING> {}

    impl<const CEILING: u8> CeilingLock<CEILING> {
        const VALID: () = assert!(CEILING != 0, "a ceiling of 0 would mask nothing");

        fn enter(&self) -> bool {
            #[allow(clippy::let_unit_value)]
            let () = Self::VALID;
            let previous = basepri::read();
            // Raise first, then claim: an interrupt that preempts between
            // the two is above the ceiling, runs to completion (taking and
            // releasing the lock, or failing a try) before we go on.
            basepri_max::write(CEILING);
            if self
                .held
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                // SAFETY: restores the BASEPRI this call found.
                unsafe { basepri::write(previous) };
                return false;
            }
            self.previous.set(previous);
            true
        }
    }

    // SAFETY: `held` is claimed with an Acquire compare-and-swap and released
    // with a Release store, so at most one context holds the lock; BASEPRI
    // keeps every interrupt at or below the ceiling from preempting the
    // holder.
    unsafe impl<const CEILING: u8> RawMutex for CeilingLock<CEILING> {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = CeilingLock {
            held: AtomicBool::new(false),
            previous: Cell::new(0),
        };
        type GuardMarker = GuardNoSend;

        fn lock(&self) {
            if !self.enter() {
                // Single core: the holder is preempted by us, so we run above
                // the ceiling. Waiting would never end.
                panic!("aiopoll: the context was used from an interrupt above its CeilingLock's ceiling: raise the ceiling (CEILING) to that interrupt's priority, or only wake queues from there");
            }
        }

        fn try_lock(&self) -> bool {
            self.enter()
        }

        unsafe fn unlock(&self) {
            let previous = self.previous.get();
            self.held.store(false, Ordering::Release);
            // SAFETY: restores the BASEPRI the matching `enter` found.
            unsafe { basepri::write(previous) };
        }
    }

    /// A [`CeilingLock`] for the context, the critical section for its wait
    /// queues.
    pub type CeilingLocks<const CEILING: u8> = (CeilingLock<CEILING>, CriticalSectionLock);
}

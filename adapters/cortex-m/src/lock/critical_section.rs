//! [`CriticalSectionLock`]: a critical section with a "held" flag, for
//! every part.

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
            super::taken_again_by_its_holder();
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

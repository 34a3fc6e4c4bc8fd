//! [`CriticalSectionLock`]: a critical section with a "held" flag, for
//! every part.

use core::cell::Cell;
use core::mem::MaybeUninit;

use aiopoll::Locks;
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

impl CriticalSectionLock {
    /// Sets the "held" flag without a critical section of its own, for a
    /// caller already inside one (it holds another `CriticalSectionLock`):
    /// returns `false`, changing nothing, when the flag is set already.
    ///
    /// # Safety
    /// The caller is inside a critical section, and calls
    /// [`release_nested`](Self::release_nested) (if this returned `true`)
    /// before it leaves it.
    #[inline(always)]
    unsafe fn claim_nested(&self) -> bool {
        if self.held.get() {
            return false;
        }
        self.held.set(true);
        true
    }

    /// Clears the flag [`claim_nested`](Self::claim_nested) set.
    ///
    /// # Safety
    /// As `claim_nested`: still inside the critical section in which it
    /// was claimed.
    #[inline(always)]
    unsafe fn release_nested(&self) {
        self.held.set(false);
    }
}

/// The critical-section lock for the context and its wait queues: correct
/// on every part, single- or multi-core.
///
/// Both locks being critical sections, one critical section is enough for
/// each operation: where the core takes one of them while holding the other
/// (a wakeup tries the context lock inside its queue's lock; a submit,
/// cancel or reap links or unlinks a request on a queue inside the context
/// lock), the inner one only sets and clears its "held" flag, inside the
/// outer one's critical section. The flag still tells a wakeup that the
/// context is held (by a source's `poll` that wakes its own queue, say), so
/// that it defers.
pub struct CortexMLocks;

// SAFETY: both are `CriticalSectionLock`s. The nested methods are only
// called while the other lock of the pair is held, so inside its critical
// section, which excludes every other execution context (every interrupt,
// and the other cores where the critical section spans them): the "held"
// flag, read and written only there, gives the same exclusion as a lock
// that took a critical section of its own. Each nested release happens
// before the outer lock's (the core's guards are scoped).
unsafe impl Locks for CortexMLocks {
    type Context = CriticalSectionLock;
    type Queue = CriticalSectionLock;

    #[inline(always)]
    fn try_lock_context_in_queue(context: &CriticalSectionLock) -> bool {
        // SAFETY: the core calls this with a queue lock held, so inside its
        // critical section, and releases it (below) before that lock.
        unsafe { context.claim_nested() }
    }

    #[inline(always)]
    unsafe fn unlock_context_in_queue(context: &CriticalSectionLock) {
        // SAFETY: claimed by the method above, the queue lock still held
        // (the caller's contract).
        unsafe { context.release_nested() }
    }

    #[inline(always)]
    fn lock_queue_in_context(queue: &CriticalSectionLock) {
        // SAFETY: the core calls this with the context lock held, so inside
        // its critical section, and releases it (below) before that lock.
        if !unsafe { queue.claim_nested() } {
            // Inside the critical section nobody else can hold it: this
            // context does, and a hook or source called back into aiopoll.
            super::taken_again_by_its_holder();
        }
    }

    #[inline(always)]
    unsafe fn unlock_queue_in_context(queue: &CriticalSectionLock) {
        // SAFETY: claimed by the method above, the context lock still held
        // (the caller's contract).
        unsafe { queue.release_nested() }
    }
}

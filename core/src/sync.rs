//! The concurrency primitives the core is built from, swapped for loom's
//! model-checked versions under `cfg(loom)` (the maitake-sync pattern), and a
//! scope guard for `lock_api::RawMutex`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicBool, AtomicPtr, AtomicU32};

pub(crate) use core::sync::atomic::Ordering;

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `core::cell::UnsafeCell` with loom's closure-based access API, so the same
/// code compiles against `loom::cell::UnsafeCell`, which checks every access
/// for data races.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

use core::marker::PhantomData;

use lock_api::RawMutex;

use crate::Locks;

/// How a [`Locked`] guard releases its mutex: the mutex's own `unlock`
/// ([`Plain`]), or the matching release of a lock taken nested inside the
/// other lock of a [`Locks`] pair ([`ContextInQueue`], [`QueueInContext`]).
pub(crate) trait Release<M: RawMutex> {
    /// # Safety
    /// `mutex` is held, taken the way this kind takes it.
    unsafe fn release(mutex: &M);
}

/// Taken with `RawMutex::lock` or `try_lock`.
pub(crate) struct Plain;

impl<M: RawMutex> Release<M> for Plain {
    #[inline(always)]
    unsafe fn release(mutex: &M) {
        // SAFETY: the caller's contract: `mutex` is held.
        unsafe { mutex.unlock() }
    }
}

/// A context lock tried by a wakeup that holds a queue lock
/// ([`Locks::try_lock_context_in_queue`]).
pub(crate) struct ContextInQueue<L>(PhantomData<L>);

impl<L: Locks> Release<L::Context> for ContextInQueue<L> {
    #[inline(always)]
    unsafe fn release(mutex: &L::Context) {
        // SAFETY: the caller's contract: taken by
        // `try_lock_context_in_queue`, and the queue lock is still held
        // (the guards are scoped inside the queue's).
        unsafe { L::unlock_context_in_queue(mutex) }
    }
}

/// A queue lock taken while the context lock is held
/// ([`Locks::lock_queue_in_context`]).
pub(crate) struct QueueInContext<L>(PhantomData<L>);

impl<L: Locks> Release<L::Queue> for QueueInContext<L> {
    #[inline(always)]
    unsafe fn release(mutex: &L::Queue) {
        // SAFETY: the caller's contract: taken by `lock_queue_in_context`,
        // and the context lock is still held.
        unsafe { L::unlock_queue_in_context(mutex) }
    }
}

/// Holds a `RawMutex` locked for its own lifetime, so every early return and
/// every unwind out of a source's `poll` releases the lock. `K` says how it
/// was taken, and so how it is released.
pub(crate) struct Locked<'a, M: RawMutex, K: Release<M> = Plain>(&'a M, PhantomData<K>);

impl<'a, M: RawMutex> Locked<'a, M> {
    #[inline(always)]
    pub(crate) fn lock(mutex: &'a M) -> Self {
        mutex.lock();
        Locked(mutex, PhantomData)
    }
}

impl<'a, M: RawMutex, K: Release<M>> Locked<'a, M, K> {
    /// Whether this guard holds `mutex` (for debug assertions).
    pub(crate) fn holds(&self, mutex: &M) -> bool {
        core::ptr::eq(self.0, mutex)
    }
}

impl<'a, L: Locks> Locked<'a, L::Context, ContextInQueue<L>> {
    /// [`Locks::try_lock_context_in_queue`]: the caller holds a queue lock
    /// of `L`, and drops this guard before it releases that lock.
    #[inline(always)]
    pub(crate) fn try_in_queue(mutex: &'a L::Context) -> Option<Self> {
        if L::try_lock_context_in_queue(mutex) {
            Some(Locked(mutex, PhantomData))
        } else {
            None
        }
    }
}

impl<'a, L: Locks> Locked<'a, L::Queue, QueueInContext<L>> {
    /// [`Locks::lock_queue_in_context`]: the caller holds the context lock
    /// of `L`, and drops this guard before it releases that lock.
    #[inline(always)]
    pub(crate) fn in_context(mutex: &'a L::Queue) -> Self {
        L::lock_queue_in_context(mutex);
        Locked(mutex, PhantomData)
    }
}

impl<M: RawMutex, K: Release<M>> Drop for Locked<'_, M, K> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: a `Locked` exists only after this mutex was taken the way
        // `K` names, in this very context, and is dropped exactly once.
        unsafe { K::release(self.0) }
    }
}

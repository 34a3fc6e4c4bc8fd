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

use lock_api::RawMutex;

/// Holds a `RawMutex` locked for its own lifetime, so every early return and
/// every unwind out of a source's `poll` releases the lock.
pub(crate) struct Locked<'a, M: RawMutex>(&'a M);

impl<'a, M: RawMutex> Locked<'a, M> {
    #[inline(always)]
    pub(crate) fn lock(mutex: &'a M) -> Self {
        mutex.lock();
        Locked(mutex)
    }

    /// Whether this guard holds `mutex` (for debug assertions).
    pub(crate) fn holds(&self, mutex: &M) -> bool {
        core::ptr::eq(self.0, mutex)
    }

    #[inline(always)]
    pub(crate) fn try_lock(mutex: &'a M) -> Option<Self> {
        if mutex.try_lock() {
            Some(Locked(mutex))
        } else {
            None
        }
    }
}

impl<M: RawMutex> Drop for Locked<'_, M> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: a `Locked` exists only after `lock` or a successful
        // `try_lock` on this very mutex, in this very context, and is dropped
        // exactly once.
        unsafe { self.0.unlock() }
    }
}

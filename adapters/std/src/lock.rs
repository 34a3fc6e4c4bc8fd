//! [`Lock`]: the raw mutex of every std context and wait queue.

use core::hint::spin_loop;

use lock_api::RawMutex;

/// The lock of every std context and wait queue: `parking_lot`'s raw mutex,
/// behind a bounded spin that never gives the CPU away.
///
/// The locks of a context and of its wait queues are held for a few hundred
/// nanoseconds at most (a submit's `poll`, a wakeup, a reap). A thread that
/// finds one taken first watches it, with a pause between looks, for up to
/// 64 pauses (about 2.7 µs on the machines the benchmarks run on), and
/// takes it as soon as it is free; only then does it fall back on
/// `parking_lot`'s own slow path, which yields a few times and then parks
/// the thread, so that a waiter never burns a core for long while the
/// holder is descheduled.
///
/// `parking_lot` alone spins only for about 14 pauses before it yields the
/// CPU (`sched_yield`), and once one waiter has parked, every later one
/// parks at once. With more threads than cores and other programs on the
/// machine, a yield hands the core to another program for a whole time
/// slice (milliseconds) while the lock was about to be released on the other
/// core: in the `contention` benchmark (four threads on two cores) that put
/// a few multi-millisecond stalls into otherwise sub-microsecond rounds.
pub struct Lock {
    inner: parking_lot::RawMutex,
}

/// How many pauses a thread that found a [`Lock`] taken spends watching it
/// before it falls back on parking (under Miri, whose every step is
/// interpreted, none). Enough for any hold by a thread that is running; not
/// so many that a waiter sharing its CPU with a descheduled holder wastes
/// much: 16, 64 and 256 read the same in the contention and ping-pong
/// benchmarks, and an `EventCounter` whose count lock spun for 256 pauses
/// doubled the tokio round trip with both threads on one CPU.
const SPINS: u32 = if cfg!(miri) { 0 } else { 64 };

impl Lock {
    /// The contended path of [`lock`](RawMutex::lock): watch, then park.
    #[cold]
    fn lock_contended(&self) {
        if !self.try_lock_watching(SPINS) {
            self.inner.lock();
        }
    }
}

// SAFETY: every operation is `parking_lot::RawMutex`'s own (a sound raw
// mutex): `lock` returns only once `try_lock` or `lock` of the inner mutex
// acquired it, `try_lock` is the inner one's, and `unlock` releases the
// inner mutex, which the caller's contract says this context holds.
unsafe impl RawMutex for Lock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Lock {
        inner: parking_lot::RawMutex::INIT,
    };

    type GuardMarker = <parking_lot::RawMutex as RawMutex>::GuardMarker;

    #[inline]
    fn lock(&self) {
        if !self.inner.try_lock() {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.inner.try_lock()
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds this lock (`RawMutex::unlock`'s
        // contract), so it holds the inner mutex.
        unsafe { self.inner.unlock() }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

/// The [`aiopoll::Locks`] of a [`StdContext`](crate::StdContext): [`Lock`]
/// for the context and for its wait queues.
///
/// A wakeup, holding a wait queue's lock, only *tries* the context's lock;
/// when another thread holds it, the request's completion is handed to the
/// context's deferred work (another thread's hop, and a `futex` call). Here
/// the try watches the lock for a moment first (four pauses, a few hundred
/// nanoseconds), since another thread's submit or reap holds it about that
/// long. The watch is bounded, so a wakeup never waits on a
/// context: when the holder is itself waiting for this queue's lock (a
/// submit registering on this very queue), the try fails after the watch
/// and the wakeup defers, as with a plain try-lock.
///
/// Measured (BENCHMARKS.md): in the `echo_server` example under
/// `echo-load` (200 clients, 2 reapers), 2,024 of 100,000 completions
/// deferred with a plain try-lock and about 200 with the watch, and its
/// lines/s rose by about 4%. Longer watches deferred no less (16 pauses:
/// 144) and cost more where threads outnumber the cores and the holder may
/// be descheduled: the contention benchmark (four threads on two cores
/// sharing one context) took about 370 ns a round with no watch, 480 with
/// 4 pauses and several microseconds with 32.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdLocks;

/// How many pauses [`StdLocks`]' wakeup side watches a held context lock
/// before it defers. Under Miri, none (every step is interpreted).
const SPINS_IN_QUEUE: u32 = if cfg!(miri) { 0 } else { 4 };

// SAFETY: `Context` and `Queue` are `Lock`, a `RawMutex` (parking_lot's,
// with a spin before parking). The one nested method overridden,
// `try_lock_context_in_queue`, returns `true` only when the context lock's
// own `try_lock` succeeded, so while it is held nothing else holds it, as
// the contract asks; the others are the defaults.
unsafe impl aiopoll::Locks for StdLocks {
    type Context = Lock;
    type Queue = Lock;

    #[inline]
    fn try_lock_context_in_queue(context: &Lock) -> bool {
        if context.try_lock() {
            return true;
        }
        context.try_lock_watching(SPINS_IN_QUEUE)
    }
}

impl Lock {
    /// Watches the held lock for up to `spins` pauses and takes it if it is
    /// released meanwhile; never waits longer.
    #[cold]
    fn try_lock_watching(&self, spins: u32) -> bool {
        for _ in 0..spins {
            spin_loop();
            // Read-only until it looks free: the waiters do not bounce the
            // holder's cache line.
            if !self.inner.is_locked() && self.inner.try_lock() {
                return true;
            }
        }
        false
    }
}

impl core::fmt::Debug for Lock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.inner.is_locked())
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Lock {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Lock {{ locked: {=bool} }}", self.inner.is_locked());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_releases() {
        let lock = Lock::INIT;
        assert!(!lock.is_locked());
        lock.lock();
        assert!(lock.is_locked());
        assert!(!lock.try_lock());
        // SAFETY: this thread holds the lock.
        unsafe { lock.unlock() };
        assert!(lock.try_lock());
        // SAFETY: as above.
        unsafe { lock.unlock() };
    }

    #[test]
    fn contended_lock_counts_every_increment() {
        let lock = lock_api::Mutex::<Lock, u64>::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..if cfg!(miri) { 50 } else { 20_000 } {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        let per = if cfg!(miri) { 50 } else { 20_000 };
        assert_eq!(lock.into_inner(), 4 * per);
    }
}

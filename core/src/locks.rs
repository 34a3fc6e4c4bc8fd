//! Choosing a context's locks: [`Locks`].

use lock_api::RawMutex;

/// The pair of locks a [`Context`](crate::Context) uses: its own lock and the
/// lock of the [`WaitQueue`](crate::WaitQueue)s its sources register on.
///
/// The two may differ: on Cortex-M the context takes a priority-ceiling lock
/// so that urgent interrupts are never masked, while each wait queue takes a
/// lock that masks every interrupt that wakes it. Any pair of
/// [`lock_api::RawMutex`] types is a `Locks`.
///
/// The two locks nest in two places, always in the same way: a wakeup,
/// holding a queue lock, *tries* the context lock
/// ([`try_lock_context_in_queue`](Self::try_lock_context_in_queue)); and the
/// context, holding its lock, takes a queue lock to link or unlink a request
/// ([`lock_queue_in_context`](Self::lock_queue_in_context)). By default these
/// are the locks' own `try_lock` and `lock`. A pair whose outer lock already
/// does part of the inner one's work may skip it there: when both are
/// critical sections, the inner one needs no second critical section, only
/// its "held" flag (the Cortex-M adapter's `CortexMLocks`). One critical
/// section per operation, not nested ones.
///
/// # Safety
/// `Context` and `Queue` keep their `RawMutex` contracts, and the four
/// nested methods, when overridden, exclude exactly as the locks they stand
/// for would: while `try_lock_context_in_queue` holds the context lock (it
/// returned `true`, and `unlock_context_in_queue` has not run), nothing else
/// holds it or can take it; likewise for a queue lock taken by
/// `lock_queue_in_context`. The core calls each nested method only while
/// it holds the outer lock, and releases the inner lock before the outer.
pub unsafe trait Locks {
    /// The context's lock: protects its request slots and completion queue.
    type Context: RawMutex;
    /// The wait queues' lock: protects a queue's list of waiting requests.
    type Queue: RawMutex;

    /// Tries the context lock for a wakeup that holds a queue lock (of
    /// this pair). Returns whether it is now held. Default:
    /// `context.try_lock()`.
    #[inline(always)]
    fn try_lock_context_in_queue(context: &Self::Context) -> bool {
        context.try_lock()
    }

    /// Releases a context lock that
    /// [`try_lock_context_in_queue`](Self::try_lock_context_in_queue) took.
    /// Default: `context.unlock()`.
    ///
    /// # Safety
    /// The caller holds it, taken that way, and still holds the queue lock
    /// it held then.
    #[inline(always)]
    unsafe fn unlock_context_in_queue(context: &Self::Context) {
        // SAFETY: the caller's contract: held.
        unsafe { context.unlock() }
    }

    /// Takes a queue lock while the caller holds the context lock (of this
    /// pair). Default: `queue.lock()`.
    #[inline(always)]
    fn lock_queue_in_context(queue: &Self::Queue) {
        queue.lock();
    }

    /// Releases a queue lock that
    /// [`lock_queue_in_context`](Self::lock_queue_in_context) took. Default:
    /// `queue.unlock()`.
    ///
    /// # Safety
    /// The caller holds it, taken that way, and still holds the context
    /// lock it held then.
    #[inline(always)]
    unsafe fn unlock_queue_in_context(queue: &Self::Queue) {
        // SAFETY: the caller's contract: held.
        unsafe { queue.unlock() }
    }
}

// SAFETY: the default nested methods are the locks' own operations.
unsafe impl<C: RawMutex, Q: RawMutex> Locks for (C, Q) {
    type Context = C;
    type Queue = Q;
}

/// A spinning mutex from the `spin` crate: the default lock of the core,
/// right for multi-core parts and for host tests. It does not mask
/// interrupts: on a single core, wake a queue that uses it only from code that
/// cannot preempt a holder of the same lock.
pub type SpinLock = spin::Mutex<()>;

/// [`SpinLock`] for both the context and its wait queues.
pub type SpinLocks = (SpinLock, SpinLock);

//! Choosing a context's locks: [`Locks`].

use lock_api::RawMutex;

/// The pair of locks a [`Context`](crate::Context) uses: its own lock and the
/// lock of the [`WaitQueue`](crate::WaitQueue)s its sources register on.
///
/// The two may differ: on Cortex-M the context takes a priority-ceiling lock
/// so that urgent interrupts are never masked, while each wait queue takes a
/// lock that masks every interrupt that wakes it. Any pair of
/// [`lock_api::RawMutex`] types is a `Locks`.
pub trait Locks {
    /// The context's lock: protects its request slots and completion queue.
    type Context: RawMutex;
    /// The wait queues' lock: protects a queue's list of waiting requests.
    type Queue: RawMutex;
}

impl<C: RawMutex, Q: RawMutex> Locks for (C, Q) {
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

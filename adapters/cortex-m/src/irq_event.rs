//! [`IrqEvent`]: the source an interrupt handler raises.

use core::sync::atomic::Ordering;

use aiopoll::lock_api::RawMutex;
use aiopoll::{Events, PollTable, Source, WaitQueue};
use portable_atomic::AtomicU16;

use crate::CriticalSectionLock;

/// Event bits that an interrupt handler raises and thread mode waits for:
/// one call in the handler ([`raise`](Self::raise)) sets the bits and wakes
/// the requests waiting for them.
///
/// Raised bits **stay set until [`take`](Self::take) or
/// [`clear`](Self::clear)**: a request submitted while they are set
/// completes at once. So thread mode clears what it has handled: submit,
/// reap, clear, then do the work (an interrupt during the work raises
/// again, and the next request sees it).
///
/// ```no_run
/// use core::pin::Pin;
///
/// use aiopoll::{Completion, Context, Events};
/// use aiopoll_cortex_m::{reap_blocking, CortexMLocks, IrqEvent};
/// # use critical_section as _; // the host's critical section, for this test
///
/// static UART_RX: IrqEvent = IrqEvent::new();
/// static CONTEXT: Context<'static, 4, CortexMLocks> = Context::new();
///
/// // The UART's handler (`#[interrupt] fn UART0()` with your PAC):
/// fn uart_interrupt() {
///     // .. read the data register into a buffer ..
///     UART_RX.raise(Events::IN);
/// }
///
/// // Thread mode:
/// fn receive() -> ! {
///     let context = Pin::static_ref(&CONTEXT);
///     let mut done = [Completion::EMPTY; 1];
///     loop {
///         context.submit(&UART_RX, Events::IN, 0).unwrap();
///         reap_blocking(&context, &mut done); // sleeps until the handler raises IN
///         UART_RX.clear(Events::IN); // handled: a later byte raises it again
///         // .. take the bytes out of the buffer ..
///     }
/// }
/// ```
pub struct IrqEvent<Q: RawMutex = CriticalSectionLock> {
    /// The raised events' bits: an atomic, so that reading them (every
    /// `poll`, inside the context's lock) takes no critical section of its
    /// own. Raised with `Release` and read with `Acquire`, so what a handler
    /// wrote before it raised is seen by whoever sees the bits.
    ready: AtomicU16,
    queue: WaitQueue<Q>,
}

impl<Q: RawMutex> IrqEvent<Q> {
    /// No events raised, nobody waiting.
    pub const fn new() -> Self {
        IrqEvent {
            ready: AtomicU16::new(0),
            queue: WaitQueue::new(),
        }
    }

    /// Sets `events` and wakes the requests waiting for any of them (state
    /// first, then the wakeup: the order `Source` requires). Safe in any
    /// interrupt handler; returns how many requests were woken (none when
    /// `events` is empty).
    pub fn raise(&self, events: Events) -> usize {
        if events.is_empty() {
            // An empty key is the core's unkeyed wakeup: it would send every
            // waiter through deferred work for nothing.
            return 0;
        }
        self.ready.fetch_or(events.bits(), Ordering::Release);
        self.queue.wake(events)
    }

    /// Sets `events` and asks the waiting requests to re-read them (an
    /// unkeyed wakeup): for handlers that cannot tell which requests care.
    /// The completions go through deferred work.
    pub fn raise_unkeyed(&self, events: Events) -> usize {
        self.ready.fetch_or(events.bits(), Ordering::Release);
        self.queue.wake(Events::empty())
    }

    /// Clears `events` (the condition was handled).
    pub fn clear(&self, events: Events) {
        self.ready.fetch_and(!events.bits(), Ordering::Relaxed);
    }

    /// Returns the raised events and clears them.
    pub fn take(&self) -> Events {
        Events::from_bits_truncate(self.ready.swap(0, Ordering::Acquire))
    }

    /// The raised events.
    pub fn events(&self) -> Events {
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }

    /// The wait queue, for an unkeyed wakeup or a close.
    pub fn queue(&self) -> &WaitQueue<Q> {
        &self.queue
    }
}

impl<Q: RawMutex> Default for IrqEvent<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q: RawMutex + Send + Sync> Source<Q> for IrqEvent<Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        table.wait(&self.queue);
        self.events()
    }
}

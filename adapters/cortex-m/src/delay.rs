//! [`Ticks`] and [`EngineDelay`]: `embedded_hal::delay::DelayNs` that sleeps
//! on a timer source through the engine.

use core::cell::Cell;
use core::pin::Pin;

use aiopoll::lock_api::RawMutex;
use aiopoll::{Completion, Context, Events, Locks, Notify, PollTable, Source, WaitQueue};
use critical_section::Mutex;
use embedded_hal::delay::DelayNs;

use crate::wait::reap_blocking;
use crate::CriticalSectionLock;

/// A tick counter that a periodic timer interrupt advances with
/// [`tick`](Self::tick); requests wait on it for a deadline.
pub struct Ticks<Q: RawMutex = CriticalSectionLock> {
    now: Mutex<Cell<u32>>,
    queue: WaitQueue<Q>,
}

impl<Q: RawMutex> Ticks<Q> {
    /// At tick 0.
    pub const fn new() -> Self {
        Ticks {
            now: Mutex::new(Cell::new(0)),
            queue: WaitQueue::new(),
        }
    }

    /// For the timer interrupt: one tick has passed. Waiters re-check their
    /// deadline (an unkeyed wakeup), so only the expired ones complete.
    pub fn tick(&self) -> usize {
        critical_section::with(|cs| {
            let now = self.now.borrow(cs);
            now.set(now.get().wrapping_add(1));
        });
        self.queue.wake(Events::empty())
    }

    /// The current tick.
    pub fn now(&self) -> u32 {
        critical_section::with(|cs| self.now.borrow(cs).get())
    }
}

impl<Q: RawMutex> Default for Ticks<Q> {
    fn default() -> Self {
        Self::new()
    }
}

/// A deadline on a [`Ticks`]: ready (IN) once the tick count reaches it.
struct Deadline<'t, Q: RawMutex> {
    ticks: &'t Ticks<Q>,
    at: u32,
}

impl<Q: RawMutex + Send + Sync> Source<Q> for Deadline<'_, Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        table.wait(&self.ticks.queue);
        // Wrapping comparison: expired when `now - at` is "non-negative".
        if self.ticks.now().wrapping_sub(self.at) < u32::MAX / 2 {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

/// `DelayNs` through the engine: each delay is a poll request for a
/// deadline on [`Ticks`], and the thread sleeps in `WFI` until the timer
/// interrupt's wakeups complete it. Delays round up to whole ticks.
///
/// It owns a one-slot context of its own, so that waiting for its own
/// completion never takes another request's.
pub struct EngineDelay<'t, L: Locks, H: Notify> {
    context: Pin<&'t Context<'t, 1, L, 1, H>>,
    ticks: &'t Ticks<L::Queue>,
    tick_ns: u32,
}

impl<'t, L: Locks, H: Notify> EngineDelay<'t, L, H>
where
    L::Queue: Send + Sync,
{
    /// Delays on `ticks`, which advances every `tick_ns` nanoseconds, using
    /// `context` (which must serve nothing else).
    pub fn new(
        context: Pin<&'t Context<'t, 1, L, 1, H>>,
        ticks: &'t Ticks<L::Queue>,
        tick_ns: u32,
    ) -> Self {
        EngineDelay {
            context,
            ticks,
            tick_ns: tick_ns.max(1),
        }
    }
}

impl<L: Locks, H: Notify> DelayNs for EngineDelay<'_, L, H>
where
    L::Queue: Send + Sync,
{
    fn delay_ns(&mut self, ns: u32) {
        let ticks = ns.div_ceil(self.tick_ns);
        if ticks == 0 {
            return;
        }
        let deadline = Deadline {
            ticks: self.ticks,
            // One tick more: the current tick is already partly gone.
            at: self.ticks.now().wrapping_add(ticks).wrapping_add(1),
        };
        // SAFETY: `deadline` lives on this frame, and this function does not
        // return before its request has completed and been reaped (the
        // context serves nothing else, so the one completion reaped below is
        // this request's); `ticks`' queue lives for `'t`.
        let submitted = unsafe { self.context.submit_unchecked(&deadline, Events::IN, 0) };
        if submitted.is_err() {
            // The one slot is taken: the context is shared against the
            // contract. Fall back to spinning on the tick count.
            while deadline.ticks.now().wrapping_sub(deadline.at) >= u32::MAX / 2 {
                cortex_m::asm::wfi();
            }
            return;
        }
        let mut out = [Completion::EMPTY; 1];
        reap_blocking(&self.context, &mut out);
    }
}

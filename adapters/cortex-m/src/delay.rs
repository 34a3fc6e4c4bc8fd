//! [`Ticks`] and [`EngineDelay`]: `embedded_hal::delay::DelayNs` that sleeps
//! on a timer source through the engine.

use core::cell::Cell;
use core::pin::Pin;

use aiopoll::lock_api::RawMutex;
use aiopoll::{Completion, Context, Events, Locks, Notify, PollTable, Source, WaitQueue};
use critical_section::Mutex;
use embedded_hal::delay::DelayNs;

use crate::wait::{reap_blocking, reap_or_sleep};
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

/// For the async delay's unit tests: a count that starts anywhere, and a
/// coarse timer.
#[cfg(all(test, feature = "async"))]
impl<Q: RawMutex> Ticks<Q> {
    /// At tick `now`.
    pub(crate) const fn at(now: u32) -> Self {
        Ticks {
            now: Mutex::new(Cell::new(now)),
            queue: WaitQueue::new(),
        }
    }

    /// `step` ticks at once, with one wakeup.
    pub(crate) fn advance(&self, step: u32) -> usize {
        critical_section::with(|cs| {
            let now = self.now.borrow(cs);
            now.set(now.get().wrapping_add(step));
        });
        self.queue.wake(Events::empty())
    }
}

impl<Q: RawMutex> Default for Ticks<Q> {
    fn default() -> Self {
        Self::new()
    }
}

/// The longest wait one request spans, in ticks. [`expired`] tells a
/// deadline that has passed from one still ahead by their distance on the
/// wrapping counter, so a deadline further ahead than this would read as
/// passed at once: longer delays are split into waits of at most this.
const MAX_WAIT: u32 = 1 << 31;

/// Whether tick `now` has reached the deadline `at`: `now - at` is
/// "non-negative" on the wrapping counter.
fn expired(now: u32, at: u32) -> bool {
    now.wrapping_sub(at) < u32::MAX / 2
}

/// The deadline of a wait of `ticks` whole ticks that starts during tick
/// `now`: one tick more, since the current tick is already partly gone.
fn deadline(now: u32, ticks: u32) -> u32 {
    now.wrapping_add(ticks).wrapping_add(1)
}

/// A delay of `ticks` as waits of 1..=[`MAX_WAIT`] ticks (none for 0).
pub(crate) fn waits(mut ticks: u32) -> impl Iterator<Item = u32> {
    core::iter::from_fn(move || {
        if ticks == 0 {
            return None;
        }
        let wait = ticks.min(MAX_WAIT);
        ticks -= wait;
        Some(wait)
    })
}

/// A deadline on a [`Ticks`]: ready (IN) once the tick count reaches it.
pub(crate) struct Deadline<'t, Q: RawMutex> {
    ticks: &'t Ticks<Q>,
    at: u32,
}

impl<'t, Q: RawMutex> Deadline<'t, Q> {
    /// The end of a wait of `wait` whole ticks (1..=[`MAX_WAIT`]) that
    /// starts now.
    pub(crate) fn after(ticks: &'t Ticks<Q>, wait: u32) -> Self {
        Deadline {
            ticks,
            at: deadline(ticks.now(), wait),
        }
    }

    /// Whether the tick count has reached the deadline.
    pub(crate) fn expired(&self) -> bool {
        expired(self.ticks.now(), self.at)
    }
}

impl<Q: RawMutex + Send + Sync> Source<Q> for Deadline<'_, Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        table.wait(&self.ticks.queue);
        if self.expired() {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

/// How a delay waits for the timer: [`Wfi`] on the hardware. (Factored out
/// so that the unit tests can play the timer interrupt instead: `WFI` is
/// not available off a Cortex-M core.)
trait Idle {
    /// Reaps at least one completion of `context` into `out` (which is not
    /// empty), waiting as long as it takes: by default the adapter's one
    /// reap-or-sleep loop, waiting for an interrupt while there is nothing.
    fn reap<L: Locks, H: Notify>(
        &mut self,
        context: &Context<'_, 1, L, 1, H>,
        out: &mut [Completion],
    ) -> usize {
        reap_or_sleep(context, out, |_| self.wait_for_interrupt())
    }

    /// Waits for the next interrupt (the fallback when the context's slot
    /// is taken).
    fn wait_for_interrupt(&mut self);
}

/// Sleeps in `WFI`.
struct Wfi;

impl Idle for Wfi {
    fn reap<L: Locks, H: Notify>(
        &mut self,
        context: &Context<'_, 1, L, 1, H>,
        out: &mut [Completion],
    ) -> usize {
        // Not the default loop: the last check before `WFI` must run with
        // interrupts masked, or a completion in between is slept through.
        reap_blocking(context, out)
    }

    fn wait_for_interrupt(&mut self) {
        cortex_m::asm::wfi();
    }
}

/// `DelayNs` through the engine: each delay is a poll request for a
/// deadline on [`Ticks`], and the thread sleeps in `WFI` until the timer
/// interrupt's wakeups complete it. Delays round up to whole ticks.
///
/// It owns a one-slot context of its own, so that waiting for its own
/// completion never takes another request's.
///
/// `'t` is how long the delay borrows its context and ticks; `'s` is the
/// context's own source lifetime, which the delay does not constrain (each
/// deadline lives on the delaying frame and is reaped before `delay_ns`
/// returns), so a context on the stack works as well as a `static` one.
pub struct EngineDelay<'t, 's, L: Locks, H: Notify> {
    context: Pin<&'t Context<'s, 1, L, 1, H>>,
    ticks: &'t Ticks<L::Queue>,
    tick_ns: u32,
}

impl<'t, 's, L: Locks, H: Notify> EngineDelay<'t, 's, L, H>
where
    L::Queue: Send + Sync,
{
    /// Delays on `ticks`, which advances every `tick_ns` nanoseconds, using
    /// `context` (which must serve nothing else).
    pub fn new(
        context: Pin<&'t Context<'s, 1, L, 1, H>>,
        ticks: &'t Ticks<L::Queue>,
        tick_ns: u32,
    ) -> Self {
        EngineDelay {
            context,
            ticks,
            tick_ns: tick_ns.max(1),
        }
    }

    /// `delay_ns`, waiting through `idle`.
    fn delay_with(&mut self, ns: u32, idle: &mut impl Idle) {
        for ticks in waits(ns.div_ceil(self.tick_ns)) {
            self.wait(ticks, idle);
        }
    }

    /// Waits 1..=[`MAX_WAIT`] whole ticks.
    fn wait(&mut self, ticks: u32, idle: &mut impl Idle) {
        let deadline = Deadline::after(self.ticks, ticks);
        // SAFETY: `deadline` lives on this frame, and this function does not
        // return before its request has completed and been reaped (`Idle::
        // reap` reaps at least one completion, and the context serves
        // nothing else, so the one completion reaped below is this
        // request's); `ticks`' queue lives for `'t`.
        let submitted = unsafe { self.context.submit_unchecked(&deadline, Events::IN, 0) };
        if submitted.is_err() {
            // The one slot is taken: the context is shared against the
            // contract. Fall back to waiting on the tick count.
            while !deadline.expired() {
                idle.wait_for_interrupt();
            }
            return;
        }
        let mut out = [Completion::EMPTY; 1];
        idle.reap(&self.context, &mut out);
    }
}

impl<L: Locks, H: Notify> DelayNs for EngineDelay<'_, '_, L, H>
where
    L::Queue: Send + Sync,
{
    fn delay_ns(&mut self, ns: u32) {
        self.delay_with(ns, &mut Wfi);
    }
}

/// The deadline arithmetic, [`Deadline`] as a source, and [`EngineDelay`]
/// with the timer interrupt played by the test ([`Timer`] stands in for
/// [`Wfi`]: `WFI` and the interrupt masking around it only exist on a
/// Cortex-M core).
#[cfg(test)]
mod tests {
    extern crate std;

    use core::pin::pin;
    use std::vec::Vec;

    use aiopoll::Outcome;

    use super::*;
    use crate::{CortexMLocks, IrqEvent};

    const fn ticks_at(now: u32) -> Ticks {
        Ticks {
            now: Mutex::new(Cell::new(now)),
            queue: WaitQueue::new(),
        }
    }

    /// Plays the timer interrupt: each time the delay would sleep, one tick
    /// passes (and wakes the waiters, as the interrupt handler would).
    struct Timer<'t> {
        ticks: &'t Ticks,
        sleeps: u32,
    }

    /// A coarse timer: each interrupt advances the count by `step` ticks.
    struct CoarseTimer<'t> {
        ticks: &'t Ticks,
        step: u32,
        elapsed: u64,
    }

    impl Idle for CoarseTimer<'_> {
        fn wait_for_interrupt(&mut self) {
            critical_section::with(|cs| {
                let now = self.ticks.now.borrow(cs);
                now.set(now.get().wrapping_add(self.step));
            });
            self.ticks.queue.wake(Events::empty());
            self.elapsed += u64::from(self.step);
        }
    }

    impl Idle for Timer<'_> {
        fn wait_for_interrupt(&mut self) {
            self.sleeps += 1;
            self.ticks.tick();
        }
    }

    #[test]
    fn expired_at_and_after_the_deadline_not_before() {
        for at in [
            0,
            1,
            1000,
            u32::MAX / 2,
            u32::MAX / 2 + 1,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert!(expired(at, at), "{at}");
            assert!(expired(at.wrapping_add(1), at), "{at}");
            assert!(expired(at.wrapping_add(MAX_WAIT - 2), at), "{at}");
            assert!(!expired(at.wrapping_sub(1), at), "{at}");
            assert!(!expired(at.wrapping_sub(MAX_WAIT), at), "{at}");
        }
    }

    #[test]
    fn a_deadline_is_one_tick_past_the_wait_and_wraps() {
        assert_eq!(deadline(10, 3), 14);
        assert_eq!(deadline(u32::MAX - 1, 3), 2);
        assert_eq!(deadline(u32::MAX, 1), 1);
    }

    #[test]
    fn every_wait_up_to_max_wait_is_ahead_until_it_is_reached() {
        for now in [0, 12345, u32::MAX / 2, u32::MAX - 5, u32::MAX] {
            for ticks in [1, 2, 1000, MAX_WAIT - 1, MAX_WAIT] {
                let at = deadline(now, ticks);
                // Not expired at the start, nor one tick before the end...
                assert!(!expired(now, at), "{now} {ticks}");
                assert!(!expired(at.wrapping_sub(1), at), "{now} {ticks}");
                // ...expired when reached.
                assert!(expired(at, at), "{now} {ticks}");
            }
            // One tick more than MAX_WAIT would read as passed at once:
            // why long delays are split.
            assert!(expired(now, deadline(now, MAX_WAIT + 1)), "{now}");
        }
    }

    #[test]
    fn long_delays_are_split_into_waits_of_at_most_max_wait() {
        assert_eq!(waits(0).count(), 0);
        assert_eq!(waits(1).collect::<Vec<_>>(), [1]);
        assert_eq!(waits(MAX_WAIT).collect::<Vec<_>>(), [MAX_WAIT]);
        assert_eq!(waits(MAX_WAIT + 1).collect::<Vec<_>>(), [MAX_WAIT, 1]);
        assert_eq!(
            waits(u32::MAX).collect::<Vec<_>>(),
            [MAX_WAIT, u32::MAX - MAX_WAIT]
        );
    }

    #[test]
    fn tick_advances_now_and_wraps() {
        let ticks: Ticks = Ticks::default();
        assert_eq!(ticks.now(), 0);
        assert_eq!(ticks.tick(), 0, "nobody waits");
        assert_eq!(ticks.now(), 1);
        let ticks = ticks_at(u32::MAX);
        ticks.tick();
        assert_eq!(ticks.now(), 0);
    }

    #[test]
    fn tick_completes_the_expired_deadlines_only() {
        let ticks = ticks_at(u32::MAX - 1);
        let near = Deadline {
            ticks: &ticks,
            at: deadline(ticks.now(), 1), // u32::MAX - 1 + 2 = 0 (wrapped)
        };
        let far = Deadline {
            ticks: &ticks,
            at: deadline(ticks.now(), 3), // 2
        };
        let context = pin!(Context::<'_, 4, CortexMLocks>::new());
        context.as_ref().submit(&near, Events::IN, 1).unwrap();
        context.as_ref().submit(&far, Events::IN, 2).unwrap();
        let mut out = [Completion::EMPTY; 4];

        // u32::MAX: neither has expired; both were woken to re-check.
        assert_eq!(ticks.tick(), 2);
        assert_eq!(context.reap(&mut out), 0);
        assert_eq!(ticks.queue.len(), 2);
        // 0 (wrapped): the near one, not the far one.
        assert_eq!(ticks.tick(), 2);
        assert_eq!(context.reap(&mut out), 1);
        assert_eq!(out[0].user_data, 1);
        assert_eq!(out[0].outcome, Outcome::Ready(Events::IN));
        assert_eq!(ticks.queue.len(), 1);
        // 1: still not the far one.
        assert_eq!(ticks.tick(), 1);
        assert_eq!(context.reap(&mut out), 0);
        // 2: the far one.
        ticks.tick();
        assert_eq!(context.reap(&mut out), 1);
        assert_eq!(out[0].user_data, 2);
        assert!(ticks.queue.is_empty());
        // Re-checks that found the deadline ahead: both at the first tick,
        // the far one at the next two.
        assert_eq!(context.stats().spurious, 4);
    }

    #[test]
    fn a_deadline_already_reached_completes_at_submit() {
        let ticks = ticks_at(7);
        let past = Deadline {
            ticks: &ticks,
            at: 7,
        };
        let context = pin!(Context::<'_, 1, CortexMLocks, 1>::new());
        context.as_ref().submit(&past, Events::IN, 1).unwrap();
        assert_eq!(context.stats().completed_at_submit, 1);
        assert!(ticks.queue.is_empty());
    }

    // Most of these tests use statics, as firmware does; the first one
    // shows a context and ticks on the stack work too.
    type DelayContext = Context<'static, 1, CortexMLocks, 1>;

    #[test]
    fn a_delay_works_with_a_context_and_ticks_on_the_stack() {
        let ticks = ticks_at(7);
        let context = pin!(Context::<'_, 1, CortexMLocks, 1>::new());
        let mut delay = EngineDelay::new(context.as_ref(), &ticks, 1000);
        let mut timer = Timer {
            ticks: &ticks,
            sleeps: 0,
        };
        delay.delay_with(2500, &mut timer);
        assert_eq!(timer.sleeps, 4);
        assert_eq!(context.stats().reaped, 1);
        assert_eq!(context.in_use(), 0);
    }

    #[test]
    fn delay_waits_whole_ticks_plus_the_partial_one() {
        static TICKS: [Ticks; 4] = [
            ticks_at(0),
            ticks_at(0),
            ticks_at(0),
            ticks_at(u32::MAX - 1),
        ];
        static CONTEXTS: [DelayContext; 4] = [const { Context::new() }; 4];
        for (case, (tick_ns, ns, expected_ticks)) in [
            (1000, 1, 2),    // rounds up to 1 tick, plus the partial one
            (1000, 1000, 2), // exactly one tick
            (1000, 2500, 4), // 3 ticks
            (10, 30, 4),     // across the wrap
        ]
        .into_iter()
        .enumerate()
        {
            let ticks = &TICKS[case];
            let context = Pin::static_ref(&CONTEXTS[case]);
            let start = ticks.now();
            let mut delay = EngineDelay::new(context, ticks, tick_ns);
            let mut timer = Timer { ticks, sleeps: 0 };
            delay.delay_with(ns, &mut timer);
            assert_eq!(timer.sleeps, expected_ticks, "{case}");
            assert_eq!(ticks.now(), start.wrapping_add(expected_ticks), "{case}");
            // One request, reaped: the context is ready for the next delay.
            assert_eq!(context.stats().submitted, 1);
            assert_eq!(context.stats().reaped, 1);
            assert_eq!(context.in_use(), 0);
            assert!(ticks.queue.is_empty());
        }
    }

    #[test]
    fn a_zero_delay_returns_at_once_and_a_zero_tick_length_is_one_ns() {
        static TICKS: Ticks = ticks_at(0);
        static CONTEXT: DelayContext = Context::new();
        let context = Pin::static_ref(&CONTEXT);
        let mut timer = Timer {
            ticks: &TICKS,
            sleeps: 0,
        };
        let mut delay = EngineDelay::new(context, &TICKS, 0);
        delay.delay_with(0, &mut timer);
        assert_eq!(timer.sleeps, 0);
        assert_eq!(context.stats().submitted, 0);
        // A 0 ns tick would divide by zero: taken as 1 ns.
        delay.delay_with(3, &mut timer);
        assert_eq!(timer.sleeps, 4);
    }

    #[test]
    fn delays_repeat_on_the_same_context() {
        static TICKS: Ticks = ticks_at(100);
        static CONTEXT: DelayContext = Context::new();
        let context = Pin::static_ref(&CONTEXT);
        let mut delay = EngineDelay::new(context, &TICKS, 1000);
        let mut timer = Timer {
            ticks: &TICKS,
            sleeps: 0,
        };
        for _ in 0..5 {
            delay.delay_with(1000, &mut timer);
        }
        assert_eq!(timer.sleeps, 10);
        assert_eq!(TICKS.now(), 110);
        assert_eq!(context.stats().reaped, 5);
        assert_eq!(context.in_use(), 0);
    }

    #[test]
    fn a_shared_context_falls_back_to_waiting_on_the_count() {
        static TICKS: Ticks = ticks_at(0);
        static OTHER: IrqEvent = IrqEvent::new();
        static CONTEXT: DelayContext = Context::new();
        let context = Pin::static_ref(&CONTEXT);
        // Against the contract: another request holds the one slot.
        context.submit(&OTHER, Events::IN, 9).unwrap();
        let mut delay = EngineDelay::new(context, &TICKS, 1000);
        let mut timer = Timer {
            ticks: &TICKS,
            sleeps: 0,
        };
        delay.delay_with(3000, &mut timer);
        assert_eq!(timer.sleeps, 4);
        assert_eq!(TICKS.now(), 4);
        // The other request was left alone.
        assert_eq!(context.in_use(), 1);
        assert_eq!(OTHER.queue().len(), 1);
        assert_eq!(context.stats().submitted, 1);
    }

    #[test]
    fn a_delay_longer_than_half_the_counter_is_not_cut_short() {
        // With 1 ns ticks, u32::MAX ns is more ticks than one deadline can
        // be ahead: in one wait it would read as passed at once.
        static TICKS: Ticks = ticks_at(5);
        static CONTEXT: DelayContext = Context::new();
        let context = Pin::static_ref(&CONTEXT);
        let mut delay = EngineDelay::new(context, &TICKS, 1);
        let mut timer = CoarseTimer {
            ticks: &TICKS,
            step: 1 << 28,
            elapsed: 0,
        };
        delay.delay_with(u32::MAX, &mut timer);
        assert!(
            timer.elapsed >= u64::from(u32::MAX),
            "returned after {} of {} ticks",
            timer.elapsed,
            u32::MAX
        );
        // Two waits, each a whole tick late at most one coarse step.
        assert!(timer.elapsed <= u64::from(u32::MAX) + 2 * (1 << 28));
        assert_eq!(context.stats().submitted, 2);
        assert_eq!(context.in_use(), 0);
    }
}

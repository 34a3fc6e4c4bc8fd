//! [`DeadlineTimer`]: every request deadline of a context driven by one
//! hardware timer interrupt.
//!
//! # How the timer is kept in time
//!
//! Only [`DeadlineTimer::run_deferred`], in the deferred-work handler,
//! programs the timer: it runs [`Context::expire`], reads
//! [`Context::next_deadline`] and sets the alarm for it. It then publishes
//! that time as its *promise*: "the deferred work runs again by then".
//! [`Notify::deadline_armed`], called under the context lock for each
//! request that arms with a deadline, only compares the deadline with the
//! promise and pends the deferred work when it is earlier (or when the
//! promise cannot be read consistently): no lock, no read-modify-write, no
//! waiting, so it is safe wherever a request is submitted.
//!
//! The promise is 64 bits, which no Cortex-M can store atomically, so it is
//! kept as two 32-bit halves under a sequence count (a seqlock): the one
//! writer, the deferred work, makes the count odd while it changes the
//! halves (plain loads and stores: this works on thumbv6m, which has no
//! compare-and-swap, and masks no interrupt); a reader that sees an odd or a changed count does not wait for
//! the writer (it may have preempted it) but pends the deferred work, which
//! is never wrong: a run too many only finds nothing to do.
//!
//! Why no deadline is missed: each run first withdraws its promise
//! (publishes "none", so every arm pends) and only then reads the earliest
//! deadline under the context lock. A request that armed before that read
//! is in it, so the alarm covers it; one that arms after it sees "none" or
//! the new promise, and pends the deferred work unless its deadline is at
//! or after the promised time, when the run at that time will see it. An
//! alarm set for a time that has already passed when the timer has been
//! programmed is not relied on: the run expires again at once.

use core::fmt;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use aiopoll::{Context, Kinds, Locks, Notify};

/// A hardware timer for [`DeadlineTimer`]: the clock that deadlines are
/// given in, and one alarm on it that raises the timer's interrupt.
///
/// Implemented by the firmware for its part's timer (for example a
/// free-running counter extended to 64 bits, with a compare or one-shot
/// channel for the alarm). Only [`DeadlineTimer::run_deferred`] calls
/// [`set_alarm`](Self::set_alarm) and [`clear_alarm`](Self::clear_alarm),
/// from the deferred-work handler, so they never race each other.
pub trait Alarm {
    /// The time now, in the ticks deadlines are given in. It never goes
    /// back, and at 64 bits it does not wrap in the life of a device.
    fn now(&self) -> u64;

    /// Replaces any earlier alarm: the timer's interrupt is to fire once
    /// [`now`](Self::now) has reached `at`. Firing earlier is allowed (a
    /// timer whose range cannot reach `at` fires at the end of its range):
    /// an early interrupt only makes the deferred work set the alarm again.
    /// `at` may already have passed, or pass while the timer is being
    /// programmed: the caller reads [`now`](Self::now) afterwards and does
    /// not count on the interrupt then.
    fn set_alarm(&self, at: u64);

    /// No request waits for a deadline: the alarm may stop. (An interrupt
    /// that fires anyway does no harm.)
    fn clear_alarm(&self);
}

/// The promise "none": no alarm is set, every deadline must pend the
/// deferred work.
const NONE: u64 = u64::MAX;

/// [`Notify`] hooks that drive every deadline of a context from one
/// hardware timer interrupt: they forward the deferred-work and completion
/// notifications to `hooks` (for example [`PendInterrupt`](crate::PendInterrupt)),
/// and keep the [`Alarm`] set for the earliest deadline.
///
/// Three handlers take part:
///
/// - The timer's interrupt handler acknowledges the timer and calls
///   [`alarm_fired`](Self::alarm_fired), which only pends the deferred
///   work: it never takes the context lock, so the timer may have any
///   priority (even above a `CeilingLock`'s ceiling).
/// - The deferred-work handler calls [`DeadlineTimer::run_deferred`] in
///   place of [`Context::run_deferred`]: it ends the requests whose deadline
///   has passed ([`Context::expire`]), runs the deferred work, and sets the
///   alarm for the next deadline.
/// - Whoever submits gives deadlines in [`Alarm::now`]'s ticks, to
///   [`Context::submit_with_deadline`] or [`Request::deadline`](aiopoll::Request::deadline).
///
/// The timer's own interrupt may also be the deferred-work interrupt
/// (`PendInterrupt` of the timer's interrupt, whose handler acknowledges
/// the timer and calls `run_deferred`): then one interrupt does both.
///
/// ```no_run
/// use aiopoll::{Context, Events};
/// use aiopoll_cortex_m::{Alarm, CeilingLocks, DeadlineTimer, IrqEvent, PendInterrupt};
/// # use critical_section as _; // the host's critical section, for this test
///
/// // Your PAC's interrupt enum; here a stand-in with the one interrupt we use.
/// #[derive(Clone, Copy)]
/// enum Interrupt {
///     GPIOB = 1,
/// }
/// // SAFETY: 1 is a valid interrupt number of the part.
/// unsafe impl cortex_m::interrupt::InterruptNumber for Interrupt {
///     fn number(self) -> u16 {
///         self as u16
///     }
/// }
///
/// /// Your part's timer: a 64-bit count, and an alarm on it.
/// struct Timer1;
/// impl Alarm for Timer1 {
///     fn now(&self) -> u64 { /* read the counter */ 0 }
///     fn set_alarm(&self, at: u64) { /* program the compare or one-shot */ }
///     fn clear_alarm(&self) { /* stop it */ }
/// }
///
/// type Hooks = DeadlineTimer<PendInterrupt<Interrupt>, Timer1>;
/// static CONTEXT: Context<'static, 8, CeilingLocks<0x40>, 1, Hooks> =
///     Context::with_hooks(DeadlineTimer::new(PendInterrupt(Interrupt::GPIOB), Timer1));
/// static UART_RX: IrqEvent = IrqEvent::new();
///
/// // The timer's handler (`#[interrupt] fn TIMER1()` with your PAC):
/// fn timer_interrupt() {
///     // .. acknowledge the timer ..
///     CONTEXT.hooks().alarm_fired();
/// }
///
/// // The least urgent interrupt's handler (`#[interrupt] fn GPIOB()`):
/// fn deferred_work_interrupt() {
///     DeadlineTimer::run_deferred(&CONTEXT);
/// }
///
/// // Thread mode: wait for UART bytes, at most 1000 ticks.
/// let now = CONTEXT.hooks().now();
/// let context = core::pin::Pin::static_ref(&CONTEXT);
/// context.submit_with_deadline(&UART_RX, Events::IN, 7, now + 1000).unwrap();
/// // .. reap: Ready(IN), or TimedOut once the deadline has passed ..
/// ```
pub struct DeadlineTimer<H, A> {
    hooks: H,
    alarm: A,
    promise: Promise,
}

impl<H, A> DeadlineTimer<H, A> {
    /// Hooks that forward to `hooks`, with deadlines on `alarm`.
    pub const fn new(hooks: H, alarm: A) -> Self {
        DeadlineTimer {
            hooks,
            alarm,
            promise: Promise::new(),
        }
    }

    /// The hooks notifications are forwarded to.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The timer.
    pub fn alarm(&self) -> &A {
        &self.alarm
    }
}

impl<H: Notify, A: Alarm> DeadlineTimer<H, A> {
    /// The time now on the timer's clock ([`Alarm::now`]): deadlines are
    /// given in its ticks.
    pub fn now(&self) -> u64 {
        self.alarm.now()
    }

    /// For the timer's interrupt handler, once it has acknowledged the
    /// timer: asks for the deferred work (through the forwarded hooks),
    /// which ends the requests whose deadline has passed. Takes no lock.
    pub fn alarm_fired(&self) {
        self.hooks.deferred_work();
    }

    /// For the deferred-work handler, in place of [`Context::run_deferred`]:
    /// ends with [`Outcome::TimedOut`](aiopoll::Outcome::TimedOut) every
    /// pending request whose deadline has passed ([`Context::expire`]),
    /// runs the deferred work, and sets the alarm for the earliest deadline
    /// left (or clears it). Returns how many requests timed out (a request
    /// whose wakeup came first completes with that instead, and is not
    /// counted).
    ///
    /// Takes the context lock, and is the one writer of the alarm and of
    /// the promise: call it from one place only, the deferred-work handler
    /// (an interrupt does not preempt itself), or, in a firmware without
    /// one, the loop that reaps. Two callers that may preempt each other
    /// could leave the alarm set for a later deadline than the earliest.
    pub fn run_deferred<const N: usize, L: Locks, const W: usize, K: Kinds>(
        context: &Context<'_, N, L, W, Self, K>,
    ) -> usize {
        let timer = context.hooks();
        // Every deadline that arms from here on pends this work again,
        // until the alarm is set for the earliest one.
        timer.promise.publish(NONE);
        let mut timed_out = 0;
        loop {
            timed_out += context.expire(timer.alarm.now());
            context.run_deferred();
            let Some(next) = context.next_deadline() else {
                timer.alarm.clear_alarm();
                return timed_out;
            };
            timer.alarm.set_alarm(next);
            if timer.alarm.now() < next {
                timer.promise.publish(next);
                return timed_out;
            }
            // It passed while the timer was being programmed: expire now
            // rather than count on the interrupt.
        }
    }
}

impl<H: Notify, A> Notify for DeadlineTimer<H, A> {
    fn deferred_work(&self) {
        self.hooks.deferred_work();
    }

    fn completed(&self) {
        self.hooks.completed();
    }

    fn deadline_armed(&self, deadline: u64) {
        if self.promise.misses(deadline) {
            self.hooks.deferred_work();
        }
        self.hooks.deadline_armed(deadline);
    }
}

impl<H: fmt::Debug, A: fmt::Debug> fmt::Debug for DeadlineTimer<H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let promise = self.promise.read();
        f.debug_struct("DeadlineTimer")
            .field("hooks", &self.hooks)
            .field("alarm", &self.alarm)
            .field("promise", &promise.filter(|at| *at != NONE))
            .finish()
    }
}

/// The time by which the deferred work runs again ([`NONE`]: no such
/// time), as a seqlock of two halves: written by the deferred work only,
/// read without waiting by whoever arms a deadline.
struct Promise {
    /// Odd while the halves change.
    sequence: AtomicU32,
    high: AtomicU32,
    low: AtomicU32,
}

impl Promise {
    const fn new() -> Self {
        Promise {
            sequence: AtomicU32::new(0),
            high: AtomicU32::new((NONE >> 32) as u32),
            low: AtomicU32::new(NONE as u32),
        }
    }

    /// The promise, or `None` when the writer is changing it.
    fn read(&self) -> Option<u64> {
        let before = self.sequence.load(Ordering::Acquire);
        let high = self.high.load(Ordering::Relaxed);
        let low = self.low.load(Ordering::Relaxed);
        // The halves are read before the count is read again.
        fence(Ordering::Acquire);
        let after = self.sequence.load(Ordering::Relaxed);
        (before == after && before.is_multiple_of(2))
            .then_some(u64::from(high) << 32 | u64::from(low))
    }

    /// Whether a request with `deadline` needs the deferred work to run
    /// (sooner than promised, or the promise is being changed).
    fn misses(&self, deadline: u64) -> bool {
        self.read().is_none_or(|promise| deadline < promise)
    }

    /// Publishes `promise` (by the one writer: nothing else changes the
    /// halves or the count meanwhile).
    fn publish(&self, promise: u64) {
        let high = (promise >> 32) as u32;
        let low = promise as u32;
        if self.high.load(Ordering::Relaxed) == high && self.low.load(Ordering::Relaxed) == low {
            return;
        }
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(1), Ordering::Relaxed);
        // The odd count is seen before any changed half.
        fence(Ordering::Release);
        self.high.store(high, Ordering::Relaxed);
        self.low.store(low, Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(2), Ordering::Release);
    }
}

/// The promise's seqlock, read where the writer was preempted.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_promise_is_none_and_every_deadline_misses_it() {
        let promise = Promise::new();
        assert_eq!(promise.read(), Some(NONE));
        assert!(promise.misses(0));
        assert!(promise.misses(u64::MAX - 1));
    }

    #[test]
    fn a_deadline_misses_a_later_promise_only() {
        let promise = Promise::new();
        promise.publish(0x1_0000_0005);
        assert_eq!(promise.read(), Some(0x1_0000_0005));
        assert!(promise.misses(0x1_0000_0004));
        assert!(promise.misses(5));
        assert!(!promise.misses(0x1_0000_0005));
        assert!(!promise.misses(0x2_0000_0000));
        assert_eq!(promise.sequence.load(Ordering::Relaxed), 2);
        // Publishing the same promise again writes nothing.
        promise.publish(0x1_0000_0005);
        assert_eq!(promise.sequence.load(Ordering::Relaxed), 2);
        promise.publish(NONE);
        assert!(promise.misses(0x2_0000_0000));
    }

    #[test]
    fn a_reader_that_preempts_the_writer_pends_instead_of_waiting() {
        let promise = Promise::new();
        promise.publish(1000);
        // The writer stopped half-way: odd count, one half changed.
        promise.sequence.store(3, Ordering::Relaxed);
        promise.high.store(7, Ordering::Relaxed);
        assert_eq!(promise.read(), None);
        assert!(promise.misses(0x9_0000_0000));
        assert!(promise.misses(2000));
    }

    #[test]
    fn the_count_wraps() {
        let promise = Promise::new();
        promise.sequence.store(u32::MAX - 1, Ordering::Relaxed);
        promise.publish(10);
        assert_eq!(promise.sequence.load(Ordering::Relaxed), 0);
        assert_eq!(promise.read(), Some(10));
    }
}

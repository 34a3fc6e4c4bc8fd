//! [`AsyncDelay`]: `embedded_hal_async::delay::DelayNs` on a [`Ticks`]
//! timer source, each wait an awaited poll request.

use core::future::poll_fn;
use core::pin::Pin;
use core::task::Poll;

use aiopoll::kinds::{EveryKind, Kinds, TakesAwaited};
use aiopoll::{Context, Events, Locks, Notify, Outcome};
use embedded_hal_async::delay::DelayNs;

use crate::delay::{waits, Deadline};
use crate::Ticks;

/// `embedded_hal_async::delay::DelayNs` through the engine: each delay is
/// an awaited request ([`Context::request`]) for a deadline on [`Ticks`],
/// which the timer interrupt ([`Ticks::tick`]) wakes; the task sleeps in
/// its executor meanwhile. Delays round up to whole ticks, plus the tick
/// under way (as [`EngineDelay`](crate::EngineDelay)).
///
/// Unlike `EngineDelay` it needs no context of its own: an awaited request
/// never reaches the completion queue, so the delays share a context with
/// any other requests, and a full context makes a delay wait for a slot.
/// Dropping a delay cancels its request, which is how a timeout is made:
/// `select(request, delay.delay_ms(10))`.
///
/// It borrows and copies: make one per task, or share one ([`delay_ticks`]
/// takes `&self`).
///
/// [`delay_ticks`]: Self::delay_ticks
///
/// ```no_run
/// use core::pin::Pin;
/// use aiopoll::Context;
/// use aiopoll_cortex_m::{AsyncDelay, CortexMLocks, PendSv, Ticks};
/// use embedded_hal_async::delay::DelayNs;
/// # use critical_section as _; // the host's critical section, for this test
///
/// static TICKS: Ticks = Ticks::new(); // the timer interrupt calls TICKS.tick()
/// static CONTEXT: Context<'static, 4, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);
///
/// async fn blink() {
///     let mut delay = AsyncDelay::new(Pin::static_ref(&CONTEXT), &TICKS, 1_000_000); // 1 ms ticks
///     loop {
///         delay.delay_ms(250).await;
///         // .. toggle an LED ..
///     }
/// }
/// ```
pub struct AsyncDelay<
    'a,
    's,
    const N: usize,
    L: Locks,
    const W: usize,
    H: Notify,
    K: Kinds = EveryKind,
> {
    context: Pin<&'a Context<'s, N, L, W, H, K>>,
    ticks: &'a Ticks<L::Queue>,
    tick_ns: u32,
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited> Clone
    for AsyncDelay<'_, '_, N, L, W, H, K>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited> Copy
    for AsyncDelay<'_, '_, N, L, W, H, K>
{
}

impl<'a, 's, const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited>
    AsyncDelay<'a, 's, N, L, W, H, K>
where
    L::Queue: Send + Sync,
{
    /// Delays on `ticks`, which advances every `tick_ns` nanoseconds (0 is
    /// taken as 1), with requests in `context`.
    pub fn new(
        context: Pin<&'a Context<'s, N, L, W, H, K>>,
        ticks: &'a Ticks<L::Queue>,
        tick_ns: u32,
    ) -> Self {
        AsyncDelay {
            context,
            ticks,
            tick_ns: tick_ns.max(1),
        }
    }

    /// Waits `ticks` whole ticks after the current one (none for 0).
    pub async fn delay_ticks(&self, ticks: u32) {
        for wait in waits(ticks) {
            self.wait(wait).await;
        }
    }

    /// Waits 1..=`MAX_WAIT` whole ticks: one awaited request.
    async fn wait(&self, ticks: u32) {
        let deadline = Deadline::after(self.ticks, ticks);
        // SAFETY: `deadline` is a local of this async fn, declared before
        // the request future, so it is dropped after it; this future's state
        // is pinned while it is polled, so `deadline` stays in place until
        // the request has been dropped (Pin's drop guarantee). The ticks'
        // wait queue is borrowed for `'a`, which outlives this future.
        let request = unsafe { self.context.request_unchecked(&deadline, Events::IN) };
        if let Ok(Outcome::Ready(_)) = request.await {
            return;
        }
        // A deadline registers on one queue that is never closed, so the
        // request is neither refused nor ended otherwise; were it, the
        // delay still lasts: it checks the count each time it is polled.
        poll_fn(|cx| {
            if deadline.expired() {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited> DelayNs
    for AsyncDelay<'_, '_, N, L, W, H, K>
where
    L::Queue: Send + Sync,
{
    async fn delay_ns(&mut self, ns: u32) {
        self.delay_ticks(ns.div_ceil(self.tick_ns)).await;
    }
}

/// What the host tests cannot reach through the public API: a count that
/// wraps during a delay, and a delay longer than one request can span.
#[cfg(test)]
mod tests {
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context as TaskContext, Waker};

    use super::*;
    use crate::CortexMLocks;

    /// Steps the timer by `step` ticks (then runs the deferred work, as the
    /// pended interrupt would) until `future` resolves; returns the ticks
    /// that passed.
    fn elapsed_until_ready(
        ticks: &Ticks,
        context: &Context<'_, 2, CortexMLocks, 1>,
        step: u32,
        mut future: Pin<&mut impl Future<Output = ()>>,
    ) -> u64 {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let mut elapsed = 0u64;
        while future.as_mut().poll(&mut cx).is_pending() {
            ticks.advance(step);
            context.run_deferred();
            elapsed += u64::from(step);
        }
        elapsed
    }

    #[test]
    fn a_delay_across_the_wrap_of_the_count() {
        let ticks = Ticks::at(u32::MAX - 1);
        let context = pin!(Context::<'_, 2, CortexMLocks, 1>::new());
        let delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
        let elapsed = elapsed_until_ready(&ticks, &context, 1, pin!(delay.delay_ticks(3)));
        assert_eq!(elapsed, 4);
        assert_eq!(ticks.now(), 2);
    }

    #[test]
    fn a_delay_longer_than_half_the_counter_is_not_cut_short() {
        // With 1 ns ticks, u32::MAX ns is more ticks than one deadline can
        // be ahead: as one request it would read as passed at once.
        let ticks = Ticks::at(5);
        let context = pin!(Context::<'_, 2, CortexMLocks, 1>::new());
        let mut delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
        let step = 1 << 28;
        let elapsed = elapsed_until_ready(&ticks, &context, step, pin!(delay.delay_ns(u32::MAX)));
        assert!(elapsed >= u64::from(u32::MAX), "ended after {elapsed}");
        // Two requests, each late by less than one coarse step.
        assert!(elapsed <= u64::from(u32::MAX) + 2 * u64::from(step));
        assert_eq!(context.stats().awaited, 2);
        assert_eq!(context.in_use(), 0);
    }
}

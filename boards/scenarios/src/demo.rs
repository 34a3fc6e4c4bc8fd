//! The demo every QEMU board runs: [`demo`].

use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Kinds, Locks, Notify, Outcome};
use aiopoll_cortex_m::{reap_blocking, IrqEvent};

use crate::Timer;

/// Submits a request for IN on `timer`, logging why when it is refused.
fn submit<const N: usize, L: Locks, H: Notify, K: Kinds>(
    context: Pin<&Context<'static, N, L, 1, H, K>>,
    timer: &'static IrqEvent<L::Queue>,
    user_data: u64,
) -> Option<aiopoll::Handle>
where
    L::Queue: Send + Sync,
{
    match context.submit(timer, Events::IN, user_data) {
        Ok(handle) => Some(handle),
        Err(error) => {
            defmt::error!("submit of request {} failed: {}", user_data, error);
            None
        }
    }
}

/// The demo, in three steps; returns whether every request completed
/// exactly once and no slot is left in use.
///
/// 1. Requests completed by the timer interrupt (`T`, every `slow_period`
///    ticks, raising `timer`), reaped with `reap_blocking`.
/// 2. A cancel: the timer is stopped, so the request waits until cancelled.
/// 3. A deferred completion: the timer every `fast_period` ticks, and
///    thread mode reaping without sleeping, so that it holds the context
///    lock often, until one interrupt lands while it does. (Sleeping in
///    `reap_blocking` would wake with each tick at the same instruction:
///    under `-icount` no tick would ever land inside the lock; and each
///    try starts after a pause of its own length, for the same reason.)
///
/// The board's example sets up the interrupts first: the timer's handler
/// acknowledges the timer and calls `timer.raise(Events::IN)`; the
/// context's deferred-work interrupt calls `Context::run_deferred`; the
/// timer is more urgent than the context's ceiling, so that it can land
/// inside the context lock.
pub fn demo<T: Timer, const N: usize, L: Locks, H: Notify, K: Kinds>(
    context: Pin<&Context<'static, N, L, 1, H, K>>,
    timer: &'static IrqEvent<L::Queue>,
    slow_period: u32,
    fast_period: u32,
) -> bool
where
    L::Queue: Send + Sync,
{
    // 1. Requests completed by the timer interrupt.
    T::start(slow_period);
    let mut done = [Completion::EMPTY; 1];
    for user_data in 1..=3 {
        if submit(context, timer, user_data).is_none() {
            return false;
        }
        reap_blocking(&context, &mut done);
        defmt::info!(
            "request {} completed by the timer interrupt: {}",
            done[0].user_data,
            done[0].outcome
        );
        timer.take();
    }

    // 2. A cancel: the timer is stopped, so the request waits until
    // cancelled.
    T::stop();
    timer.take();
    let Some(handle) = submit(context, timer, 10) else {
        return false;
    };
    defmt::info!("request 10 waits; cancel says {}", context.cancel(handle));
    reap_blocking(&context, &mut done);
    defmt::info!(
        "request {} completed: {}",
        done[0].user_data,
        done[0].outcome
    );

    // 3. A deferred completion.
    let before = context.stats().completed_by_deferred_work;
    T::start(fast_period);
    let mut user_data = 100;
    while context.stats().completed_by_deferred_work == before {
        if user_data == 10_100 {
            T::stop();
            defmt::error!("no interrupt landed inside the context lock in 10,000 tries");
            return false;
        }
        // A pause of a different length before each try (0 to 4,092
        // cycles, in steps of 7), so that the ticks land at a different
        // point of the submit each time: with a loop of fixed length they
        // could meet every submit at the same instruction, never one
        // inside the lock. The flag is cleared right before the submit:
        // a tick since the last completion would make the request ready
        // at submit (on netduinoplus2, once submit got shorter, one
        // always came, and all 10,000 tries completed at submit).
        cortex_m::asm::delay((user_data as u32).wrapping_mul(7) % 4093);
        timer.take();
        if submit(context, timer, user_data).is_none() {
            T::stop();
            return false;
        }
        while context.reap(&mut done) == 0 {}
        if done[0].outcome != Outcome::Ready(Events::IN) {
            T::stop();
            defmt::error!("request {} completed: {}", user_data, done[0].outcome);
            return false;
        }
        user_data += 1;
    }
    T::stop();
    defmt::info!(
        "an interrupt found the context locked: deferred work completed its request, once ({} deferred completion)",
        context.stats().completed_by_deferred_work - before
    );

    let stats = context.stats();
    let accounted = stats.reaped == stats.submitted && context.in_use() == 0;
    defmt::info!(
        "every request completed exactly once, no slot in use: {}",
        accounted
    );
    accounted
}

//! Thread mode sleeping until completions arrive: one reap-or-sleep loop
//! ([`reap_or_sleep`]), and the two ways of sleeping in it (`WFI` for
//! [`reap_blocking`], `WFE` for [`reap_across_cores`]).

use aiopoll::{Completion, Context, Kinds, Locks, Notify};

/// The loop behind every blocking reap: reaps into `out`; while nothing
/// came, calls `sleep` and reaps again. Returns how many completions it
/// took: at least one, or 0 at once when `out` is empty (nothing could be
/// taken, so waiting would never end).
///
/// `sleep` is called with the context so that it can look once more before
/// it sleeps; it must return when an interrupt (or another core) may have
/// completed something. Every reap runs pending deferred work first, so
/// deferred completions are never stranded while the loop waits.
pub(crate) fn reap_or_sleep<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds>(
    context: &Context<'_, N, L, W, H, K>,
    out: &mut [Completion],
    mut sleep: impl FnMut(&Context<'_, N, L, W, H, K>),
) -> usize {
    if out.is_empty() {
        return 0;
    }
    loop {
        let count = context.reap(out);
        if count > 0 {
            return count;
        }
        sleep(context);
    }
}

/// Sleeps in `WFI` unless a completion or deferred work is already there.
///
/// The check runs with interrupts masked, and `WFI` still wakes for an
/// interrupt that became pending meanwhile (its handler runs as soon as
/// the mask is lifted): a completion that lands after the reap's last look
/// is never slept through.
fn sleep_until_interrupt<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds>(
    context: &Context<'_, N, L, W, H, K>,
) {
    cortex_m::interrupt::free(|_| {
        if context.completions() == 0 && !context.has_deferred_work() {
            cortex_m::asm::wfi();
        }
    });
}

/// Reaps at least one completion into `out`, sleeping with `WFI` while there
/// is none; returns how many it took (0 only when `out` is empty).
///
/// No busy polling and no lost wakeup: the last check before `WFI` runs with
/// interrupts masked, and `WFI` still wakes for an interrupt that became
/// pending meanwhile; the handler runs as soon as the mask is lifted.
/// Deferred work that is pending is run by the reap itself.
pub fn reap_blocking<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds>(
    context: &Context<'_, N, L, W, H, K>,
    out: &mut [Completion],
) -> usize {
    reap_or_sleep(context, out, sleep_until_interrupt)
}

/// Reaps at least one completion into `out`, sleeping with `WFE` while there
/// is none; returns how many it took (0 only when `out` is empty). For a
/// reaper whose requests another core completes: [`reap_blocking`] sleeps in
/// `WFI`, which only an interrupt of this core ends.
///
/// Needs a context whose [`Notify`] hook signals `SEV` on every completion,
/// as [`PendSv`](crate::PendSv) and [`PendInterrupt`](crate::PendInterrupt)
/// do: `SEV` sets the event register of every core, this one included, so a
/// completion that lands after the last check and before `WFE` makes `WFE`
/// return at once, and no wakeup is lost. (With the `()` hook nothing
/// signals, and this may sleep until some other event.) Interrupts of this
/// core end `WFE` too; pending deferred work is run by the reap itself.
pub fn reap_across_cores<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds>(
    context: &Context<'_, N, L, W, H, K>,
    out: &mut [Completion],
) -> usize {
    reap_or_sleep(context, out, |_| cortex_m::asm::wfe())
}

/// The loop with the interrupt played by the test: each sleep is where an
/// interrupt handler (or another core) would run. (`WFI`, `WFE` and the
/// masking around them only exist on a Cortex-M core; `reap_blocking` and
/// `reap_across_cores` are this loop with one of them as `sleep`.)
#[cfg(test)]
mod tests {
    use core::pin::pin;

    use aiopoll::{Events, Outcome};

    use super::*;
    use crate::{CortexMLocks, IrqEvent};

    type TestContext<'s> = Context<'s, 4, CortexMLocks>;

    #[test]
    fn sleeps_until_a_completion_arrives_then_returns_it() {
        let event = IrqEvent::new();
        let context = pin!(TestContext::new());
        context.as_ref().submit(&event, Events::IN, 5).unwrap();
        let mut out = [Completion::EMPTY; 2];
        let mut sleeps = 0;
        let count = reap_or_sleep(&context, &mut out, |_| {
            sleeps += 1;
            // Two interrupts that change nothing, then one that raises.
            if sleeps == 3 {
                event.raise(Events::IN);
            }
        });
        assert_eq!((count, sleeps), (1, 3));
        assert_eq!(
            (out[0].user_data, out[0].outcome),
            (5, Outcome::Ready(Events::IN))
        );
        assert_eq!(context.in_use(), 0);
    }

    #[test]
    fn never_sleeps_while_a_completion_is_waiting() {
        let event = IrqEvent::new();
        let context = pin!(TestContext::new());
        context.as_ref().submit(&event, Events::IN, 1).unwrap();
        event.raise(Events::IN);
        let mut out = [Completion::EMPTY; 1];
        let count = reap_or_sleep(&context, &mut out, |_| panic!("slept"));
        assert_eq!(count, 1);
    }

    #[test]
    fn deferred_work_left_by_a_sleep_is_run_by_the_next_reap() {
        let event = IrqEvent::new();
        let context = pin!(TestContext::new());
        context.as_ref().submit(&event, Events::IN, 9).unwrap();
        let mut out = [Completion::EMPTY; 1];
        let mut sleeps = 0;
        // The interrupt wakes unkeyed: the completion is deferred, and no
        // deferred-work interrupt runs it (none is wired here).
        let count = reap_or_sleep(&context, &mut out, |context| {
            sleeps += 1;
            event.raise_unkeyed(Events::IN);
            assert!(context.has_deferred_work());
        });
        assert_eq!((count, sleeps), (1, 1));
        assert_eq!(out[0].user_data, 9);
        assert_eq!(context.stats().completed_by_deferred_work, 1);
    }

    #[test]
    fn a_queued_one_shot_context_sleeps_and_reaps_the_same() {
        // A firmware that names `QueuedOneShot` for its flash uses the same
        // blocking reap, deferred completions included.
        let event = IrqEvent::new();
        let context = pin!(Context::<'_, 4, CortexMLocks, 2, (), aiopoll::QueuedOneShot>::new());
        context.as_ref().submit(&event, Events::IN, 3).unwrap();
        let mut out = [Completion::EMPTY; 1];
        let mut sleeps = 0;
        let count = reap_or_sleep(&context, &mut out, |_| {
            sleeps += 1;
            event.raise_unkeyed(Events::IN);
        });
        assert_eq!((count, sleeps), (1, 1));
        assert_eq!(
            (out[0].user_data, out[0].outcome),
            (3, Outcome::Ready(Events::IN))
        );
        assert_eq!(context.stats().completed_by_deferred_work, 1);
    }

    #[test]
    fn into_nothing_returns_zero_without_sleeping() {
        let event = IrqEvent::new();
        let context = pin!(TestContext::new());
        context.as_ref().submit(&event, Events::IN, 1).unwrap();
        assert_eq!(reap_or_sleep(&context, &mut [], |_| panic!("slept")), 0);
        event.raise(Events::IN);
        assert_eq!(reap_or_sleep(&context, &mut [], |_| panic!("slept")), 0);
        assert_eq!(context.completions(), 1);
    }
}

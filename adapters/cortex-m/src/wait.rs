//! Thread mode sleeping until completions arrive.

use aiopoll::{Completion, Context, Locks, Notify};

/// Reaps at least one completion into `out`, sleeping with `WFI` while there
/// is none; returns how many it took (0 only when `out` is empty).
///
/// No busy polling and no lost wakeup: the last check before `WFI` runs with
/// interrupts masked, and `WFI` still wakes for an interrupt that became
/// pending meanwhile; the handler runs as soon as the mask is lifted.
/// Deferred work that is pending is run by the reap itself.
pub fn reap_blocking<const N: usize, L: Locks, const W: usize, H: Notify>(
    context: &Context<'_, N, L, W, H>,
    out: &mut [Completion],
) -> usize {
    if out.is_empty() {
        return 0;
    }
    loop {
        let count = context.reap(out);
        if count > 0 {
            return count;
        }
        cortex_m::interrupt::free(|_| {
            if context.completions() == 0 && !context.has_deferred_work() {
                cortex_m::asm::wfi();
            }
        });
    }
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
pub fn reap_across_cores<const N: usize, L: Locks, const W: usize, H: Notify>(
    context: &Context<'_, N, L, W, H>,
    out: &mut [Completion],
) -> usize {
    if out.is_empty() {
        return 0;
    }
    loop {
        let count = context.reap(out);
        if count > 0 {
            return count;
        }
        cortex_m::asm::wfe();
    }
}

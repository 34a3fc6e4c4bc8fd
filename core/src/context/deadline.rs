//! Deadlines (io_uring's linked timeout): a request submitted with one
//! completes with [`Outcome::TimedOut`] if nothing it asked for is ready by
//! then (T15). The core has no clock: deadlines are in the adapter's ticks,
//! and the adapter calls [`Context::expire`] with the time now.

use super::*;
use crate::kinds::TakesDeadlines;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// [`submit`](Self::submit) with a deadline, in the ticks of the clock
    /// the adapter passes to [`expire`](Self::expire): if nothing asked for
    /// is ready by `deadline`, the request completes with
    /// [`Outcome::TimedOut`], exactly once against readiness, cancel and
    /// teardown. The hooks' [`Notify::deadline_armed`] learns of it, so the
    /// adapter can make `expire` run in time.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_with_deadline<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &'s S,
        events: Events,
        user_data: u64,
        deadline: u64,
    ) -> Result<Handle, SubmitError>
    where
        K: TakesDeadlines,
    {
        // SAFETY: `source` and every queue it registers on are borrowed for
        // `'s`, which outlives this context.
        unsafe {
            self.submit_unchecked_with(
                source,
                events,
                user_data,
                RequestOptions::ONE_SHOT.deadline(deadline),
                |_| {},
            )
        }
    }

    /// Completes with [`Outcome::TimedOut`] every pending request whose
    /// deadline is `now` or earlier (T15), and returns how many. A request
    /// whose wakeup came first (even one handed to deferred work) completes
    /// with that instead.
    ///
    /// Takes the context lock (it may wait for it): call it from thread
    /// mode, a timer thread, or the adapter's deferred-work handler, not
    /// from an interrupt that may preempt the lock's holder.
    pub fn expire(&self, now: u64) -> usize {
        if !K::DEADLINES {
            // Nothing can have a deadline.
            return 0;
        }
        self.end_where(|_, deadline| deadline <= now, Outcome::TimedOut)
    }

    /// The earliest deadline of a pending request, if any (for the adapter
    /// to program its timer).
    pub fn next_deadline(&self) -> Option<u64> {
        if !K::DEADLINES {
            // Armed slots keep no deadline.
            return None;
        }
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| {
            self.with_deadlines(&locked, |deadlines| {
                (0..N)
                    .filter(|&slot| state.slots[slot].phase == Phase::Armed)
                    .map(|slot| deadlines.get(slot))
                    .filter(|&deadline| deadline != NO_DEADLINE)
                    .min()
            })
        })
    }
}

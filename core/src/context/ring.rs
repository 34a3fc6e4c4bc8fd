//! The completion queue: completing a request (the end of T3, T5, T7, T9,
//! T10) and reaping it (T11).

use super::*;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Moves up to `out.len()` completions, oldest first, into `out`, and
    /// returns how many. Never blocks on anything but the context lock.
    /// Runs pending deferred work first, so completions that a wakeup had to
    /// defer are never stranded while someone reaps.
    pub fn reap(&self, out: &mut [Completion]) -> usize {
        self.reap_with(out, |_| {})
    }

    /// [`reap`](Self::reap), calling `reaped` with each completion while
    /// the context lock is still held: for an adapter that keeps something
    /// per request (a source kept alive, say) and must let go of it before
    /// the request's slot can be reused. `reaped` must not call into this
    /// context (it would deadlock) and should not block. If it panics, the
    /// completion it was given counts as reaped (its slot is free again),
    /// and the completions not taken yet stay queued.
    pub fn reap_with(&self, out: &mut [Completion], mut reaped: impl FnMut(&Completion)) -> usize {
        loop {
            // Before the guard: tasks whose awaited requests the deferred
            // work completes are woken once the lock is released.
            let mut batch = TaskWakers::<K>::new();
            let locked = Locked::lock(&self.lock);
            if self.run_deferred_locked(&locked, &mut batch).more {
                // Out of room for wakers: wake them unlocked, then go on.
                continue;
            }
            let (count, freed) = self.with_state(&locked, |state| {
                let (mut count, mut freed) = (0, 0);
                let context = state.id;
                for place in out.iter_mut() {
                    let Some(index) = state.pop_completed() else {
                        break;
                    };
                    let slot = index as u16;
                    let record = &mut state.slots[index];
                    let handle = Handle {
                        context,
                        slot,
                        generation: record.generation,
                    };
                    count += 1;
                    if K::MULTISHOT && !record.posted.is_empty() {
                        // A multishot request's readiness: it stays armed
                        // (or, if it has ended since, its final completion
                        // follows: back in the queue, where this one was).
                        transition!("T16 multishot readiness reaped", index);
                        *place = Completion {
                            // SAFETY: only queued requests reach the
                            // completion queue (`finish`, `post`).
                            user_data: unsafe { record.queued_user_data() },
                            outcome: Outcome::Ready(record.posted),
                            handle,
                            more: true,
                        };
                        record.posted = Events::empty();
                        if record.phase == Phase::Completed {
                            // Back in the queue, in the place just freed.
                            state.push_completed(index);
                        }
                        // After the bookkeeping: if `reaped` panics, this
                        // completion counts as reaped and nothing else is
                        // lost (its final completion is queued already).
                        reaped(place);
                        continue;
                    }
                    debug_assert_eq!(record.phase, Phase::Completed);
                    *place = Completion {
                        // SAFETY: as above.
                        user_data: unsafe { record.queued_user_data() },
                        outcome: record.outcome,
                        handle,
                        more: false,
                    };
                    // T11 reap: Completed → Free.
                    transition!("T11 reap", index);
                    state.release(index);
                    freed += 1;
                    // The slot is free, but nobody can take it before the
                    // lock is released: `reaped` still runs before it can
                    // be reused. If `reaped` panics, this completion counts
                    // as reaped and its slot is not lost.
                    reaped(place);
                }
                state.stats.reaped = state.stats.reaped.wrapping_add(count as u32);
                (count, freed)
            });
            drop(locked);
            self.wake_slot_waiters(freed);
            return count;
        }
    }

    /// Completes `slot` with `outcome`: every entry leaves its queue, the
    /// wake word is reset, and the completion is delivered (see
    /// [`finish`](Self::finish), whose waker it returns). The caller holds
    /// the context lock and has checked the phase (`Polling` or `Armed`).
    #[must_use = "an awaited request's waker must be called (or dropped) after the lock is released"]
    pub(super) fn complete(
        &self,
        state: &mut State<'s, L::Queue, N>,
        slot: usize,
        outcome: Outcome,
    ) -> Option<Waker> {
        self.detach_all(slot);
        // No entry is linked any more, so no waker can reach this word.
        self.words[slot].store(0, Ordering::Relaxed);
        self.finish(state, slot, outcome)
    }

    /// The bookkeeping of a completion whose entries are all off their
    /// queues already. A queued request's completion goes into the
    /// completion queue; an awaited request's outcome stays in its slot,
    /// and its task's waker is returned, for the caller to call once it has
    /// released every lock.
    #[must_use = "an awaited request's waker must be called (or dropped) after the lock is released"]
    pub(super) fn finish(
        &self,
        state: &mut State<'s, L::Queue, N>,
        slot: usize,
        outcome: Outcome,
    ) -> Option<Waker> {
        let record = &mut state.slots[slot];
        record.phase = Phase::Completed;
        record.outcome = outcome;
        record.source = None;
        match Self::delivery_of(record) {
            Delivery::Queue => {
                // A multishot request with readiness still unreaped is in
                // the queue already: reaping that readiness puts it back
                // for this final completion.
                if !K::MULTISHOT || record.posted.is_empty() {
                    state.push_completed(slot);
                }
                self.hooks.completed();
                None
            }
            Delivery::Awaited => record.waker().and_then(Option::take),
        }
    }

    /// A multishot request's readiness (T16): it stays armed and on its
    /// queues; the readiness goes into the completion queue, or merges into
    /// the readiness already there and not reaped yet (one place per slot,
    /// so nothing is dropped and the queue never overflows). The caller
    /// holds the context lock and has checked the phase (`Armed`).
    pub(super) fn post(&self, state: &mut State<'s, L::Queue, N>, slot: usize, ready: Events) {
        transition!("T16 multishot readiness posted", slot);
        let record = &mut state.slots[slot];
        debug_assert!(record.multishot && record.phase == Phase::Armed);
        if record.posted.is_empty() {
            record.posted = ready;
            state.push_completed(slot);
            self.hooks.completed();
        } else {
            record.posted |= ready;
        }
    }
}

//! Deferred work: the requests that wakeups handed over (T6) are re-polled
//! under the context lock, then completed (T7) or left armed (T8).

use super::*;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Runs the deferred work that wakeups handed over: re-polls each
    /// request they woke and completes it (T7), or leaves it armed (T8).
    /// Returns how many requests it completed. The adapter calls this from
    /// wherever [`Notify::deferred_work`] points it (a pended low-priority
    /// interrupt, a worker thread); [`reap`](Self::reap) calls it too.
    pub fn run_deferred(&self) -> usize {
        let mut completed = 0;
        loop {
            if !self.deferred.load(Ordering::Acquire) {
                return completed;
            }
            // Before the guard: awaiting tasks are woken after the unlock.
            let mut batch = TaskWakers::<K>::new();
            let locked = Locked::lock(&self.lock);
            let pass = self.run_deferred_locked(&locked, &mut batch);
            drop(locked);
            batch.wake_all();
            completed += pass.completed;
            if !pass.more {
                return completed;
            }
        }
    }

    /// One pass of deferred work, under the context lock. It stops early,
    /// leaving the deferred flag raised, when `batch` has no room for
    /// another awaiting task's waker: the caller releases the lock, wakes
    /// the batch and runs another pass.
    pub(super) fn run_deferred_locked(
        &self,
        locked: &Locked<'_, L::Context>,
        batch: &mut WakeBatch,
    ) -> DeferredPass {
        // A plain load first: reaping without deferred work (the common
        // case) costs no read-modify-write.
        if !self.deferred.load(Ordering::Acquire) || !self.deferred.swap(false, Ordering::AcqRel) {
            return DeferredPass::default();
        }
        // If a source's `poll` unwinds, the slots not yet visited must not
        // be stranded: raise the flag again on the way out.
        let mut unwind = RaiseDeferredOnUnwind {
            deferred: &self.deferred,
            armed: true,
        };
        let mut completed = 0;
        for slot in 0..N {
            if !batch.has_room() {
                // Keeps the flag raised: the rest is the next pass's.
                return DeferredPass {
                    completed,
                    more: true,
                };
            }
            if self.run_deferred_slot(locked, slot, batch) != SlotWork::Idle {
                completed += 1;
            }
        }
        unwind.armed = false;
        DeferredPass {
            completed,
            more: false,
        }
    }

    /// The deferred work of one slot, under the context lock: if a wakeup
    /// handed the request over (`PENDING`), either complete it (T7) or leave
    /// it armed (T8), or post a multishot request's readiness (T16). An
    /// awaited request's waker goes into `batch`, which must have room.
    ///
    /// If the source's `poll` unwinds, the wakeup is not lost: `PENDING` is
    /// set again (and the caller's guard raises the deferred flag).
    #[inline(always)]
    pub(super) fn run_deferred_slot(
        &self,
        locked: &Locked<'_, L::Context>,
        slot: usize,
        batch: &mut WakeBatch,
    ) -> SlotWork {
        // The common case (nothing handed over) costs a load, not a call.
        if self.words[slot].load(Ordering::Relaxed) & PENDING == 0 {
            return SlotWork::Idle;
        }
        self.run_pending_slot(locked, slot, batch)
    }

    /// [`run_deferred_slot`](Self::run_deferred_slot) once `PENDING` was
    /// seen set.
    #[inline(never)]
    fn run_pending_slot(
        &self,
        locked: &Locked<'_, L::Context>,
        slot: usize,
        batch: &mut WakeBatch,
    ) -> SlotWork {
        // Clear the bits *before* re-polling: a wakeup from here on sets
        // PENDING again and is handled by the next run. (The events stay.)
        let word = self.words[slot].fetch_and(EVENTS, Ordering::AcqRel);
        if word & PENDING == 0 {
            return SlotWork::Idle;
        }
        let events = word_events(word);
        let armed = self.with_state(locked, |state| {
            let record = &state.slots[slot];
            // Completed by cancel, an inline wakeup or submit since:
            // nothing left to do.
            (record.phase == Phase::Armed).then_some(record.source)
        });
        let Some(source) = armed else {
            return SlotWork::Idle;
        };
        let outcome = if word & GONE != 0 {
            Some(Outcome::SourceGone)
        } else {
            let mut unwind = RestoreWordOnUnwind {
                word: &self.words[slot],
                bits: word & !EVENTS,
                armed: true,
            };
            let ready = source.map_or(Events::empty(), |source| {
                source.poll(&mut PollTable::rechecking(events))
            }) & events;
            unwind.armed = false;
            (!ready.is_empty()).then_some(Outcome::Ready(ready))
        };
        self.with_state(locked, |state| match outcome {
            Some(Outcome::Ready(ready)) if Self::is_multishot(&state.slots[slot]) => {
                // T16: a multishot request posts its readiness and stays
                // armed.
                self.post(state, slot, ready);
                SlotWork::Posted
            }
            Some(outcome) => {
                // T7 deferred work completes.
                transition!("T7 deferred work completes", slot);
                state.stats.completed_by_deferred_work =
                    state.stats.completed_by_deferred_work.wrapping_add(1);
                if let Some(waker) = self.complete(state, slot, outcome) {
                    batch.push(waker);
                }
                SlotWork::Completed
            }
            None => {
                // T8 deferred work re-arms: the request never left its
                // queues.
                transition!("T8 deferred work re-arms", slot);
                state.stats.spurious = state.stats.spurious.wrapping_add(1);
                SlotWork::Idle
            }
        })
    }
}

/// Keeps deferred work from being stranded if a source's `poll` unwinds.
struct RaiseDeferredOnUnwind<'a> {
    deferred: &'a AtomicBool,
    armed: bool,
}

impl Drop for RaiseDeferredOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.deferred.swap(true, Ordering::AcqRel);
        }
    }
}

/// Gives a slot's wake word back its bits if the source's `poll` unwinds
/// during deferred work, so the wakeup it stood for is handled by the next
/// run instead of being lost.
struct RestoreWordOnUnwind<'a> {
    word: &'a AtomicU32,
    bits: u32,
    armed: bool,
}

impl Drop for RestoreWordOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.word.fetch_or(self.bits, Ordering::AcqRel);
        }
    }
}

/// What the deferred work of one slot did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotWork {
    /// Nothing was pending, or the re-poll found nothing ready (T8).
    Idle,
    /// A multishot request posted its readiness and stays armed (T16).
    Posted,
    /// The request completed (T7).
    Completed,
}

/// What one pass of deferred work did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DeferredPass {
    /// Requests it completed (T7).
    pub(super) completed: usize,
    /// It stopped early for want of room for wakers: run another pass.
    pub(super) more: bool,
}

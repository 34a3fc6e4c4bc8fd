//! The context's side of awaited requests ([`Request`](crate::Request)):
//! submitting a request whose completion goes to its future (T1 to T4 with
//! `Delivery::Awaited`), checking on it, taking its outcome (T13), and
//! giving it up when the future is dropped (T9, then T13).
//!
//! Every task waker is cloned before the context lock is taken or called
//! and dropped after it is released, never under it.

use core::task::Poll;

use super::slot_waiters::WaiterState;
use super::*;

/// Where an awaited request stands after its future tried to submit it.
pub(crate) enum Awaiting {
    /// Submitted and pending: its task is woken when it completes.
    Pending {
        /// The slot it holds.
        slot: u16,
        /// The slot's generation at submit.
        generation: u32,
    },
    /// Complete at submit (T3); the outcome is taken and the slot free.
    Ready(Outcome),
    /// Every slot is in use: the future's node waits for one.
    WaitingForSlot,
}

/// [`Context::settle_awaited`]'s answer.
struct Settled {
    result: Result<Awaiting, SubmitError>,
    /// A task waker the settling replaced: dropped once the lock is
    /// released.
    stale: Option<Waker>,
    /// Slots freed for futures that wait for one (0 or 1).
    freed: usize,
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Submits an awaited request for `events` on `source`, whose task is
    /// `waker`, with `deadline` (`NO_DEADLINE`: none); when every slot is in use, links `waiter` to be woken when
    /// one frees. A `waiter` that was linked or notified before
    /// (`was_waiting`: the future found the context full earlier) is settled:
    /// it keeps its place when the context is still full, leaves the list
    /// otherwise, and a notification it got but could not use (the submit
    /// was refused) passes to the next waiter.
    ///
    /// # Safety
    /// As [`submit_unchecked`](Self::submit_unchecked) for `source`; and
    /// `waiter` is pinned in a future that gives it up (through
    /// [`abandon_slot_wait`](Self::abandon_slot_wait)) before it goes, and
    /// is linked on no other context's list.
    #[inline]
    pub(crate) unsafe fn submit_awaited<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &S,
        events: Events,
        waiter: &SlotWaiter,
        was_waiting: bool,
        deadline: u64,
        waker: &Waker,
    ) -> Result<Awaiting, SubmitError> {
        let this = self.get_ref();
        let events = checked_events(events)?;
        // SAFETY: the caller promises `source` outlives its request; the slot
        // drops the reference when the request completes or the context goes.
        let kept: &'s dyn Source<L::Queue> =
            unsafe { core::mem::transmute(source.as_dyn_source()) };
        // Cloned before the lock; dropped after it, unless the slot took it.
        let mut task = Some(waker.clone());
        let settled = {
            let locked = Locked::lock(&this.lock);
            let submitted = this.submit_locked(
                &locked,
                source,
                NewRequest {
                    kept,
                    events,
                    user_data: 0,
                    delivery: Delivery::Awaited,
                    multishot: false,
                    // `Request::deadline` keeps it below NO_DEADLINE.
                    deadline,
                },
                &mut task,
            );
            match submitted {
                // The usual answer, kept inline: armed, by a future that
                // never waited for a slot (nothing to settle).
                Ok(Submitted {
                    handle,
                    completed: false,
                }) if !was_waiting => Settled {
                    result: Ok(Awaiting::Pending {
                        slot: handle.slot,
                        generation: handle.generation,
                    }),
                    stale: None,
                    freed: 0,
                },
                // SAFETY: we hold the lock; the caller's contract for
                // `waiter`.
                other => unsafe {
                    this.settle_awaited(&locked, other, waiter, was_waiting, &mut task)
                },
            }
        };
        drop(settled.stale);
        drop(task);
        this.wake_slot_waiters(settled.freed);
        settled.result
    }

    /// What an awaited submit comes to, once `submit_locked` answered: the
    /// future's `waiter` linked (every slot in use) or settled, and the
    /// outcome taken if the request completed at submit. Not generic over
    /// the source, so a firmware that awaits requests on several source
    /// types has one copy of it.
    ///
    /// # Safety
    /// The caller holds the context lock (`locked`); `waiter` as for
    /// [`submit_awaited`](Self::submit_awaited).
    unsafe fn settle_awaited(
        &self,
        locked: &Locked<'_, L::Context>,
        submitted: Result<Submitted, SubmitError>,
        waiter: &SlotWaiter,
        was_waiting: bool,
        task: &mut Option<Waker>,
    ) -> Settled {
        let mut stale = None;
        let mut freed = 0;
        let result = match submitted {
            Err(SubmitError::Busy) => {
                if let Some(task) = task.take() {
                    // SAFETY: we hold the lock; the caller's contract for
                    // `waiter`.
                    stale = unsafe { self.link_slot_waiter(locked, waiter, task) };
                }
                Ok(Awaiting::WaitingForSlot)
            }
            other => {
                // A future that never waited has nothing to settle.
                let before = if was_waiting {
                    // SAFETY: we hold the lock; `waiter` is on this list or
                    // on none (the caller's contract).
                    let (before, old) = unsafe { self.unlink_slot_waiter(locked, waiter) };
                    stale = old;
                    before
                } else {
                    WaiterState::Idle
                };
                match other {
                    Ok(Submitted {
                        handle,
                        completed: false,
                    }) => Ok(Awaiting::Pending {
                        slot: handle.slot,
                        generation: handle.generation,
                    }),
                    Ok(Submitted {
                        handle,
                        completed: true,
                    }) => {
                        freed = 1;
                        Ok(Awaiting::Ready(
                            self.take_outcome(locked, usize::from(handle.slot)),
                        ))
                    }
                    Err(error) => {
                        // A slot freed for this future that it cannot use
                        // goes to the next waiter.
                        if before == WaiterState::Notified {
                            freed = 1;
                        }
                        Err(error)
                    }
                }
            }
        };
        Settled {
            result,
            stale,
            freed,
        }
    }

    /// Checks on a pending awaited request: `Ready` with its outcome (taken,
    /// T13, the slot free again), or `Pending` with `waker` as the task to
    /// wake.
    ///
    /// A task waker that changed is cloned with the lock released (a clone
    /// may run any code, even code that calls back into this context), then
    /// stored under the lock in a second pass, which finds the request
    /// completed meanwhile or still waiting.
    #[inline]
    pub(crate) fn poll_awaited(&self, slot: u16, generation: u32, waker: &Waker) -> Poll<Outcome> {
        let slot = usize::from(slot);
        // Declared before every guard: a clone that was not used, and the
        // waker it replaced, drop after the lock is released.
        let mut fresh: Option<Waker> = None;
        let mut stale = None;
        let result = loop {
            let mut needs_clone = false;
            let result = {
                let locked = Locked::lock(&self.lock);
                let phase = self.with_state(&locked, |state| {
                    let record = &mut state.slots[slot];
                    // The future owns the slot until it takes the outcome,
                    // so the generation cannot have moved on.
                    debug_assert_eq!(record.generation, generation);
                    if record.generation != generation {
                        return None;
                    }
                    if record.phase == Phase::Armed {
                        if let Some(slot_waker) = record.waker() {
                            if !slot_waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                                match fresh.take() {
                                    Some(clone) => stale = slot_waker.replace(clone),
                                    None => needs_clone = true,
                                }
                            }
                        }
                    }
                    Some(record.phase)
                });
                match phase {
                    Some(Phase::Completed) => Poll::Ready(self.take_outcome(&locked, slot)),
                    Some(_) => Poll::Pending,
                    // Unreachable by the above; a definite answer all the same.
                    None => Poll::Ready(Outcome::Cancelled),
                }
            };
            if !needs_clone {
                break result;
            }
            // Outside the lock; the second pass stores it.
            fresh = Some(waker.clone());
        };
        drop(stale);
        drop(fresh);
        if result.is_ready() {
            self.wake_slot_waiters(1);
        }
        result
    }

    /// The future of a submitted awaited request is dropped: a pending
    /// request is cancelled (T9; a wakeup that deferred before wins, as for
    /// [`cancel`](Self::cancel)), and either way its outcome is taken (T13)
    /// and the slot freed. Nobody is woken: the task is letting go.
    pub(crate) fn cancel_awaited(&self, slot: u16, generation: u32) {
        let slot = usize::from(slot);
        // Before the guard; forgotten (dropped unwoken) after the unlock.
        let mut batch = TaskWakers::<K>::new();
        // This future's own task waker, which T9 takes out of the slot:
        // dropped unwoken after the unlock, without a trip through `batch`.
        let mut own = None;
        let freed = {
            let locked = Locked::lock(&self.lock);
            let phase = self.with_state(&locked, |state| {
                let record = &state.slots[slot];
                (record.generation == generation).then_some(record.phase)
            });
            match phase {
                Some(Phase::Armed) => {
                    if self.run_deferred_slot(&locked, slot, &mut batch) != SlotWork::Completed {
                        self.with_state(&locked, |state| {
                            // T9 cancel.
                            transition!("T9 cancel", slot);
                            state.stats.cancelled = state.stats.cancelled.wrapping_add(1);
                            own = self.complete(state, slot, Outcome::Cancelled);
                        });
                    }
                    self.take_outcome(&locked, slot);
                    1
                }
                Some(Phase::Completed) => {
                    self.take_outcome(&locked, slot);
                    1
                }
                _ => 0,
            }
        };
        drop(own);
        batch.forget();
        self.wake_slot_waiters(freed);
    }

    /// The future of a request waiting for a slot is dropped: its node
    /// leaves the list, and a notification it got passes to the next
    /// waiter.
    ///
    /// # Safety
    /// `waiter` is linked on this context's list or on none.
    pub(crate) unsafe fn abandon_slot_wait(&self, waiter: &SlotWaiter) {
        let (before, stale) = {
            let locked = Locked::lock(&self.lock);
            // SAFETY: we hold the lock; the caller's contract.
            unsafe { self.unlink_slot_waiter(&locked, waiter) }
        };
        drop(stale);
        if before == WaiterState::Notified {
            self.wake_slot_waiters(1);
        }
    }

    /// T13 awaited request taken: `Completed → Free`, the outcome going to
    /// the future (not to the completion queue). The caller holds the lock,
    /// has checked the phase, and wakes a slot waiter once it has released
    /// the lock.
    fn take_outcome(&self, locked: &Locked<'_, L::Context>, slot: usize) -> Outcome {
        self.with_state(locked, |state| {
            transition!("T13 awaited request taken", slot);
            debug_assert_eq!(state.slots[slot].phase, Phase::Completed);
            let outcome = state.slots[slot].outcome;
            state.stats.awaited = state.stats.awaited.wrapping_add(1);
            state.release(slot);
            outcome
        })
    }
}

//! The requester's side: submit (T1 to T4) and cancel (T9).

use super::*;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify> Context<'s, N, L, W, H> {
    /// Submits a one-shot poll request: `source` is polled for `events`
    /// (plus ERR and HUP, always), and the request completes exactly once
    /// with the ready events ∩ those, or is cancelled, or finds its source
    /// gone. `user_data` comes back in the [`Completion`].
    ///
    /// If `source` is ready at once the request completes now (its completion
    /// is queued like any other) and the handle is returned all the same.
    ///
    /// # Errors
    /// - [`SubmitError::UnknownEvents`]: `events` has bits that are not poll
    ///   events.
    /// - [`SubmitError::Busy`]: every slot is in use; reap, then retry.
    /// - [`SubmitError::TooManyQueues`]: the source registered on more than
    ///   `W` queues.
    /// - [`SubmitError::NotPollable`]: the source registered on no queue and
    ///   nothing asked for is ready.
    ///
    /// A refused submit changes nothing.
    pub fn submit(
        self: Pin<&Self>,
        source: &'s dyn Source<L::Queue>,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        // SAFETY: `source` and every queue it registers on are borrowed for
        // `'s`, which outlives this context.
        unsafe { self.submit_unchecked(source, events, user_data) }
    }

    /// [`submit`](Self::submit) for adapters whose sources are kept alive by
    /// other means than a borrow (an `Arc` held beside the request, say).
    ///
    /// # Safety
    /// `source`, and every [`WaitQueue`] it registers on, stay alive and in
    /// place until the request's completion has been reaped or the context
    /// has been dropped. (A queue may be closed or dropped earlier only if
    /// dropping it closes it, which [`WaitQueue`]'s `Drop` does; the source
    /// itself may not go.)
    pub unsafe fn submit_unchecked(
        self: Pin<&Self>,
        source: &dyn Source<L::Queue>,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        let this = self.get_ref();
        let events = checked_events(events)?;
        // SAFETY: the caller promises `source` outlives its request; the slot
        // drops the reference when the request is reaped or the context goes.
        let source: &'s dyn Source<L::Queue> = unsafe { core::mem::transmute(source) };
        let locked = Locked::lock(&this.lock);
        let submitted = this.submit_locked(
            &locked,
            source,
            events,
            user_data,
            Delivery::Queue,
            &mut None,
        )?;
        Ok(submitted.handle)
    }

    /// T1 to T4 under the context lock, for a request whose completion goes
    /// to `delivery`. An awaited request's task waker is taken out of
    /// `waker` when the request arms (T2); otherwise it is left there, for
    /// the caller to drop once the lock is released.
    pub(super) fn submit_locked(
        &self,
        locked: &Locked<'_, L::Context>,
        source: &'s dyn Source<L::Queue>,
        events: Events,
        user_data: u64,
        delivery: Delivery,
        waker: &mut Option<Waker>,
    ) -> Result<Submitted, SubmitError> {
        let this = self;
        // T1 submit: Free → Polling.
        let slot = this
            .with_state(locked, |state| {
                let slot = state.allocate()?;
                let record = &mut state.slots[slot];
                record.phase = Phase::Polling;
                record.user_data = user_data;
                record.events = events;
                record.source = Some(source);
                record.delivery = delivery;
                Some(slot)
            })
            .ok_or(SubmitError::Busy)?;
        transition!("T1 submit", slot);
        debug_assert_eq!(this.words[slot].load(Ordering::Relaxed), 0);

        // If `poll` unwinds, T4 undoes everything before the lock is released.
        let mut unwind = UndoSubmit {
            context: this,
            locked,
            slot,
            armed: true,
        };
        let mut registration = Registration {
            context: this,
            slot: slot as u16,
            events,
            queues: [core::ptr::null_mut(); W],
            registered: 0,
            overflow: false,
            closed: false,
        };
        let ready = source.poll(&mut PollTable::registering(&mut registration, events)) & events;
        unwind.armed = false;
        let Registration {
            registered,
            overflow,
            closed,
            ..
        } = registration;

        this.with_state(locked, |state| {
            if overflow {
                // T4 submit refused: too many queues.
                transition!("T4 submit refused", slot);
                this.detach_all(slot);
                this.words[slot].store(0, Ordering::Relaxed);
                state.release(slot);
                return Err(SubmitError::TooManyQueues { limit: W });
            }
            let outcome = if !ready.is_empty() {
                Some(Outcome::Ready(ready))
            } else if closed {
                Some(Outcome::SourceGone)
            } else if registered == 0 {
                // T4 submit refused: nothing to wait on, nothing ready.
                transition!("T4 submit refused", slot);
                state.release(slot);
                return Err(SubmitError::NotPollable);
            } else {
                None
            };
            let generation = state.slots[slot].generation;
            let context = state.id();
            state.stats.submitted = state.stats.submitted.wrapping_add(1);
            match outcome {
                Some(outcome) => {
                    // T3 submit completes ("steals" the request back).
                    transition!("T3 submit completes", slot);
                    state.stats.completed_at_submit =
                        state.stats.completed_at_submit.wrapping_add(1);
                    // An awaited request's waker is not in the slot yet:
                    // its future takes the outcome at once.
                    let no_waker = this.complete(state, slot, outcome);
                    debug_assert!(no_waker.is_none());
                }
                None => {
                    // T2 submit arms. If a wakeup during `poll` set
                    // PENDING, its deferred work owns the follow-up.
                    transition!("T2 submit arms", slot);
                    let record = &mut state.slots[slot];
                    record.phase = Phase::Armed;
                    if delivery == Delivery::Awaited {
                        // No lock-free reader yet: wakeups during `poll`
                        // could only defer, and deferred work needs the
                        // lock we hold.
                        record.waker = waker.take();
                    }
                }
            }
            Ok(Submitted {
                handle: Handle {
                    context,
                    slot: slot as u16,
                    generation,
                },
                completed: outcome.is_some(),
            })
        })
    }

    /// Cancels a pending request (Linux's `io_cancel`).
    ///
    /// `Ok(InProgress)`: the request was pending; it is now complete with
    /// [`Outcome::Cancelled`] and that completion is in the queue. A wakeup
    /// that got there first wins, and then cancel reports `NotFound`: also a
    /// wakeup that had to hand the request to deferred work (an unkeyed
    /// wakeup, a request on two queues, a wakeup that found the context
    /// lock held), because cancel runs that request's deferred work first.
    ///
    /// # Errors
    /// [`CancelError::NotFound`]: the request already completed (its
    /// completion is or was in the queue), was cancelled already, or the
    /// handle belongs to another context.
    pub fn cancel(&self, handle: Handle) -> Result<InProgress, CancelError> {
        let slot = usize::from(handle.slot);
        if slot >= N {
            return Err(CancelError::NotFound);
        }
        // A queued request has no waker: this batch stays empty.
        let mut batch = WakeBatch::new();
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| {
            if handle.context != state.id {
                return Err(CancelError::NotFound);
            }
            let record = &state.slots[slot];
            // An awaited request is cancelled by dropping its future.
            if record.generation != handle.generation
                || record.phase != Phase::Armed
                || record.delivery != Delivery::Queue
            {
                return Err(CancelError::NotFound);
            }
            Ok(())
        })?;
        // A wakeup that reached the request before this cancel took the lock
        // but had to defer wins: run its work now (T7 or T8), so the outcome
        // does not depend on when the deferred work would have run.
        if self.run_deferred_slot(&locked, slot, &mut batch) {
            return Err(CancelError::NotFound);
        }
        self.with_state(&locked, |state| {
            // T9 cancel.
            transition!("T9 cancel", slot);
            state.stats.cancelled = state.stats.cancelled.wrapping_add(1);
            let no_waker = self.complete(state, slot, Outcome::Cancelled);
            debug_assert!(no_waker.is_none());
            Ok(InProgress)
        })
    }
}

/// What [`Context::submit_locked`] accepted.
pub(super) struct Submitted {
    pub(super) handle: Handle,
    /// It completed at submit (T3).
    pub(super) completed: bool,
}

/// The events a request waits for, or why they are refused.
pub(super) fn checked_events(events: Events) -> Result<Events, SubmitError> {
    let unknown = events.unknown_bits();
    if unknown != 0 {
        return Err(SubmitError::UnknownEvents {
            unknown: u32::from(unknown),
        });
    }
    Ok(events | Events::ALWAYS)
}

/// Registers the request being submitted on the queues its source names.
struct Registration<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify> {
    context: &'c Context<'s, N, L, W, H>,
    slot: u16,
    events: Events,
    /// The distinct queues registered so far, linked or found closed; the
    /// entry of the same index is linked on the queue unless it was closed.
    queues: [*mut (); W],
    /// How many of `queues` are in use.
    registered: usize,
    /// The source asked for more than `W` queues.
    overflow: bool,
    /// The source registered on a closed queue.
    closed: bool,
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify> Registrar<'s, L::Queue>
    for Registration<'_, 's, N, L, W, H>
{
    fn register(&mut self, queue: &'s WaitQueue<L::Queue>) {
        let erased = queue as *const WaitQueue<L::Queue> as *mut ();
        // Registering twice on one queue is once (io_uring's double poll
        // does the same).
        if self.queues[..self.registered].contains(&erased) {
            return;
        }
        let index = self.registered;
        let Some(entry) = self.context.entries[usize::from(self.slot)].get(index) else {
            self.overflow = true;
            return;
        };
        self.queues[index] = erased;
        self.registered += 1;
        // SAFETY: the entry is unused (each index is used once per submit,
        // and a Free slot has no linked entry); we hold the context lock; the
        // queue lives for `'s`, and the context detaches the entry before
        // either goes.
        let attached =
            unsafe { queue.attach(entry, self.context.header(), self.slot, self.events) };
        if !attached {
            self.closed = true;
        }
    }
}

/// T4 when a source's `poll` unwinds: the slot goes back, no entry stays.
struct UndoSubmit<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify> {
    context: &'c Context<'s, N, L, W, H>,
    locked: &'c Locked<'c, L::Context>,
    slot: usize,
    armed: bool,
}

impl<const N: usize, L: Locks, const W: usize, H: Notify> Drop for UndoSubmit<'_, '_, N, L, W, H> {
    fn drop(&mut self) {
        if self.armed {
            // T4 submit refused: `poll` panicked. The context lock is still
            // held (its guard is dropped after this one).
            transition!("T4 submit refused", self.slot);
            self.context.detach_all(self.slot);
            self.context.words[self.slot].store(0, Ordering::Relaxed);
            self.context
                .with_state(self.locked, |state| state.release(self.slot));
        }
    }
}

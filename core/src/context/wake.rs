//! The wake function: what a wakeup does to one request, holding only the
//! wait queue's lock (T5 inline wakeup, T6 deferral, T10 close).

use super::*;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// T6 deferral: hand the request to deferred work. Called by a waker
    /// holding a queue lock on which the request is linked.
    #[inline(never)]
    pub(super) fn defer(&self, slot: usize, extra: u32) {
        transition!("T6 deferral", slot);
        let previous = self.words[slot].fetch_or(PENDING | extra, Ordering::AcqRel);
        self.deferrals.fetch_add(1, Ordering::Relaxed);
        if previous & PENDING == 0 {
            // A read-modify-write, like the runner's swap: loom 0.7 lets a
            // plain store be lost against a concurrent swap (see the
            // `loom_store_vs_swap` note in tests/loom.rs).
            self.deferred.swap(true, Ordering::AcqRel);
            self.hooks.deferred_work();
        }
    }

    /// Whether `entry` is the only linked entry of `slot`, an armed request
    /// that registered on `queues` queues. The caller holds the context
    /// lock (entries are only linked under it).
    #[inline(always)]
    pub(super) fn sole_link(&self, slot: usize, queues: u8, entry: *const WaitEntry) -> bool {
        // With one entry per request, or one queue registered (an armed
        // request's entries leave only by a close, T10), the linked entry
        // is it, without looking at the others.
        W == 1
            || queues == 1
            || self.entries[slot]
                .iter()
                .all(|other| core::ptr::eq(other, entry) || other.queue().is_null())
    }

    /// The slot whose entry `entry` is: its place in `entries` (Linux's
    /// `container_of`, without a slot number in the entry).
    ///
    /// # Safety
    /// `entry` points into this context's `entries`.
    #[inline(always)]
    unsafe fn slot_of(&self, entry: *const WaitEntry) -> usize {
        let base = self.entries.as_ptr() as *const WaitEntry;
        // Addresses only: both are in `entries` (the caller's contract), so
        // the difference is a whole number of entries.
        let slot = (entry.addr() - base.addr()) / (core::mem::size_of::<WaitEntry>() * W);
        // SAFETY: `entry` is in `entries` (the caller's contract), `N`
        // slots of `W` entries each, so its slot is below `N`. Told to the
        // compiler, the wake function's indexing by slot has no bounds
        // check, and so no panic on the interrupt path.
        unsafe { core::hint::assert_unchecked(slot < N) };
        slot
    }

    /// The wake function of this context type (see [`WaitQueue`]'s module
    /// docs): decides what a wakeup does to one request.
    ///
    /// # Safety
    /// As [`crate::wait_queue::WakeFn`]: `owner` is a live context of this
    /// type, `entry` is one of its entries, linked on `list`, whose queue
    /// lock the caller holds.
    pub(super) unsafe fn wake_entry(
        owner: *const ContextHeader,
        list: &mut List,
        entry: *const WaitEntry,
        wake: Wake,
        batch: &mut WakeBatch,
    ) -> Verdict {
        // SAFETY: `owner` points at a live `Self` (the caller's contract):
        // a context unlinks all its entries before it goes.
        let this = unsafe { &*(owner as *const Self) };
        // SAFETY: `entry` is one of this context's entries.
        let slot = unsafe { this.slot_of(entry) };
        // The events were stored before the entry was linked (submit, under
        // this queue's lock) or changed since by update; either way before
        // this wakeup took the queue lock, or it does not matter which it
        // sees (see T14).
        let word = this.words[slot].load(Ordering::Relaxed);
        let events = word_events(word);
        let outcome = match wake {
            // A keyed wakeup that misses the mask: stay queued (scenario 6).
            Wake::Key(key) if !key.intersects(events) => return Verdict::NotInterested,
            Wake::Key(_) if word & PENDING != 0 => {
                // T6: an earlier wakeup already handed the request to
                // deferred work, which re-polls the source after this
                // wakeup's change: this one joins it without trying the
                // context lock (whose holder is likely the runner of that
                // work, or a cancel about to run it).
                this.defer(slot, 0);
                return Verdict::Deferred;
            }
            Wake::Key(key) => Outcome::Ready(key & events),
            Wake::Repoll => {
                // T6: only a re-poll can tell, and a waker may not poll.
                this.defer(slot, 0);
                return Verdict::Deferred;
            }
            Wake::SourceGone => Outcome::SourceGone,
        };
        if let Some(locked) = Locked::<_, ContextInQueue<L>>::try_in_queue(&this.lock) {
            let verdict = this.with_state(&locked, |state| {
                // A linked entry's slot is Polling or Armed; Polling only
                // while submit holds the lock, which we now hold.
                let record = &state.slots[slot];
                if record.phase != Phase::Armed {
                    return None;
                }
                if let (true, Outcome::Ready(ready)) = (Self::is_multishot(record), outcome) {
                    // T16 multishot readiness posted inline: the request
                    // stays armed and on every queue. (Nothing to defer
                    // for a second queue: no entry leaves.)
                    this.post(state, slot, ready);
                    state.stats.completed_by_wakeup =
                        state.stats.completed_by_wakeup.wrapping_add(1);
                    return Some(Verdict::Posted);
                }
                if !this.sole_link(slot, record.queues, entry) {
                    return None;
                }
                // An awaited request's task is woken after the queue lock is
                // released; with no room left for its waker, defer.
                if Self::delivery_of(record) == Delivery::Awaited && !batch.has_room() {
                    return None;
                }
                transition!("T5 inline wakeup", slot);
                // T5 inline wakeup (T10 inline for a closing queue):
                // the entry leaves the queue before the context lock is
                // released, so the slot is free of wakers once Completed.
                // SAFETY: `entry` is linked on `list`, whose lock we hold.
                unsafe { list.remove(entry) };
                this.words[slot].store(0, Ordering::Relaxed);
                state.stats.completed_by_wakeup = state.stats.completed_by_wakeup.wrapping_add(1);
                if let Some(waker) = this.finish(state, slot, outcome) {
                    batch.push(waker);
                }
                Some(Verdict::Completed)
            });
            if let Some(verdict) = verdict {
                return verdict;
            }
        }
        // T6 deferral (T10 deferred for a closing queue: set GONE, then
        // leave the queue for good, clearing the queue pointer last).
        if wake == Wake::SourceGone {
            this.defer(slot, GONE);
            // SAFETY: `entry` is linked on `list`, whose lock we hold.
            unsafe { list.remove(entry) };
        } else {
            this.defer(slot, 0);
        }
        Verdict::Deferred
    }
}

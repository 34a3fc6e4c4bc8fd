//! Updating a pending request (io_uring's `IORING_POLL_UPDATE_EVENTS` and
//! `IORING_POLL_UPDATE_USER_DATA`): T14.

use super::*;

/// What [`Context::update`] did to a pending request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Updated {
    /// Updated; it still waits (for its new events, with its new user data).
    Waiting,
    /// Updated, and its new events were ready at once: it completed, and
    /// its completion (with the new user data) is in the queue. (A
    /// multishot request posts that readiness and stays [`Waiting`].)
    ///
    /// [`Waiting`]: Updated::Waiting
    Completed,
}

/// Why [`Context::update`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UpdateError {
    /// The handle names no pending request of this context: it already
    /// completed (its completion is or was in the queue), was cancelled,
    /// belongs to another context, or names an awaited request.
    NotFound,
    /// The new event mask has bits that are not poll events.
    UnknownEvents {
        /// The offending bits.
        unknown: u32,
    },
}

impl core::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpdateError::NotFound => f.write_str(
                "no pending request for this handle: it already completed or was cancelled (reap its completion), or it belongs to another context",
            ),
            UpdateError::UnknownEvents { unknown } => write!(
                f,
                "event mask has unknown bits {unknown:#x}: use only the poll events of `Events`"
            ),
        }
    }
}

impl core::error::Error for UpdateError {}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Changes the event mask (`events`) and/or the user data (`user_data`)
    /// of a pending queued request, atomically with respect to its wakeups
    /// (io_uring's poll update). `None` keeps what it was.
    ///
    /// A wakeup that reached the request before the update wins, as for
    /// [`cancel`](Self::cancel) (the update then finds nothing). A new mask
    /// is re-polled under the context lock, so readiness that a wakeup
    /// signalled for the new mask before the request waited for it is not
    /// lost: the request completes at once ([`Updated::Completed`]).
    ///
    /// # Errors
    /// - [`UpdateError::UnknownEvents`]: `events` has bits that are not poll
    ///   events; nothing changed.
    /// - [`UpdateError::NotFound`]: as [`CancelError::NotFound`].
    pub fn update(
        &self,
        handle: Handle,
        events: Option<Events>,
        user_data: Option<u64>,
    ) -> Result<Updated, UpdateError> {
        let events = match events.map(checked_events) {
            None => None,
            Some(Ok(events)) => Some(events),
            Some(Err(SubmitError::UnknownEvents { unknown })) => {
                return Err(UpdateError::UnknownEvents { unknown })
            }
            // `checked_events` refuses only unknown bits.
            Some(Err(_)) => return Err(UpdateError::NotFound),
        };
        let slot = usize::from(handle.slot);
        if slot >= N {
            return Err(UpdateError::NotFound);
        }
        // A queued request has no waker: this batch stays empty.
        let mut batch = TaskWakers::<K>::new();
        let locked = Locked::lock(&self.lock);
        let found = self.with_state(&locked, |state| {
            let record = &state.slots[slot];
            handle.context == state.id
                && record.generation == handle.generation
                && record.phase == Phase::Armed
                && Self::delivery_of(record) == Delivery::Queue
        });
        if !found || self.run_deferred_slot(&locked, slot, &mut batch) == SlotWork::Completed {
            return Err(UpdateError::NotFound);
        }
        // T14 update.
        transition!("T14 update", slot);
        let source = self.with_state(&locked, |state| {
            let record = &mut state.slots[slot];
            if let Some(user_data) = user_data {
                record.set_user_data(user_data);
            }
            record.source
        });
        let Some(events) = events else {
            return Ok(Updated::Waiting);
        };
        // Keyed wakeups match the mask in the wake word, which every entry's
        // wakeup reads: it changes in one step, keeping the bits wakers set
        // meanwhile.
        let _ = self.words[slot].fetch_update(Ordering::AcqRel, Ordering::Relaxed, |word| {
            Some(word & !EVENTS | u32::from(events.bits()))
        });
        // Then each queue's lock, taken and let go: a wakeup that read the
        // old mask under it (and missed) comes before the re-poll below, so
        // the re-poll sees the state that wakeup's source changed first; a
        // wakeup after reads the new mask.
        for entry in &self.entries[slot] {
            let queue = entry.queue();
            if !queue.is_null() {
                // SAFETY: as in `detach_all`: a non-null queue pointer was set
                // by `attach` from a queue that lives for `'s` (or under
                // `submit_unchecked`'s contract); we hold the context lock.
                unsafe { (*(queue as *const WaitQueue<L::Queue>)).handshake::<L>() };
            }
        }
        let ready = source.map_or(Events::empty(), |source| {
            source.poll(&mut PollTable::rechecking(events))
        }) & events;
        if ready.is_empty() {
            return Ok(Updated::Waiting);
        }
        Ok(self.with_state(&locked, |state| {
            if Self::is_multishot(&state.slots[slot]) {
                // T16: a multishot request posts it and keeps waiting.
                self.post(state, slot, ready);
                return Updated::Waiting;
            }
            // T14 update completes: the new mask is ready.
            transition!("T14 update completes", slot);
            let no_waker = self.complete(state, slot, Outcome::Ready(ready));
            debug_assert!(no_waker.is_none());
            Updated::Completed
        }))
    }
}

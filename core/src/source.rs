//! [`Source`]: anything a request can poll, and the [`PollTable`] through
//! which its `poll` registers the request on its wait queues.

use lock_api::RawMutex;

use crate::{Events, WaitQueue};

/// An event source: a device, a buffer, a timer, a file descriptor.
///
/// This is Linux's `file_operations::poll` contract. `poll` must
///
/// 1. call [`PollTable::wait`] for every wait queue on which the source will
///    signal a change of the events it reports, **before** reading its
///    state, and then
/// 2. return the events that are ready now (unknown bits are ignored).
///
/// Registering first and reading second is what makes the handshake
/// race-free: a change that happens after the read wakes the queue, and the
/// request is already on it; a change before the read is in the mask.
///
/// `poll` may be called again at any time to re-check readiness (after an
/// unkeyed wakeup, or from deferred work); then the table registers nothing.
/// `poll` runs with the context's lock held: it must not call into the
/// context it was called from, and must not block; it may wake its own
/// queues (that wakeup is deferred, never lost).
pub trait Source<Q: RawMutex = crate::SpinLock>: Sync {
    /// Registers on the wait queues through `table` (when it registers), then
    /// returns the events ready now.
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events;
}

/// Receives the wait queues a [`Source`] registers on during `poll` (Linux's
/// `poll_table`).
pub struct PollTable<'t, 's, Q: RawMutex> {
    registrar: Option<&'t mut dyn Registrar<'s, Q>>,
    requested: Events,
}

/// The context side of a poll table: links the request being submitted.
pub(crate) trait Registrar<'s, Q: RawMutex> {
    fn register(&mut self, queue: &'s WaitQueue<Q>);
}

impl<'t, 's, Q: RawMutex> PollTable<'t, 's, Q> {
    pub(crate) fn registering(registrar: &'t mut dyn Registrar<'s, Q>, requested: Events) -> Self {
        PollTable {
            registrar: Some(registrar),
            requested,
        }
    }

    /// A table that registers nothing, for re-checking the readiness of a
    /// request that asked for `requested`.
    pub(crate) fn rechecking(requested: Events) -> Self {
        PollTable {
            registrar: None,
            requested,
        }
    }

    /// A table that registers nothing: `source.poll(&mut
    /// PollTable::readiness_only())` just reads the source's readiness. Its
    /// [`requested`](Self::requested) events are all of them.
    pub fn readiness_only() -> Self {
        PollTable {
            registrar: None,
            requested: Events::all(),
        }
    }

    /// The events the request being polled waits for (what it asked for,
    /// plus ERR and HUP), or every event when the table only reads
    /// readiness: Linux's `poll_requested_events()`. A source backed by
    /// hardware or an OS poller may arm interest for just these; it must
    /// still report every event that is ready (the context masks them).
    pub fn requested(&self) -> Events {
        self.requested
    }

    /// Registers the request being submitted on `queue` (Linux's
    /// `poll_wait`). A no-op when the table only reads readiness, and when
    /// the request is already on `queue`.
    pub fn wait(&mut self, queue: &'s WaitQueue<Q>) {
        if let Some(registrar) = self.registrar.as_mut() {
            registrar.register(queue);
        }
    }

    /// Whether [`wait`](Self::wait) registers anything: a source may skip
    /// work that only matters when registering.
    pub fn is_registering(&self) -> bool {
        self.registrar.is_some()
    }
}

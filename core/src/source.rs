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

/// A [`Source`] that a request can be submitted on: every sized source, and
/// `dyn Source` itself (alone, or with `Send` and `Sync`).
///
/// The submitting functions ([`Context::submit`](crate::Context::submit),
/// [`Context::request`](crate::Context::request) and the others) take the
/// source by its own type, so that the `poll` they make at submit, which
/// registers the request, is a direct call the compiler can inline, with the
/// registration inlined into it. The context keeps the source as
/// `&dyn Source` for the re-polls that may follow (deferred work, an
/// unkeyed wakeup): that is what [`as_dyn_source`](Self::as_dyn_source)
/// gives. A source that is already a `dyn Source` is polled through its
/// vtable.
///
/// The cost is flash: each source type a firmware submits on gets its own
/// copy of the few instructions around its `poll` (on a Cortex-M3 at
/// opt-level `"s"`, the awaited examples grew by 852 to 956 bytes with
/// two or three source types, and a Cortex-M3 submit took 56 instructions
/// fewer). A firmware short of flash can pass its sources as
/// `&dyn Source`: one copy serves them all.
///
/// Sealed: implemented here for every type it can be.
pub trait AsDynSource<Q: RawMutex>: Source<Q> + sealed::Sealed<Q> {
    /// This source as the trait object the context keeps.
    fn as_dyn_source(&self) -> &dyn Source<Q>;
}

impl<Q: RawMutex, T: Source<Q>> AsDynSource<Q> for T {
    #[inline]
    fn as_dyn_source(&self) -> &dyn Source<Q> {
        self
    }
}

/// `AsDynSource` for a `dyn Source` with each set of auto traits a caller
/// may hold it as (each is a type of its own).
macro_rules! dyn_sources {
    ($($object:ty),+) => {
        $(
            impl<Q: RawMutex> AsDynSource<Q> for $object {
                #[inline]
                fn as_dyn_source(&self) -> &dyn Source<Q> {
                    self
                }
            }

            impl<Q: RawMutex> sealed::Sealed<Q> for $object {}
        )+
    };
}

dyn_sources!(
    dyn Source<Q> + '_,
    dyn Source<Q> + Send + '_,
    dyn Source<Q> + Sync + '_,
    dyn Source<Q> + Send + Sync + '_
);

mod sealed {
    use lock_api::RawMutex;

    /// Keeps [`AsDynSource`](super::AsDynSource) to the types it is
    /// implemented for here.
    pub trait Sealed<Q: RawMutex> {}

    impl<Q: RawMutex, T: super::Source<Q>> Sealed<Q> for T {}
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

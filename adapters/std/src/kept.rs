//! [`Kept`]: the sources a [`StdContext`](crate::StdContext) keeps alive,
//! one place per request slot, with no lock of their own.
//!
//! The core points at a request's source until the request's final
//! completion has been reaped (`submit_unchecked`'s contract), so the
//! context holds an `Arc` of it that long. A [`Completion`] names its
//! request (its [`Handle`]: slot and generation), so the `Arc` sits in a
//! table indexed by slot. Every request is submitted through the core's
//! `submit_unchecked_with`: its `accepted` callback fills the place and the
//! `reap_with` callback of the request's final completion empties it. The
//! core runs both under its context lock, the fill before any reaper can
//! see the request and the emptying before the slot can be reused, so a
//! place needs no lock of its own: the context lock orders every access to
//! it.
//!
//! Whoever empties a place gets the `Arc` back and drops it once it holds
//! no aiopoll lock: dropping a source's last handle closes its queues,
//! which must not happen under the context lock.

use std::cell::UnsafeCell;

use aiopoll::{Completion, Handle};

use crate::SharedSource;

/// The sources kept alive, one place per request slot.
pub(crate) struct Kept {
    /// Read and written only under the core's context lock (in the
    /// `accepted` and `reap_with` callbacks).
    held: Box<[UnsafeCell<Option<SharedSource>>]>,
}

// SAFETY: the cells are only reached under the core's context lock, which
// orders every access (see the module doc). `SharedSource` is
// `Send + Sync`.
unsafe impl Sync for Kept {}

impl Kept {
    /// The bytes [`new`](Self::new) allocates for `slots` request slots.
    pub(crate) const fn bytes(slots: usize) -> usize {
        slots * core::mem::size_of::<UnsafeCell<Option<SharedSource>>>()
    }

    /// Empty places for `slots` request slots.
    pub(crate) fn new(slots: usize) -> Self {
        Kept {
            held: (0..slots).map(|_| UnsafeCell::new(None)).collect(),
        }
    }

    /// Keeps `source` for the request `handle` names, which the core just
    /// accepted.
    ///
    /// # Safety
    /// Called from `submit_unchecked_with`'s `accepted` callback (so under
    /// the core's context lock), for a handle of that context.
    pub(crate) unsafe fn hold(&self, handle: Handle, source: SharedSource) {
        let Some(place) = self.held.get(usize::from(handle.slot())) else {
            return;
        };
        // SAFETY: under the context lock (the caller's contract), which
        // orders every access to a place. The slot was free, and its last
        // request's place was emptied when that was reaped.
        let old = unsafe { (*place.get()).replace(source) };
        debug_assert!(old.is_none(), "a free slot's place is empty");
        // Unreachable (see above); dropped here rather than never.
        drop(old);
    }

    /// Lets go of what was kept for the request whose completion was just
    /// reaped, if that was its final completion: returns the source, for the
    /// caller to drop once it holds no aiopoll lock.
    ///
    /// # Safety
    /// Called from `reap_with`'s callback (so under the core's context
    /// lock), with the completion the core reaped from that context.
    pub(crate) unsafe fn release(&self, completion: &Completion) -> Option<SharedSource> {
        if completion.more {
            // A multishot request's readiness: it stays armed.
            return None;
        }
        let place = self.held.get(usize::from(completion.handle.slot()))?;
        // SAFETY: under the context lock (the caller's contract).
        unsafe { (*place.get()).take() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aiopoll::{Completion, Context, Events, PollTable, Source};

    use super::Kept;
    use crate::{Lock, SharedSource};

    /// Always readable, on no queue: a request on it completes at submit.
    struct Ready;

    impl<Q: lock_api::RawMutex> Source<Q> for Ready {
        fn poll<'s>(&'s self, _: &mut PollTable<'_, 's, Q>) -> Events {
            Events::IN
        }
    }

    /// The final completions of `count` requests, one after the other in
    /// slot 0 of a one-slot context (so generations 0, 1, 2, ...).
    fn completions(count: usize) -> Vec<Completion> {
        let context = core::pin::pin!(Context::<'_, 1>::new());
        (0..count)
            .map(|_| {
                context.as_ref().submit(&Ready, Events::IN, 0).unwrap();
                let mut out = [Completion::EMPTY];
                assert_eq!(context.reap(&mut out), 1);
                out[0]
            })
            .collect()
    }

    fn source() -> (Arc<Ready>, SharedSource) {
        let ours = Arc::new(Ready);
        let theirs: Arc<dyn Source<Lock> + Send + Sync> = ours.clone();
        (ours, theirs)
    }

    #[test]
    fn held_sources_go_at_the_final_completion_only() {
        let kept = Kept::new(1);
        let done = completions(1);
        let (ours, theirs) = source();
        // SAFETY: as above (the lock these calls need orders nothing here).
        unsafe { kept.hold(done[0].handle, theirs) };
        let readiness = Completion {
            more: true,
            ..done[0]
        };
        // SAFETY: as above.
        assert!(unsafe { kept.release(&readiness) }.is_none());
        assert_eq!(Arc::strong_count(&ours), 2);
        // SAFETY: as above.
        assert!(unsafe { kept.release(&done[0]) }.is_some());
        assert_eq!(Arc::strong_count(&ours), 1);
    }
}

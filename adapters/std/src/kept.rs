//! [`Kept`]: the sources a [`StdContext`](crate::StdContext) keeps alive,
//! one place per request slot, with no lock of their own.
//!
//! The core points at a request's source until the request's completion has
//! been reaped (`submit_unchecked`'s contract), so the context holds an
//! `Arc` of it that long. A [`Completion`] names its request (its
//! [`Handle`]: slot and generation), so the `Arc` sits in a table indexed
//! by slot:
//!
//! - **Held** places, for requests submitted through the core's
//!   `submit_unchecked_with`: its `accepted` callback fills the place and
//!   the `reap_with` callback of the request's final completion empties it.
//!   The core runs both under its context lock, the fill before any reaper
//!   can see the request and the emptying before the slot can be reused, so
//!   a held place needs no lock of its own: the context lock orders every
//!   access to it.
//! - **Parked** places, for requests submitted with a deadline: the core's
//!   `submit_with_deadline` has no `accepted` callback, so the submitter
//!   parks the `Arc` after the submit returned, when the request may have
//!   completed, and even been reaped, already. A word per slot (generation
//!   and state, changed by compare-and-swap only) decides who lets go of
//!   the `Arc`: the reaper of the request's final completion, or the
//!   submitter itself when that reaper came first. Until it is parked the
//!   submitter holds the `Arc`, so the source is alive throughout.
//!
//! Whoever empties a place gets the `Arc` back and drops it once it holds
//! no aiopoll lock: dropping a source's last handle closes its queues,
//! which must not happen under the context lock.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

use aiopoll::{Completion, Handle};

use crate::SharedSource;

/// The state of a slot's parked place (the low bits of its word; the high
/// 32 bits are the generation the state is about).
const INITIAL: u64 = 0;
/// The submitter of that generation is writing the place.
const WRITING: u64 = 1;
/// The place holds that generation's source.
const PARKED: u64 = 2;
/// That generation's final completion has been reaped (the place is empty).
const REAPED: u64 = 3;
const STATE: u64 = 0b11;

fn pack(generation: u32, state: u64) -> u64 {
    (u64::from(generation) << 32) | state
}

fn generation_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Whether `later` comes after `earlier` (generations wrap).
fn after(later: u32, earlier: u32) -> bool {
    (later.wrapping_sub(earlier) as i32) > 0
}

/// The sources kept alive, one held and one parked place per request slot.
pub(crate) struct Kept {
    /// Read and written only under the core's context lock (in the
    /// `accepted` and `reap_with` callbacks).
    held: Box<[UnsafeCell<Option<SharedSource>>]>,
    /// Owned by whoever the slot's word says: the submitter while
    /// `WRITING`, the word while `PARKED` (taken by the one whose
    /// compare-and-swap moves it out of `PARKED`), nobody otherwise (empty).
    parked: Box<[UnsafeCell<Option<SharedSource>>]>,
    words: Box<[AtomicU64]>,
}

// SAFETY: the cells are only reached as described on each field: `held`
// under the core's context lock, `parked` by the one thread the slot's word
// makes its owner (compare-and-swap with `AcqRel`/`Acquire` hands the
// ownership over, with the writes before it). `SharedSource` is
// `Send + Sync`.
unsafe impl Sync for Kept {}

impl Kept {
    /// The bytes [`new`](Self::new) allocates for `slots` request slots.
    pub(crate) const fn bytes(slots: usize) -> usize {
        slots
            * (2 * core::mem::size_of::<UnsafeCell<Option<SharedSource>>>()
                + core::mem::size_of::<AtomicU64>())
    }

    /// Empty places for `slots` request slots.
    pub(crate) fn new(slots: usize) -> Self {
        Kept {
            held: (0..slots).map(|_| UnsafeCell::new(None)).collect(),
            parked: (0..slots).map(|_| UnsafeCell::new(None)).collect(),
            words: (0..slots).map(|_| AtomicU64::new(INITIAL)).collect(),
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
        // orders every access to a held place. The slot was free, and its
        // last request's place was emptied when that was reaped.
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
        let slot = usize::from(completion.handle.slot());
        let place = self.held.get(slot)?;
        // SAFETY: under the context lock (the caller's contract).
        if let Some(source) = unsafe { (*place.get()).take() } {
            return Some(source);
        }
        // Nothing held: a request submitted with a deadline.
        self.reaped(slot, completion.handle.generation())
    }

    /// The final completion of `generation`'s request in `slot`, submitted
    /// with a deadline, was reaped: takes its parked source, or tells its
    /// submitter (who is parking it now, or will) to drop it itself.
    fn reaped(&self, slot: usize, generation: u32) -> Option<SharedSource> {
        let word = &self.words[slot];
        let mut current = word.load(Ordering::Acquire);
        loop {
            let parked = current == pack(generation, PARKED);
            match word.compare_exchange(
                current,
                pack(generation, REAPED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: moving the word out of `PARKED` made this thread
                // the place's owner; the submitter's write happened before
                // its compare-and-swap to `PARKED`, which we acquired.
                Ok(_) if parked => return unsafe { (*self.parked[slot].get()).take() },
                // Not parked yet (or being written): the submitter finds
                // `REAPED` and drops the source itself.
                Ok(_) => return None,
                Err(seen) => current = seen,
            }
        }
    }

    /// Keeps `source` for the request `handle` names, submitted with a
    /// deadline, after the submit returned: parked for its reaper, or
    /// dropped here if that reaper came first. Never blocks.
    pub(crate) fn park(&self, handle: Handle, source: SharedSource) {
        let slot = usize::from(handle.slot());
        let generation = handle.generation();
        let (Some(word), Some(place)) = (self.words.get(slot), self.parked.get(slot)) else {
            return;
        };
        let mut current = word.load(Ordering::Acquire);
        loop {
            let seen = generation_of(current);
            let state = current & STATE;
            // This request was reaped (its reaper said so, or the slot has
            // moved on to a later request, which needs this one reaped).
            if (state == REAPED && seen == generation)
                || (state != INITIAL && after(seen, generation))
            {
                return; // `source` is dropped here, no lock held.
            }
            match word.compare_exchange(
                current,
                pack(generation, WRITING),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        // SAFETY: `WRITING` with our generation makes this thread the
        // place's owner: a reaper only takes the place out of `PARKED`, and
        // no other submitter uses this slot until this request is reaped.
        // The place is empty: every earlier request of the slot was reaped,
        // and whoever ended its parking emptied it.
        let old = unsafe { (*place.get()).replace(source) };
        debug_assert!(
            old.is_none(),
            "a slot's parked place is empty between requests"
        );
        drop(old);
        let writing = pack(generation, WRITING);
        if word
            .compare_exchange(
                writing,
                pack(generation, PARKED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // The reaper came while we wrote (the word is `REAPED` now):
            // the source is ours to drop.
            // SAFETY: the reaper did not take the place (it was not
            // `PARKED`), so we still own it.
            let source = unsafe { (*place.get()).take() };
            drop(source);
        }
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
    fn a_parked_source_goes_to_its_reaper() {
        let kept = Kept::new(1);
        let done = completions(1);
        let (ours, theirs) = source();
        kept.park(done[0].handle, theirs);
        assert_eq!(Arc::strong_count(&ours), 2);
        // SAFETY: no core context shares `kept`: nothing else touches it.
        let released = unsafe { kept.release(&done[0]) };
        assert!(released.is_some());
        drop(released);
        assert_eq!(Arc::strong_count(&ours), 1);
    }

    #[test]
    fn a_submitter_that_parks_after_the_reap_drops_the_source_itself() {
        let kept = Kept::new(1);
        let done = completions(3);
        // SAFETY: as above.
        assert!(unsafe { kept.release(&done[0]) }.is_none());
        let (ours, theirs) = source();
        kept.park(done[0].handle, theirs);
        assert_eq!(Arc::strong_count(&ours), 1);
        // The next request of the slot parks and is reaped as usual.
        let (ours, theirs) = source();
        kept.park(done[1].handle, theirs);
        // SAFETY: as above.
        assert!(unsafe { kept.release(&done[1]) }.is_some());
        assert_eq!(Arc::strong_count(&ours), 1);
        // A submitter so late that a later request of its slot has been
        // parked already knows its own was reaped.
        let (later, theirs) = source();
        kept.park(done[2].handle, theirs);
        let (ours, theirs) = source();
        kept.park(done[1].handle, theirs);
        assert_eq!(Arc::strong_count(&ours), 1);
        assert_eq!(Arc::strong_count(&later), 2);
        drop(kept);
        assert_eq!(Arc::strong_count(&later), 1);
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

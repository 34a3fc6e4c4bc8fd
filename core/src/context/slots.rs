//! The request slots and their free list: what the context lock protects.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Free,
    Polling,
    Armed,
    Completed,
}

/// Where a request's completion goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Into the completion queue that [`Context::reap`] drains.
    Queue,
    /// To the [`Request`](crate::Request) future that awaits it: the outcome
    /// stays in the slot and the future's task is woken.
    Awaited,
}

pub(super) struct Slot<'s, Q: lock_api::RawMutex> {
    pub(super) phase: Phase,
    pub(super) delivery: Delivery,
    /// The task awaiting this request (`Delivery::Awaited` only), taken
    /// out when the request completes and called once no lock is held.
    pub(super) waker: Option<Waker>,
    pub(super) generation: u32,
    pub(super) user_data: u64,
    /// Requested ∪ ERR ∪ HUP.
    pub(super) events: Events,
    pub(super) source: Option<&'s dyn Source<Q>>,
    pub(super) outcome: Outcome,
    /// A multishot request: it stays armed after each readiness it posts.
    pub(super) multishot: bool,
    /// A multishot request's readiness posted to the completion queue and
    /// not reaped yet (empty: none); later readiness merges into it.
    pub(super) posted: Events,
    /// When the request times out (in the adapter's clock ticks), or
    /// [`NO_DEADLINE`].
    pub(super) deadline: u64,
}

/// A slot's deadline when it has none.
pub(super) const NO_DEADLINE: u64 = u64::MAX;

impl<Q: lock_api::RawMutex> Slot<'_, Q> {
    pub(super) const FREE: Self = Slot {
        phase: Phase::Free,
        delivery: Delivery::Queue,
        waker: None,
        generation: 0,
        user_data: 0,
        events: Events::empty(),
        source: None,
        outcome: Outcome::Cancelled,
        multishot: false,
        posted: Events::empty(),
        deadline: NO_DEADLINE,
    };
}

/// Everything the context lock protects.
pub(super) struct State<'s, Q: lock_api::RawMutex, const N: usize> {
    /// This context's identity in its handles: unique among the contexts of
    /// the program, assigned at the first submit (0: not yet).
    pub(super) id: u32,
    pub(super) slots: [Slot<'s, Q>; N],
    /// Slots reaped and free again.
    pub(super) free: heapless::Vec<u16, N>,
    /// Slots `never_used..N` have never been handed out.
    pub(super) never_used: u16,
    /// Completed slots in completion order; one place per slot, so pushing
    /// never fails.
    pub(super) completed: heapless::Deque<u16, N>,
    /// Futures waiting for a free slot, oldest first.
    pub(super) slot_waiters: WaiterList,
    pub(super) stats: Stats,
}

/// The source of context identities. Not part of the request protocol
/// (it is only read once per context, under the context lock), so it stays a
/// plain atomic under loom.
pub(super) static NEXT_CONTEXT_ID: portable_atomic::AtomicU32 = portable_atomic::AtomicU32::new(1);

impl<Q: lock_api::RawMutex, const N: usize> State<'_, Q, N> {
    /// This context's identity, assigned on first use: a handle from a
    /// context dropped earlier never matches a context made later, even at
    /// the same address.
    pub(super) fn id(&mut self) -> u32 {
        if self.id == 0 {
            let mut id = NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed);
            if id == 0 {
                // Wrapped after four billion contexts: skip "unassigned".
                id = NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed);
            }
            self.id = id;
        }
        self.id
    }

    pub(super) fn allocate(&mut self) -> Option<usize> {
        if let Some(slot) = self.free.pop() {
            return Some(usize::from(slot));
        }
        if usize::from(self.never_used) < N {
            self.never_used += 1;
            return Some(usize::from(self.never_used - 1));
        }
        None
    }

    pub(super) fn release(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        state.phase = Phase::Free;
        state.source = None;
        state.deadline = NO_DEADLINE;
        state.multishot = false;
        debug_assert!(state.posted.is_empty());
        // `finish` took an awaited request's waker out (to be called or
        // dropped once the lock is released, never under it).
        debug_assert!(state.waker.is_none());
        state.delivery = Delivery::Queue;
        state.generation = state.generation.wrapping_add(1);
        // Cannot fail: at most N slots are ever out, and each is freed once.
        let pushed = self.free.push(slot as u16);
        debug_assert!(pushed.is_ok());
    }
}

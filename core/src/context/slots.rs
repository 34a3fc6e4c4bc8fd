//! The request slots and their free list: what the context lock protects.

use core::mem::ManuallyDrop;

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

/// What a request carries beside its source, in one place: a queued
/// request's user data, or the task waker of an awaited one (which has no
/// user data). The slot's `delivery` says which; only [`Slot`]'s methods
/// read it.
pub(super) union Payload {
    user_data: u64,
    /// Taken out when the request completes and called once no lock is
    /// held; dropped by the context's `Drop` if still there.
    waker: ManuallyDrop<Option<Waker>>,
}

pub(super) struct Slot<'s, Q: lock_api::RawMutex> {
    pub(super) phase: Phase,
    /// Which of `payload`'s fields is in use; changed only with it.
    delivery: Delivery,
    payload: Payload,
    pub(super) generation: u32,
    pub(super) source: Option<&'s dyn Source<Q>>,
    pub(super) outcome: Outcome,
    /// A multishot request: it stays armed after each readiness it posts.
    pub(super) multishot: bool,
    /// How many queues the request registered on when it armed (T2). An
    /// armed request's entries leave their queues only by a close (T10),
    /// so with 1 the entry a wakeup holds is its only one.
    pub(super) queues: u8,
    /// A multishot request's readiness posted to the completion queue and
    /// not reaped yet (empty: none); later readiness merges into it.
    pub(super) posted: Events,
    /// The next slot on the list this slot is on (plus one; 0: the last,
    /// or on no list): the free list while `Free`, the completion queue
    /// while its completion waits there. A slot is on at most one of them.
    pub(super) next: u16,
}

/// A request's deadline when it has none (what `NoDeadlines` reports for
/// every slot).
pub(super) const NO_DEADLINE: u64 = u64::MAX;

impl<Q: lock_api::RawMutex> Slot<'_, Q> {
    pub(super) const FREE: Self = Slot {
        phase: Phase::Free,
        delivery: Delivery::Queue,
        payload: Payload { user_data: 0 },
        generation: 0,
        source: None,
        // All zeros, as every field here: a new context is all zeros.
        outcome: Outcome::Ready(Events::empty()),
        multishot: false,
        queues: 0,
        posted: Events::empty(),
        next: 0,
    };
}

impl<Q: lock_api::RawMutex> Slot<'_, Q> {
    /// Where the request's completion goes.
    #[inline(always)]
    pub(super) fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Makes this (free) slot a queued request's, with `user_data`.
    #[inline(always)]
    pub(super) fn set_queued(&mut self, user_data: u64) {
        debug_assert!(self.waker().is_none_or(|waker| waker.is_none()));
        self.delivery = Delivery::Queue;
        self.payload = Payload { user_data };
    }

    /// Makes this (free) slot an awaited request's, with no waker yet.
    #[inline(always)]
    pub(super) fn set_awaited(&mut self) {
        debug_assert!(self.waker().is_none_or(|waker| waker.is_none()));
        self.delivery = Delivery::Awaited;
        self.payload = Payload {
            waker: ManuallyDrop::new(None),
        };
    }

    /// A queued request's user data (an awaited one has none: 0).
    #[inline(always)]
    pub(super) fn user_data(&self) -> u64 {
        match self.delivery {
            // SAFETY: a queued request's payload is its user data (written
            // with `delivery` by `set_queued`).
            Delivery::Queue => unsafe { self.payload.user_data },
            Delivery::Awaited => 0,
        }
    }

    /// A queued request's user data, without looking at `delivery`.
    ///
    /// # Safety
    /// The request is a queued one (as every request whose completion is
    /// in the completion queue is).
    #[inline(always)]
    pub(super) unsafe fn queued_user_data(&self) -> u64 {
        debug_assert_eq!(self.delivery, Delivery::Queue);
        // SAFETY: the caller's contract: a queued request's payload is its
        // user data.
        unsafe { self.payload.user_data }
    }

    /// Changes a queued request's user data (an awaited one has none).
    #[inline(always)]
    pub(super) fn set_user_data(&mut self, user_data: u64) {
        if self.delivery == Delivery::Queue {
            self.payload = Payload { user_data };
        }
    }

    /// The task waker of an awaited request; `None` for a queued one.
    #[inline(always)]
    pub(super) fn waker(&mut self) -> Option<&mut Option<Waker>> {
        match self.delivery {
            // SAFETY: an awaited request's payload is its waker (written
            // with `delivery` by `set_awaited`).
            Delivery::Awaited => Some(unsafe { &mut *self.payload.waker }),
            Delivery::Queue => None,
        }
    }
}

/// Everything the context lock protects.
pub(super) struct State<'s, Q: lock_api::RawMutex, const N: usize> {
    /// This context's identity in its handles: unique among the contexts of
    /// the program, assigned at the first submit (0: not yet).
    pub(super) id: u32,
    pub(super) slots: [Slot<'s, Q>; N],
    /// The free list and the completion queue, linked through the slots.
    pub(super) lists: Lists,
    /// Futures waiting for a free slot, oldest first.
    pub(super) slot_waiters: WaiterList,
    pub(super) stats: Stats,
}

/// The source of context identities. Not part of the request protocol
/// (it is only read once per context, under the context lock), so it stays a
/// plain atomic under loom.
/// (It holds the last identity given, so that it starts at zero, like
/// everything a context starts with.)
pub(super) static NEXT_CONTEXT_ID: portable_atomic::AtomicU32 = portable_atomic::AtomicU32::new(0);

/// The free list (a stack) and the completion queue (first in, first out),
/// both linked through the slots' `next` (Linux keeps its free requests and
/// its completions apart; here a slot is on one list at a time, so one link
/// does for both). Links are a slot's index plus one, 0 for none, so that a
/// new context is all zeros. The completion queue has one place per slot by
/// construction: pushing never fails, and a slot is never on it twice.
pub(super) struct Lists {
    /// The most recently freed slot (plus one).
    free: u16,
    /// How many slots are on the free list.
    free_len: u16,
    /// Slots `never_used..N` have never been handed out.
    never_used: u16,
    /// The oldest completion's slot (plus one).
    head: u16,
    /// The newest completion's slot (plus one).
    tail: u16,
    /// How many completions wait.
    queued: u16,
}

impl Lists {
    pub(super) const EMPTY: Lists = Lists {
        free: 0,
        free_len: 0,
        never_used: 0,
        head: 0,
        tail: 0,
        queued: 0,
    };

    /// How many completions wait to be reaped.
    pub(super) fn queued(&self) -> usize {
        usize::from(self.queued)
    }

    /// How many slots are in use.
    pub(super) fn in_use(&self) -> usize {
        usize::from(self.never_used - self.free_len)
    }
}

impl<Q: lock_api::RawMutex, const N: usize> State<'_, Q, N> {
    /// Gives this context its identity, at its first submit: a handle from
    /// a context dropped earlier never matches a context made later, even
    /// at the same address.
    #[cold]
    pub(super) fn assign_id(&mut self) {
        let mut id = NEXT_CONTEXT_ID
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if id == 0 {
            // Wrapped after four billion contexts: skip "unassigned".
            id = NEXT_CONTEXT_ID
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
        }
        self.id = id;
    }

    /// The slot a nonzero list link names (links are slot numbers plus
    /// one, 0 ending a list).
    #[inline(always)]
    fn linked(link: u16) -> usize {
        debug_assert!(link != 0);
        let slot = usize::from(link.wrapping_sub(1));
        // SAFETY: list links (`free`, `head`, `tail`, each slot's `next`)
        // are written only in this module, each as `slot + 1` for a slot
        // below `N` (a slot taken by `allocate`, or given to
        // `push_completed` or `release` by a caller that indexed `slots`
        // with it), or as 0, which callers never pass here (safety
        // invariant 13). Told to the compiler, submit and reap index the
        // slot they took off a list with no bounds check, so no panic path.
        unsafe { core::hint::assert_unchecked(slot < N) };
        slot
    }

    pub(super) fn allocate(&mut self) -> Option<usize> {
        let lists = &mut self.lists;
        if lists.free != 0 {
            let slot = Self::linked(lists.free);
            lists.free = self.slots[slot].next;
            lists.free_len -= 1;
            return Some(slot);
        }
        if usize::from(lists.never_used) < N {
            lists.never_used += 1;
            return Some(usize::from(lists.never_used - 1));
        }
        None
    }

    /// Puts `slot` at the end of the completion queue. The slot is not on
    /// it (a slot's one place), nor on the free list.
    pub(super) fn push_completed(&mut self, slot: usize) {
        let link = slot as u16 + 1;
        self.slots[slot].next = 0;
        let lists = &mut self.lists;
        if lists.tail == 0 {
            lists.head = link;
        } else {
            self.slots[Self::linked(lists.tail)].next = link;
        }
        self.lists.tail = link;
        self.lists.queued += 1;
    }

    /// Takes the oldest slot off the completion queue.
    pub(super) fn pop_completed(&mut self) -> Option<usize> {
        let lists = &mut self.lists;
        if lists.head == 0 {
            return None;
        }
        let slot = Self::linked(lists.head);
        lists.head = self.slots[slot].next;
        if lists.head == 0 {
            lists.tail = 0;
        }
        lists.queued -= 1;
        Some(slot)
    }

    pub(super) fn release(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        // Only what a free slot must say: `delivery`, `multishot` and the
        // user data are set by the next submit (T1), the deadline when the
        // request arms (T2).
        state.phase = Phase::Free;
        state.source = None;
        debug_assert!(state.posted.is_empty());
        // `finish` took an awaited request's waker out (to be called or
        // dropped once the lock is released, never under it).
        debug_assert!(state.waker().is_none_or(|waker| waker.is_none()));
        state.generation = state.generation.wrapping_add(1);
        state.next = self.lists.free;
        self.lists.free = slot as u16 + 1;
        self.lists.free_len += 1;
    }
}

//! Futures waiting for a free slot: when every slot is in use, a
//! [`Request`](crate::Request) future links a node that lives inside it on
//! the context's list, and each slot that frees wakes the oldest waiter.
//!
//! The list is intrusive (no allocation, any number of waiters) and
//! protected by the context lock, like everything in [`State`]. A node is
//! reached through the list only while it is linked, and its future unlinks
//! it in `Drop` before its memory can go: a linked future is pinned, and
//! pinning promises that its memory is not reused before `drop` runs
//! (`mem::forget` of a pinned future leaks its memory, so the node stays
//! valid for ever). See the [`safety`](crate::safety) module.
//!
//! A waiter is *notified* when a freed slot pops it off the list. A
//! notified future that is dropped before it could submit passes the
//! notification on to the next waiter, so a freed slot is never lost to a
//! future that went away.

use super::*;

/// The node a waiting future links on its context's list.
pub(crate) struct SlotWaiter {
    /// Protected by the context lock of the context it waits on.
    node: UnsafeCell<WaiterNode>,
    _pinned: PhantomPinned,
}

struct WaiterNode {
    prev: *const SlotWaiter,
    next: *const SlotWaiter,
    /// The task to wake when a slot frees (set while linked).
    waker: Option<Waker>,
    state: WaiterState,
}

/// Where a [`SlotWaiter`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaiterState {
    /// Not on the list, and owed nothing.
    Idle,
    /// On the list, waiting for a slot to free.
    Linked,
    /// Taken off the list by a freed slot: its future should try again.
    Notified,
}

impl SlotWaiter {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        SlotWaiter {
            node: UnsafeCell::new(WaiterNode::IDLE),
            _pinned: PhantomPinned,
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        SlotWaiter {
            node: UnsafeCell::new(WaiterNode::IDLE),
            _pinned: PhantomPinned,
        }
    }
}

impl WaiterNode {
    const IDLE: WaiterNode = WaiterNode {
        prev: core::ptr::null(),
        next: core::ptr::null(),
        waker: None,
        state: WaiterState::Idle,
    };
}

/// The list of waiting futures, oldest first.
pub(super) struct WaiterList {
    head: *const SlotWaiter,
    tail: *const SlotWaiter,
}

impl WaiterList {
    pub(super) const EMPTY: WaiterList = WaiterList {
        head: core::ptr::null(),
        tail: core::ptr::null(),
    };

    /// Links `waiter` at the tail with `waker`, or, when it is linked
    /// already, keeps its place and replaces its waker. Returns whether it
    /// was newly linked, and the waker it held before (to be dropped once
    /// the lock is released).
    ///
    /// # Safety
    /// The caller holds the context lock that protects this list, `waiter`
    /// is linked on this list or on none, and it stays in place until it is
    /// unlinked (its future is pinned and unlinks it in `Drop`).
    pub(super) unsafe fn link(
        &mut self,
        waiter: *const SlotWaiter,
        waker: Waker,
    ) -> (bool, Option<Waker>) {
        let tail = self.tail;
        // SAFETY: the context lock (held) protects every node of the list
        // and `waiter`'s; `tail`, when not null, is linked and so alive
        // (the caller's contract for every node).
        unsafe {
            let (newly, old) = (*waiter).node.with_mut(|node| {
                let old = (*node).waker.replace(waker);
                if (*node).state == WaiterState::Linked {
                    return (false, old);
                }
                (*node).prev = tail;
                (*node).next = core::ptr::null();
                (*node).state = WaiterState::Linked;
                (true, old)
            });
            if newly {
                if tail.is_null() {
                    self.head = waiter;
                } else {
                    (*tail).node.with_mut(|node| (*node).next = waiter);
                }
                self.tail = waiter;
            }
            (newly, old)
        }
    }

    /// Takes `waiter` off the list if it is linked, and clears a
    /// notification it was given. Returns the state it was in and the waker
    /// it held (to be dropped once the lock is released).
    ///
    /// # Safety
    /// The caller holds the context lock, and `waiter` is either linked on
    /// this list or on none.
    pub(super) unsafe fn remove(
        &mut self,
        waiter: *const SlotWaiter,
    ) -> (WaiterState, Option<Waker>) {
        // SAFETY: the context lock (held) protects the nodes; a linked
        // node's neighbours are linked and alive.
        unsafe {
            let (state, prev, next, waker) = (*waiter).node.with_mut(|node| {
                let state = (*node).state;
                let links = ((*node).prev, (*node).next);
                (*node).prev = core::ptr::null();
                (*node).next = core::ptr::null();
                (*node).state = WaiterState::Idle;
                (state, links.0, links.1, (*node).waker.take())
            });
            if state == WaiterState::Linked {
                if prev.is_null() {
                    self.head = next;
                } else {
                    (*prev).node.with_mut(|node| (*node).next = next);
                }
                if next.is_null() {
                    self.tail = prev;
                } else {
                    (*next).node.with_mut(|node| (*node).prev = prev);
                }
            }
            (state, waker)
        }
    }

    /// Takes the oldest waiter off the list and marks it notified; returns
    /// its waker, or `None` when nobody waits.
    ///
    /// # Safety
    /// The caller holds the context lock.
    pub(super) unsafe fn pop_front(&mut self) -> Option<Option<Waker>> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: `head` is linked, so alive; the context lock (held)
        // protects it and its successor.
        unsafe {
            let (next, waker) = (*head).node.with_mut(|node| {
                let next = (*node).next;
                (*node).prev = core::ptr::null();
                (*node).next = core::ptr::null();
                (*node).state = WaiterState::Notified;
                (next, (*node).waker.take())
            });
            self.head = next;
            if next.is_null() {
                self.tail = core::ptr::null();
            } else {
                (*next)
                    .node
                    .with_mut(|node| (*node).prev = core::ptr::null());
            }
            Some(waker)
        }
    }
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Wakes up to `freed` futures waiting for a slot (one per freed slot),
    /// oldest first. Called after the context lock has been released by
    /// whoever freed slots; costs one atomic load when nobody waits.
    #[inline]
    pub(super) fn wake_slot_waiters(&self, freed: usize) {
        // The count changes only under the context lock, which the freer
        // held when it freed: a waiter that linked before sees its slot.
        // Without awaited requests nobody ever waits: a constant `false`.
        if K::AWAITED && freed > 0 && self.waiting_for_slot.load(Ordering::Relaxed) > 0 {
            self.wake_slot_waiters_slow(freed);
        }
    }

    #[cold]
    fn wake_slot_waiters_slow(&self, mut freed: usize) {
        while freed > 0 && self.waiting_for_slot.load(Ordering::Relaxed) > 0 {
            // Before the guard: woken once the lock is released.
            let mut batch = TaskWakers::<K>::new();
            let locked = Locked::lock(&self.lock);
            self.with_state(&locked, |state| {
                while freed > 0 && batch.has_room() {
                    // SAFETY: we hold the context lock.
                    let Some(waker) = (unsafe { state.slot_waiters.pop_front() }) else {
                        freed = 0;
                        break;
                    };
                    self.waiting_for_slot.fetch_sub(1, Ordering::Relaxed);
                    if let Some(waker) = waker {
                        batch.push(waker);
                    }
                    freed -= 1;
                }
            });
        }
    }

    /// Links `waiter` (with `waker`) to wait for a slot. Returns the waker
    /// it held before, for the caller to drop once the lock is released.
    ///
    /// # Safety
    /// The caller holds the context lock (`locked`); `waiter` is pinned in
    /// a future that unlinks it (with [`unlink_slot_waiter`]) before it
    /// goes, and is not linked on another context's list.
    ///
    /// [`unlink_slot_waiter`]: Self::unlink_slot_waiter
    pub(super) unsafe fn link_slot_waiter(
        &self,
        locked: &Locked<'_, L::Context>,
        waiter: &SlotWaiter,
        waker: Waker,
    ) -> Option<Waker> {
        self.with_state(locked, |state| {
            // SAFETY: the caller's contract.
            let (newly, old) = unsafe { state.slot_waiters.link(waiter, waker) };
            if newly {
                self.waiting_for_slot.fetch_add(1, Ordering::Relaxed);
            }
            old
        })
    }

    /// Takes `waiter` off the list (if linked) and clears its notification.
    /// Returns the state it was in and its waker (to be dropped once the
    /// lock is released).
    ///
    /// # Safety
    /// The caller holds the context lock (`locked`), and `waiter` is linked
    /// on this context's list or on none.
    pub(super) unsafe fn unlink_slot_waiter(
        &self,
        locked: &Locked<'_, L::Context>,
        waiter: &SlotWaiter,
    ) -> (WaiterState, Option<Waker>) {
        self.with_state(locked, |state| {
            // SAFETY: the caller's contract.
            let (before, waker) = unsafe { state.slot_waiters.remove(waiter) };
            if before == WaiterState::Linked {
                self.waiting_for_slot.fetch_sub(1, Ordering::Relaxed);
            }
            (before, waker)
        })
    }
}

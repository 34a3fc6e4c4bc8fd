//! # The invariants behind aiopoll's `unsafe` code
//!
//! The core has no allocator, so requests wait *intrusively*: a wait queue's
//! list is made of the wait entries inside a context's request slots, and
//! both sides hold raw pointers to each other. Every `unsafe` block cites one
//! of the invariants below; each names the test that guards it.
//!
//! 1. **A context does not move while requests are linked.**
//!    [`Context::submit`](crate::Context::submit) takes `Pin<&Self>` and
//!    `Context` is `!Unpin`. Guarded by the type system (a moved context
//!    cannot be submitted to without `unsafe`).
//! 2. **A context outlives every link to it.** Every path that ends a
//!    request's wait (completion, cancel, submit refused or unwound, context
//!    drop) detaches each of its entries under the entry's queue lock before
//!    the slot is reused or the context's memory goes. Guarded by
//!    `tests/semantics.rs` (`dropping_a_context_detaches_its_requests_from_their_queues`,
//!    `a_poll_that_panics_unwinds_without_a_trace` in `tests/hostile.rs`)
//!    under Miri, the loom models `context_drop_vs_wakeup` and
//!    `teardown_vs_wakeup_vs_cancel`, and the property test's context
//!    teardown.
//! 3. **A queue outlives the entries linked on it, or closes first.** The
//!    safe `submit` borrows every queue for the context's lifetime `'s`;
//!    [`Context::submit_unchecked`](crate::Context::submit_unchecked) makes
//!    the caller promise it. A queue that goes away closes (`Drop` calls
//!    `close`), which unlinks every entry and clears its queue pointer with
//!    `Release` as the very last access (Linux's `POLLFREE` protocol). A
//!    context re-reads the pointer under the queue lock before it unlinks.
//!    Guarded by `tests/semantics.rs`
//!    (`dropping_a_queue_with_requests_completes_them_with_source_gone`,
//!    `closing_one_of_two_queues_completes_once_with_source_gone`) under Miri
//!    and the loom models `teardown_vs_wakeup_vs_cancel` and
//!    `close_during_deferred_work`.
//! 4. **A list and its entries' nodes are touched only under the queue's
//!    lock**; an unlinked entry's node only under its context's lock. Guarded
//!    by loom, whose `UnsafeCell` reports any unsynchronised access, in every
//!    model of `tests/loom.rs`.
//! 5. **The state behind the context lock is touched only under it**, and
//!    never across a call into a source or a hook (`with_state` never
//!    re-enters). The same holds for the requests' deadlines, a cell of
//!    their own (`with_deadlines`, called inside `with_state`'s closure at
//!    most, never inside its own). Guarded by loom's `UnsafeCell` and by the
//!    hostile-source tests (`tests/hostile.rs`: a `poll` that wakes its own
//!    queue, that panics).
//! 6. **A wake function removes at most the entry it was given**, so the
//!    waker's saved `next` stays valid. Guarded by `fan_out_wakes_every_waiter`
//!    (`tests/semantics.rs`) and the property test, under Miri.
//! 7. **A `Context`'s first field is its `ContextHeader`** (`repr(C)`), so a
//!    pointer to the header is a pointer to the context with the context's
//!    provenance. The header's wake function is set by the context's first
//!    submit, under the context lock and before any of its entries is
//!    linked, and read by wakers only through a linked entry, under the
//!    queue lock that linking took: so it is always set when read. A wakeup
//!    finds the request's slot from the entry's address (its place in the
//!    context's entries) and reads the request's events from the slot's
//!    wake word. Guarded by Miri on every test that wakes a queue, and by
//!    loom, whose `UnsafeCell` (the header's) reports a read that is not
//!    ordered after the write.
//! 8. **A future waiting for a slot stays in place until it unlinks its
//!    node.** A [`Request`](crate::Request) that finds every slot in use
//!    links a node that lives inside the future on its context's list of
//!    slot waiters; the list and the nodes are touched only under the
//!    context lock (invariant 5). The future is `!Unpin` and is polled
//!    pinned, and its `Drop` unlinks the node (and passes on a slot it was
//!    told of): pinning promises that the memory of a pinned value is not
//!    reused before its `drop` runs. `mem::forget` of a pinned future
//!    (`Pin<Box<_>>` forgotten) leaks its memory, so the node stays valid
//!    for ever and may stay linked; a pinned stack future cannot be
//!    forgotten without being dropped. Guarded by `tests/request.rs`
//!    (`slot_waiters_are_woken_oldest_first_and_a_dropped_one_passes_its_turn_on`,
//!    `forgetting_futures_is_sound_and_only_leaks_their_slots`) under Miri,
//!    and the loom model `waiting_for_a_slot_vs_release`.
//! 9. **A submitted future owns its slot until it takes the outcome.** The
//!    slot (and its generation) is only freed by the future: when it reads
//!    the completed outcome, or in its `Drop` (cancel, then take). A
//!    forgotten submitted future therefore keeps its slot, and nothing else
//!    can reuse it: sound, at the price of the slot. No pointer into the
//!    future is kept once it is submitted (its waker is a cloned `Waker`).
//!    Guarded by `forgetting_futures_is_sound_and_only_leaks_their_slots`
//!    under Miri and the loom models `awaited_drop_vs_wakeup` and
//!    `awaited_drop_vs_deferred_work`.
//! 10. **No task waker runs or is dropped under an aiopoll lock.** Wakers
//!     taken out of completed requests go into a bounded `WakeBatch`
//!     declared before the lock guard, so it is called after the guard is
//!     released (a wakeup that finds the batch full defers instead); stale
//!     wakers are dropped after the unlock. Not a memory-safety invariant,
//!     but what keeps a waker that re-enters aiopoll from deadlocking.
//!     A context's own batches are `TaskWakers`, which drop their
//!     `WakeBatch` once, in their own drop, and only for kinds that take
//!     awaited requests: only those have task wakers, so for the others the
//!     batch is always empty and is left as it is.
//!     Guarded by `more_awaited_requests_on_one_queue_than_a_wake_batch_all_complete_once`.
//! 11. **A lock taken nested inside the other lock of its pair excludes as
//!     the lock itself would.** [`Locks`](crate::Locks) is an `unsafe`
//!     trait: a pair that overrides `try_lock_context_in_queue` or
//!     `lock_queue_in_context` (the Cortex-M adapter's `CortexMLocks`, whose
//!     inner lock only sets its "held" flag inside the outer one's critical
//!     section) promises that. Guarded by the adapter's host tests: a
//!     `CortexMLocks` context raised, run and reaped from three threads
//!     (`tests/threads.rs`, under Miri too), and a wakeup from inside a
//!     source's `poll` that finds the context held and defers
//!     (`tests/locks.rs`).
//! 12. **A slot's payload is read as what its delivery says it holds.** A
//!     queued request's user data and an awaited request's task waker share
//!     one place (a union); the slot's private `delivery` names the one in
//!     use, and only the slot's methods read or write either, changing both
//!     together. A waker still there when the context goes (its future was
//!     forgotten) is dropped by the context's `Drop`, after every entry has
//!     left its queue and with no lock held. Guarded by Miri on the awaited
//!     requests' tests (`tests/request.rs`, among them
//!     `forgetting_futures_is_sound_and_only_leaks_their_slots`).
//! 13. **A list link names one of the context's slots.** The free list and
//!     the completion queue link slots by number plus one (0 ends a list);
//!     only `slots.rs` writes a link, each as `slot + 1` for a slot below
//!     `N`, so the slot a nonzero link names is below `N`, which it tells
//!     the compiler (`assert_unchecked`): submit and reap take a slot off a
//!     list with no bounds check, and so no panic path (as do submit's
//!     later steps, `finish_submit` and the undo of a `poll` that unwinds,
//!     given the slot its first step took). Checked on every
//!     use in debug builds (the assertion's own precondition check), so by
//!     every host test, the property test under Miri included.

//! Shared by the host tests: counting hooks and a reap helper.
//!
//! The adapter's own hooks (`PendInterrupt`, `PendSv`) pend an interrupt in
//! the NVIC/SCB and signal `SEV`, which only exist on a Cortex-M core (on
//! the host, cortex-m's register and instruction wrappers
//! panic), so the tests count the notifications instead.
#![allow(dead_code)] // each test binary uses its own part of this

use std::sync::atomic::{AtomicUsize, Ordering};

use aiopoll_cortex_m::aiopoll::{Completion, Context, Locks, Notify};

/// Counts the context's notifications.
#[derive(Default)]
pub struct Counting {
    deferred_work: AtomicUsize,
    completed: AtomicUsize,
}

impl Counting {
    pub const fn new() -> Self {
        Counting {
            deferred_work: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
        }
    }

    /// How often deferred work was asked for.
    pub fn deferred_work(&self) -> usize {
        self.deferred_work.load(Ordering::SeqCst)
    }

    /// How many completions were queued.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }
}

impl Notify for Counting {
    fn deferred_work(&self) {
        self.deferred_work.fetch_add(1, Ordering::SeqCst);
    }

    fn completed(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every completion waiting now (and the deferred work reap runs first).
pub fn reap_all<const N: usize, L: Locks, const W: usize, H: Notify>(
    context: &Context<'_, N, L, W, H>,
) -> Vec<Completion> {
    let mut out = vec![Completion::EMPTY; N + 1];
    let count = context.reap(&mut out);
    out.truncate(count);
    // Compared by user data and outcome: the handle and `more` are checked
    // by tests of their own (and by the core's reference-model harness).
    for completion in &mut out {
        completion.handle = Completion::EMPTY.handle;
        completion.more = false;
    }
    out
}

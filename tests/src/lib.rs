//! The tests that span crates, and what they share.
//!
//! Each crate keeps its own unit and semantics tests (`core/tests`,
//! `adapters/*/tests`); the tests here exercise more than one crate, or the
//! whole system under load:
//!
//! - `tests/differential.rs` (Linux): random operation sequences run on the
//!   kernel's own aio poll (`io_submit` with `IOCB_CMD_POLL`) and on
//!   `aiopoll-std`'s eventfd, pipe and `Fd` sources, every result compared;
//! - `tests/soak.rs`: many threads submit, cancel, wake, close queues, reap
//!   and drop contexts of the core at once; every request is accounted for
//!   exactly once (`cargo xtask test` runs a million requests, also under
//!   ThreadSanitizer);
//! - `tests/stress.rs`: the same on `aiopoll-std`'s shared context and its
//!   eventfd and pipe sources, threads against threads (also under Miri and
//!   ThreadSanitizer).
//!
//! This library holds what those tests share: [`Device`], a plain source.
//! It also runs the repository README's examples as doctests.

use core::sync::atomic::{AtomicU16, Ordering};

use aiopoll::{Events, PollTable, Source, SpinLock, WaitQueue};

/// A device with readiness bits and two wait queues, of which `poll`
/// registers on the first [`queues_used`](Self::queues_used). A test
/// changes the readiness ([`set_ready`](Self::set_ready)), then wakes or
/// closes the queues itself.
pub struct Device {
    ready: AtomicU16,
    /// The device's wait queues.
    pub queues: [WaitQueue; 2],
    /// How many of [`queues`](Self::queues) `poll` registers on (1 or 2).
    pub queues_used: usize,
}

impl Device {
    /// A device that nothing is ready on, whose requests wait on its first
    /// `queues_used` queues (at most 2).
    pub fn new(queues_used: usize) -> Self {
        Device {
            ready: AtomicU16::new(0),
            queues: [WaitQueue::new(), WaitQueue::new()],
            queues_used: queues_used.min(2),
        }
    }

    /// Sets what is ready (before a wakeup, as a driver changes state
    /// before it wakes).
    pub fn set_ready(&self, events: Events) {
        self.ready.store(events.bits(), Ordering::Release);
    }
}

impl Source for Device {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        for queue in &self.queues[..self.queues_used] {
            table.wait(queue);
        }
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }
}

/// The repository README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

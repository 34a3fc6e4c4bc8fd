//! What several of the adapter's test files share.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use aiopoll_std::aiopoll::{PollTable, Source};
use aiopoll_std::{Events, Lock, WaitQueue};

/// A source whose readiness the test sets: wakeups are keyed with what
/// became ready.
pub struct Flag {
    ready: AtomicU16,
    pub queue: WaitQueue,
}

impl Flag {
    pub fn new() -> Arc<Flag> {
        Arc::new(Flag {
            ready: AtomicU16::new(0),
            queue: WaitQueue::new(),
        })
    }

    /// Makes `events` ready (replacing what was) and wakes with them.
    pub fn raise(&self, events: Events) {
        self.ready.store(events.bits(), Ordering::Release);
        self.queue.wake(events);
    }
}

impl Source<Lock> for Flag {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.queue);
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }
}

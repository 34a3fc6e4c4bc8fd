//! [`EventCounter`]: eventfd(2) semantics (non-semaphore mode).

use std::sync::Arc;

use aiopoll::{Events, PollTable, Source};
use parking_lot::Mutex;

use crate::{AsSource, Lock, SharedSource, SourceError, WaitQueue};

/// The largest count an event counter holds (eventfd's `0xffff_ffff_ffff_fffe`).
const MAX_COUNT: u64 = u64::MAX - 1;

/// A 64-bit counter with the readiness and wakeups of a Linux eventfd in
/// non-semaphore mode:
///
/// - readable ([`Events::IN`]) while the count is above 0; writable
///   ([`Events::OUT`]) while adding 1 would not overflow; never `RDNORM` or
///   `WRNORM` (so a request for those alone waits for ERR/HUP only);
/// - a write wakes waiters with key `IN`, a read with key `OUT`;
/// - [`read`](Self::read) returns the count and clears it.
///
/// Share it between threads by reference or in an `Arc`. Dropping it closes
/// its wait queue: pending requests complete with
/// [`Outcome::SourceGone`](crate::Outcome::SourceGone).
#[derive(Debug)]
pub struct EventCounter {
    shared: Arc<CounterShared>,
}

#[derive(Debug)]
struct CounterShared {
    count: Mutex<u64>,
    queue: WaitQueue,
}

impl EventCounter {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::with_count(0)
    }

    /// A counter starting at `count` (clamped to the largest count).
    pub fn with_count(count: u64) -> Self {
        EventCounter {
            shared: Arc::new(CounterShared {
                count: Mutex::new(count.min(MAX_COUNT)),
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Adds `value` to the count (eventfd's `write`) and wakes readers with
    /// key `IN`. A write of 0 changes nothing and wakes nobody.
    ///
    /// # Errors
    /// - [`SourceError::InvalidValue`]: `value` is `u64::MAX`.
    /// - [`SourceError::WouldBlock`]: the count would exceed
    ///   `u64::MAX - 1`; read first.
    pub fn write(&self, value: u64) -> Result<(), SourceError> {
        if value == u64::MAX {
            return Err(SourceError::InvalidValue);
        }
        let mut result = Ok(());
        // The count changes under the queue's lock, where the key is sent:
        // a key always describes the state it was sent for (Linux keeps an
        // eventfd's count under its wait queue's lock). The tasks woken are
        // called once both locks are released: under the count's lock, a
        // woken task's `read` found it held and parked on it.
        self.shared.queue.wake_with(|| {
            let mut count = self.shared.count.lock();
            if MAX_COUNT - *count < value {
                result = Err(SourceError::WouldBlock);
                return None;
            }
            if value == 0 {
                return None;
            }
            *count += value;
            Some(Events::IN)
        });
        result
    }

    /// Takes the count and resets it to 0 (eventfd's `read`), waking
    /// writers with key `OUT`.
    ///
    /// # Errors
    /// [`SourceError::WouldBlock`]: the count is 0; poll for `IN` first.
    pub fn read(&self) -> Result<u64, SourceError> {
        // Reading until `WouldBlock` ends on an empty count: that answer
        // needs only the count's lock (it changes nothing, wakes nobody).
        if *self.shared.count.lock() == 0 {
            return Err(SourceError::WouldBlock);
        }
        let mut result = Err(SourceError::WouldBlock);
        // Under the queue's lock, as in `write`.
        self.shared.queue.wake_with(|| {
            let mut count = self.shared.count.lock();
            if *count == 0 {
                return None;
            }
            result = Ok(core::mem::take(&mut *count));
            Some(Events::OUT)
        });
        result
    }

    /// The count now (a snapshot).
    pub fn count(&self) -> u64 {
        *self.shared.count.lock()
    }

    /// The events ready now.
    pub fn readiness(&self) -> Events {
        self.shared.poll(&mut PollTable::readiness_only())
    }
}

impl Default for EventCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for EventCounter {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

impl Source<Lock> for CounterShared {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        // Registered first, then the count read (never with the queue's
        // lock held: `write` and `read` take the count's lock inside it).
        table.wait(&self.queue);
        let count = *self.count.lock();
        let mut ready = Events::empty();
        if count > 0 {
            ready |= Events::IN;
        }
        if count < MAX_COUNT {
            ready |= Events::OUT;
        }
        ready
    }
}

impl AsSource for EventCounter {
    fn as_source(&self) -> SharedSource {
        self.shared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::woken_unlocked::woken_with;

    #[test]
    fn a_task_woken_by_a_write_or_a_read_runs_with_the_count_s_lock_free() {
        // A woken task's first act is often a `read`: run under the lock,
        // it would find the lock held (and a waker that reads at once would
        // deadlock).
        let counter = EventCounter::new();
        let shared = counter.shared.clone();
        let written = woken_with(
            &counter,
            Events::IN,
            move || shared.count.try_lock().is_some(),
            || {
                counter.write(1).unwrap();
            },
        );
        assert_eq!(written, Some(true), "a write's wakeup, the lock free");
        let full = EventCounter::with_count(MAX_COUNT);
        let shared = full.shared.clone();
        let read = woken_with(
            &full,
            Events::OUT,
            move || shared.count.try_lock().is_some(),
            || assert_eq!(full.read(), Ok(MAX_COUNT)),
        );
        assert_eq!(read, Some(true), "a read's wakeup, the lock free");
    }
}

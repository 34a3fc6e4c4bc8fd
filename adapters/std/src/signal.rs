//! [`Signal`]: the context's [`Notify`] hooks, and how reapers block on them.
//!
//! An *epoch* counts notifications. A reaper reads the epoch, reaps, and if
//! it still needs completions, sleeps until the epoch moves. The hooks run
//! with aiopoll locks held (maybe inside a wakeup), so they only bump the
//! epoch and, when a reaper is asleep, take a leaf mutex for an instant to
//! notify the condition variable. That mutex is never held while an aiopoll
//! lock is taken, so the hooks cannot deadlock with anything.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use aiopoll::Notify;
use parking_lot::{Condvar, Mutex};

/// Wakes threads blocked in `get_events` when a completion is queued or
/// deferred work is pending.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    epoch: AtomicU64,
    /// Threads inside `get_events` that may sleep.
    sleepers: AtomicUsize,
    /// A leaf lock: held only to check the epoch and to notify.
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Signal {
    /// Announces that the caller may sleep soon; returns a guard that
    /// retracts it.
    pub(crate) fn sleeper(&self) -> Sleeper<'_> {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        Sleeper { signal: self }
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // If the sleeper count reads 0, every sleeper that comes later
        // reads its epoch after this increment (both are SeqCst), so it
        // sees what this notification announces when it reaps.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a sleeper's
            // check-then-wait: either it saw the new epoch, or it is already
            // waiting on the condvar.
            drop(self.lock.lock());
            self.condvar.notify_all();
        }
    }
}

/// A thread in `get_events`, registered as a possible sleeper.
pub(crate) struct Sleeper<'a> {
    signal: &'a Signal,
}

impl Sleeper<'_> {
    /// The epoch now: read it *before* looking for completions.
    pub(crate) fn epoch(&self) -> u64 {
        self.signal.epoch.load(Ordering::SeqCst)
    }

    /// Sleeps until the epoch differs from `seen` or `deadline` passes
    /// (`None`: no deadline). May return early (spurious wakeup).
    pub(crate) fn wait(&self, seen: u64, deadline: Option<Instant>) {
        let mut guard = self.signal.lock.lock();
        if self.signal.epoch.load(Ordering::SeqCst) != seen {
            return;
        }
        match deadline {
            Some(deadline) => {
                self.signal.condvar.wait_until(&mut guard, deadline);
            }
            None => self.signal.condvar.wait(&mut guard),
        }
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.signal.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Notify for Signal {
    fn deferred_work(&self) {
        self.bump();
    }

    fn completed(&self) {
        self.bump();
    }
}

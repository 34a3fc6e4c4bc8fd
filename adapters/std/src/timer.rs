//! [`Timer`]: a one-shot timer source, readable once expired; every timer
//! of the program is driven by one timer thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use aiopoll::{Events, PollTable, Source};
use parking_lot::{Condvar, Mutex};

use crate::{AsSource, Lock, SharedSource, SourceError, WaitQueue};

/// A one-shot timer, like a timerfd without an interval: readable
/// ([`Events::IN`]) once the duration given to [`arm`](Self::arm) has
/// passed, until it is [read](Self::read), re-armed or disarmed. Expiry
/// wakes its waiters with key `IN`.
///
/// One thread (started on the first [`arm`](Self::arm), gone again when no
/// timer is armed) serves every timer. Dropping a timer disarms it and
/// closes its wait queue: pending requests complete with
/// [`Outcome::SourceGone`](crate::Outcome::SourceGone).
#[derive(Debug)]
pub struct Timer {
    shared: Arc<TimerShared>,
}

#[derive(Debug)]
struct TimerShared {
    /// This timer's key in the timer thread's heap.
    id: u64,
    state: Mutex<TimerState>,
    queue: WaitQueue,
}

#[derive(Debug, Default)]
struct TimerState {
    /// Bumped by every arm and disarm: an expiry of an older arming is
    /// ignored.
    generation: u64,
    deadline: Option<Instant>,
    expired: bool,
}

impl Timer {
    /// A disarmed timer.
    pub fn new() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Timer {
            shared: Arc::new(TimerShared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(TimerState::default()),
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Arms the timer to expire `after` from now, replacing any earlier
    /// arming and clearing an expiry not yet read. A zero duration expires
    /// at once.
    ///
    /// # Errors
    /// [`SourceError::NoTimerThread`]: the timer thread could not be
    /// started; the timer stays disarmed.
    pub fn arm(&self, after: Duration) -> Result<(), SourceError> {
        // The driver is updated under the timer's lock (lock order: a
        // timer's lock, then the driver's), so concurrent arms leave the
        // heap with the entry of the arming that won.
        let mut state = self.shared.state.lock();
        state.generation += 1;
        state.expired = false;
        state.deadline = Instant::now().checked_add(after);
        let Some(deadline) = state.deadline.filter(|_| !after.is_zero()) else {
            driver().cancel(self.shared.id);
            if after.is_zero() {
                state.expired = true;
                state.deadline = None;
                self.shared.queue.wake(Events::IN);
            }
            // Else too far in the future to represent: it never expires.
            return Ok(());
        };
        let scheduled = driver().schedule(Entry {
            deadline,
            id: self.shared.id,
            generation: state.generation,
            timer: Arc::downgrade(&self.shared),
        });
        if scheduled.is_err() {
            state.generation += 1;
            state.deadline = None;
        }
        scheduled
    }

    /// Disarms the timer and clears an expiry not yet read.
    pub fn disarm(&self) {
        let mut state = self.shared.state.lock();
        state.generation += 1;
        state.expired = false;
        state.deadline = None;
        driver().cancel(self.shared.id);
    }

    /// Whether the timer has expired (and has not been read, re-armed or
    /// disarmed since).
    pub fn is_expired(&self) -> bool {
        self.shared.state.lock().expired
    }

    /// Takes the expiry, like reading a timerfd: returns the number of
    /// expirations (1) and makes the timer unreadable until armed again.
    ///
    /// # Errors
    /// [`SourceError::WouldBlock`]: the timer has not expired; poll for
    /// `IN` first.
    pub fn read(&self) -> Result<u64, SourceError> {
        let mut state = self.shared.state.lock();
        if !state.expired {
            return Err(SourceError::WouldBlock);
        }
        state.expired = false;
        state.deadline = None;
        Ok(1)
    }

    /// The events ready now.
    pub fn readiness(&self) -> Events {
        self.shared.poll(&mut PollTable::readiness_only())
    }
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.disarm();
        self.shared.queue.close();
    }
}

impl Source<Lock> for TimerShared {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.queue);
        if self.state.lock().expired {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

impl TimerShared {
    /// Called by the timer thread when `generation`'s deadline has passed.
    fn expire(&self, generation: u64) {
        let mut state = self.state.lock();
        if state.generation == generation && !state.expired {
            state.expired = true;
            state.deadline = None;
            // Woken under the timer's lock: a re-arm cannot slip between.
            self.queue.wake(Events::IN);
        }
    }
}

impl AsSource for Timer {
    fn as_source(&self) -> SharedSource {
        self.shared.clone()
    }
}

/// One armed timer in the timer thread's heap.
#[derive(Debug)]
struct Entry {
    deadline: Instant,
    id: u64,
    generation: u64,
    timer: Weak<TimerShared>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.id) == (other.deadline, other.id)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.deadline, self.id).cmp(&(other.deadline, other.id))
    }
}

/// The timer thread's state: at most one entry per timer.
#[derive(Debug, Default)]
struct Driver {
    state: Mutex<DriverState>,
    condvar: Condvar,
}

#[derive(Debug, Default)]
struct DriverState {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Whether the timer thread is running (it exits when the heap empties).
    running: bool,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(Driver::default)
}

impl Driver {
    /// Replaces `entry.id`'s entry with `entry`; starts the thread if it
    /// is not running.
    fn schedule(&'static self, entry: Entry) -> Result<(), SourceError> {
        let mut state = self.state.lock();
        state.heap.retain(|Reverse(old)| old.id != entry.id);
        state.heap.push(Reverse(entry));
        if state.running {
            self.condvar.notify_one();
            return Ok(());
        }
        std::thread::Builder::new()
            .name("aiopoll-timer".into())
            .spawn(move || self.run())
            .map_err(|_| SourceError::NoTimerThread)?;
        state.running = true;
        Ok(())
    }

    /// Removes `id`'s entry, if any; an idle thread then exits.
    fn cancel(&self, id: u64) {
        let mut state = self.state.lock();
        let before = state.heap.len();
        state.heap.retain(|Reverse(entry)| entry.id != id);
        if state.heap.len() != before {
            self.condvar.notify_one();
        }
    }

    /// The timer thread: expires due timers, sleeps until the next
    /// deadline, and exits when no timer is armed.
    fn run(&self) {
        let mut due = Vec::new();
        loop {
            {
                let mut state = self.state.lock();
                loop {
                    let now = Instant::now();
                    match state.heap.peek() {
                        None if !due.is_empty() => break,
                        None => {
                            state.running = false;
                            return;
                        }
                        Some(Reverse(entry)) if entry.deadline <= now => {
                            if let Some(Reverse(entry)) = state.heap.pop() {
                                due.push(entry);
                            }
                        }
                        Some(Reverse(entry)) => {
                            if !due.is_empty() {
                                break;
                            }
                            let deadline = entry.deadline;
                            self.condvar.wait_until(&mut state, deadline);
                        }
                    }
                }
            }
            // Expire outside the driver's lock (lock order: a timer's lock,
            // then the driver's, as in `arm`, never the other way).
            for entry in due.drain(..) {
                if let Some(timer) = entry.timer.upgrade() {
                    timer.expire(entry.generation);
                }
            }
        }
    }
}

//! [`Timer`]: a one-shot timer source, readable once expired; every timer
//! of the program is driven by one timer thread (see [`Timer`]).

use std::collections::BTreeMap;
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
/// Dropping a timer disarms it and closes its wait queue: pending requests
/// complete with [`Outcome::SourceGone`](crate::Outcome::SourceGone).
///
/// # Requests across a re-arm
///
/// A request pending on a timer survives [`arm`](Self::arm) and
/// [`disarm`](Self::disarm): it stays pending, and completes when the
/// deadline of the latest arming passes. But a completion that was already
/// queued before a re-arm (the old deadline passed, nobody had reaped it
/// yet) stays queued, and is stale: the re-arm cleared the expiry it
/// reports. So when a timer's completion is reaped, check
/// [`is_expired`](Self::is_expired) (or [`read`](Self::read)) before acting
/// on it, and submit again if it says no.
///
/// # The timer thread, and what a timer costs
///
/// One thread (`aiopoll-timer`, started on the first [`arm`](Self::arm),
/// gone again when no timer is armed) serves every timer of the program
/// from one schedule ordered by deadline. [`arm`](Self::arm) and
/// [`disarm`](Self::disarm) cost O(log n) in the number of armed timers (a
/// few hundred nanoseconds with 100,000 armed: BENCHMARKS.md has the
/// curve), and wake the thread only when the earliest deadline moves
/// earlier, so re-arming timers to later deadlines costs the thread
/// nothing. An expiry costs the thread one keyed wakeup of the timer's
/// queue, which completes its requests inline.
///
/// A server with an idle timeout per connection need not re-arm at every
/// read: note when the peer was last heard from, and when the timer fires,
/// close the connection or arm it for the time left (the `echo_server`
/// example does this).
#[derive(Debug)]
pub struct Timer {
    shared: Arc<TimerShared>,
}

#[derive(Debug)]
struct TimerShared {
    /// This timer's tie-breaker in the timer thread's schedule.
    id: u64,
    state: Mutex<TimerState>,
    queue: WaitQueue,
}

#[derive(Debug, Default)]
struct TimerState {
    /// Bumped by every arm and disarm: an expiry of an older arming is
    /// ignored.
    generation: u64,
    /// While armed: the deadline, which is also the key of this timer's
    /// entry in the schedule, `(deadline, id)` (the timer thread may have
    /// taken the entry out already, to expire it).
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
    /// at once. Pending requests stay pending (a completion queued before
    /// this call is stale: see the type's docs). O(log n) in the number of
    /// armed timers; it wakes the timer thread only if this deadline is
    /// earlier than every other.
    ///
    /// # Errors
    /// [`SourceError::NoTimerThread`]: the timer thread could not be
    /// started; the timer stays disarmed.
    pub fn arm(&self, after: Duration) -> Result<(), SourceError> {
        if after.is_zero() {
            // Expired at once: the state changes under the queue's lock,
            // where the key is sent, and the woken tasks run once every
            // lock is released (lock order: the queue's lock, the timer's,
            // the driver's).
            self.shared.queue.wake_with(|| {
                let mut state = self.shared.state.lock();
                state.generation += 1;
                if let Some(old) = state.deadline.take() {
                    driver().cancel(old, self.shared.id);
                }
                state.expired = true;
                Some(Events::IN)
            });
            return Ok(());
        }
        // The driver is updated under the timer's lock (lock order: a
        // timer's lock, then the driver's), so concurrent arms leave the
        // schedule with the entry of the arming that won.
        let mut state = self.shared.state.lock();
        state.generation += 1;
        state.expired = false;
        // The key of this timer's entry in the schedule, if it has one.
        let old = state.deadline.take();
        let Some(deadline) = Instant::now().checked_add(after) else {
            if let Some(old) = old {
                driver().cancel(old, self.shared.id);
            }
            // Too far in the future to represent: it never expires.
            return Ok(());
        };
        let entry = Entry {
            generation: state.generation,
            timer: Arc::downgrade(&self.shared),
        };
        driver().schedule(old, self.shared.id, deadline, entry)?;
        state.deadline = Some(deadline);
        Ok(())
    }

    /// Disarms the timer and clears an expiry not yet read. O(log n) in
    /// the number of armed timers; it never wakes the timer thread (except
    /// to let it exit when this was the last armed timer).
    pub fn disarm(&self) {
        let mut state = self.shared.state.lock();
        state.generation += 1;
        state.expired = false;
        if let Some(old) = state.deadline.take() {
            driver().cancel(old, self.shared.id);
        }
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
        // The expiry and its key under the queue's lock (a re-arm cannot
        // slip between them); the woken tasks run once every lock is
        // released, so a task that re-arms finds the timer's lock free.
        self.queue.wake_with(|| {
            let mut state = self.state.lock();
            if state.generation != generation || state.expired {
                return None;
            }
            state.expired = true;
            state.deadline = None;
            Some(Events::IN)
        });
    }
}

impl AsSource for Timer {
    fn as_source(&self) -> SharedSource {
        self.shared.clone()
    }
}

/// An armed timer in the timer thread's schedule, under the key
/// `(deadline, id)`.
#[derive(Debug)]
struct Entry {
    generation: u64,
    timer: Weak<TimerShared>,
}

/// The timer thread's state.
#[derive(Debug, Default)]
struct Driver {
    state: Mutex<DriverState>,
    condvar: Condvar,
}

#[derive(Debug, Default)]
struct DriverState {
    /// Every armed timer, earliest deadline first, at most one entry per
    /// timer (its key is the deadline in its [`TimerState`]): inserting
    /// and removing cost O(log n).
    schedule: BTreeMap<(Instant, u64), Entry>,
    /// Whether the timer thread is running (it exits when nothing is
    /// armed).
    running: bool,
    /// The deadline the timer thread is waiting for, while it waits (`None`
    /// while it runs: it looks at the schedule again before it waits).
    /// Arming wakes it only for a deadline before this one.
    sleeping_until: Option<Instant>,
    /// How many times arming or disarming woke the thread (for tests).
    notified: u64,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(Driver::default)
}

impl Driver {
    /// Replaces `id`'s entry (under the key `(old, id)`, if `old` is
    /// given) with `entry` due at `deadline`; starts the thread if it is not
    /// running. O(log n); the thread is woken only when `deadline` comes
    /// before the one it waits for.
    fn schedule(
        &'static self,
        old: Option<Instant>,
        id: u64,
        deadline: Instant,
        entry: Entry,
    ) -> Result<(), SourceError> {
        let mut state = self.state.lock();
        if let Some(old) = old {
            state.schedule.remove(&(old, id));
        }
        state.schedule.insert((deadline, id), entry);
        if state.running {
            if state.sleeping_until.is_some_and(|until| deadline < until) {
                // It will look at the schedule again before it next waits.
                state.sleeping_until = None;
                state.notified += 1;
                self.condvar.notify_one();
            }
            return Ok(());
        }
        let spawned = std::thread::Builder::new()
            .name("aiopoll-timer".into())
            .spawn(move || self.run());
        if spawned.is_err() {
            state.schedule.remove(&(deadline, id));
            return Err(SourceError::NoTimerThread);
        }
        state.running = true;
        Ok(())
    }

    /// Removes `id`'s entry due at `deadline`, if it is still there. O(log
    /// n); wakes the thread only if nothing is left armed, so that it exits.
    fn cancel(&self, deadline: Instant, id: u64) {
        let mut state = self.state.lock();
        if state.schedule.remove(&(deadline, id)).is_some()
            && state.schedule.is_empty()
            && state.sleeping_until.is_some()
        {
            state.sleeping_until = None;
            state.notified += 1;
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
                    match state.schedule.first_key_value() {
                        None if !due.is_empty() => break,
                        None => {
                            state.running = false;
                            return;
                        }
                        Some((&(deadline, _), _)) if deadline <= now => {
                            if let Some((_, entry)) = state.schedule.pop_first() {
                                due.push(entry);
                            }
                        }
                        Some((&(deadline, _), _)) => {
                            if !due.is_empty() {
                                break;
                            }
                            state.sleeping_until = Some(deadline);
                            self.condvar.wait_until(&mut state, deadline);
                            state.sleeping_until = None;
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

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::woken_unlocked::woken_with;
    use crate::StdContext;

    #[test]
    fn a_task_woken_by_an_expiry_runs_with_the_timer_s_lock_free() {
        // A woken task often re-arms its timer at once.
        let timer = Timer::new();
        let shared = timer.shared.clone();
        let woken = woken_with(
            &timer,
            Events::IN,
            move || shared.state.try_lock().is_some(),
            || timer.arm(Duration::ZERO).unwrap(),
        );
        assert_eq!(woken, Some(true), "an expiry at once, the lock free");
        // The timer thread's expiry: armed for a moment and let expire.
        let timer = Timer::new();
        let shared = timer.shared.clone();
        let generation = shared.state.lock().generation;
        let woken = woken_with(
            &timer,
            Events::IN,
            move || shared.state.try_lock().is_some(),
            || timer.shared.expire(generation),
        );
        assert_eq!(woken, Some(true), "the thread's expiry, the lock free");
    }

    /// A driver of the test's own, so other tests' timers do not count.
    fn private_driver() -> &'static Driver {
        Box::leak(Box::default())
    }

    /// Waits (yielding) until the driver's thread waits for a deadline.
    fn until_asleep(driver: &Driver) {
        while driver.state.lock().sleeping_until.is_none() {
            std::thread::yield_now();
        }
    }

    #[test]
    fn arming_and_disarming_later_deadlines_never_wakes_the_thread() {
        let driver = private_driver();
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let earliest = now + hour;
        driver
            .schedule(
                None,
                0,
                earliest,
                Entry {
                    generation: 0,
                    timer: Weak::new(),
                },
            )
            .unwrap();
        until_asleep(driver);
        // 10,000 timers armed later than the earliest, then 20,000 re-arms
        // and 1,000 disarms among them: the thread's wait stands.
        let mut deadlines = vec![earliest];
        for id in 1..=10_000u64 {
            let deadline = now + 2 * hour + Duration::from_micros(id * 7919 % 10_007);
            let entry = Entry {
                generation: 0,
                timer: Weak::new(),
            };
            driver.schedule(None, id, deadline, entry).unwrap();
            deadlines.push(deadline);
        }
        for round in 0..20_000u64 {
            let id = 1 + round * 31 % 10_000;
            let deadline = now + 3 * hour + Duration::from_micros(round);
            let entry = Entry {
                generation: 0,
                timer: Weak::new(),
            };
            let old = deadlines[id as usize];
            driver.schedule(Some(old), id, deadline, entry).unwrap();
            deadlines[id as usize] = deadline;
        }
        for id in 1..=1_000u64 {
            driver.cancel(deadlines[id as usize], id);
        }
        let state = driver.state.lock();
        assert_eq!(state.notified, 0);
        assert_eq!(state.schedule.len(), 9_001, "one entry per armed timer");
        assert_eq!(state.sleeping_until, Some(earliest));
    }

    #[test]
    fn an_earlier_deadline_wakes_the_thread_once_and_expires_in_time() {
        let driver = private_driver();
        let far = Timer::new();
        let far_deadline = Instant::now() + Duration::from_secs(3600);
        let entry = Entry {
            generation: 0,
            timer: Arc::downgrade(&far.shared),
        };
        driver
            .schedule(None, far.shared.id, far_deadline, entry)
            .unwrap();
        until_asleep(driver);

        let near = Timer::new();
        let context = StdContext::<2>::new();
        context.submit(&near, Events::IN, 1).unwrap();
        let near_deadline = Instant::now() + Duration::from_millis(1);
        let entry = Entry {
            generation: 0,
            timer: Arc::downgrade(&near.shared),
        };
        driver
            .schedule(None, near.shared.id, near_deadline, entry)
            .unwrap();
        assert_eq!(driver.state.lock().notified, 1);
        // Without that wakeup the thread would sleep for an hour.
        let done = context.get_events(1, 1, None).unwrap();
        assert_eq!(done[0].outcome, crate::Outcome::Ready(Events::IN));
        assert!(Instant::now() >= near_deadline);
        assert!(near.is_expired() && !far.is_expired());

        // Disarming the last armed timer lets the thread exit.
        driver.cancel(far_deadline, far.shared.id);
        while driver.state.lock().running {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_request_survives_a_rearm_and_completes_at_the_new_deadline() {
        let context = StdContext::<2>::new();
        let timer = Timer::new();
        timer.arm(Duration::from_secs(3600)).unwrap();
        context.submit(&timer, Events::IN, 1).unwrap();
        let rearmed = Instant::now();
        timer.arm(Duration::from_millis(2)).unwrap();
        let done = context.get_events(1, 1, None).unwrap();
        assert_eq!(done[0].outcome, crate::Outcome::Ready(Events::IN));
        assert!(rearmed.elapsed() >= Duration::from_millis(2));
        assert_eq!(timer.read(), Ok(1));
    }
}

//! [`Signal`]: the context's [`Notify`] hooks, how reapers block on them,
//! and how they wake the context's deferred-work thread.
//!
//! An *epoch* counts notifications, on the context's [`Bell`], while
//! reapers are registered as waiters (without them a notification is one
//! load). A reaper that found too few completions registers, reads the
//! epoch, reaps again, and if it still needs completions, waits until the
//! epoch moves: spinning a moment, then on the bell's condition variable,
//! or (Linux, once an `Fd` exists) in the OS poller, with the bell's
//! `in_poller` flag raised so that a notification ends that wait too (see
//! `handoff.rs`). The hooks run
//! with aiopoll locks held (maybe inside a wakeup), so they only bump the
//! epoch and, when a reaper is asleep, take a leaf mutex for an instant to
//! notify the condition variable, or write the poller's eventfd. That mutex
//! is never held while an aiopoll lock is taken, so the hooks cannot
//! deadlock with anything. Deferred work also unparks the context's worker
//! thread (an atomic swap, and a futex wake when it sleeps): it neither
//! blocks nor allocates.
//!
//! Deadlines: the hooks keep the earliest deadline armed (an atomic
//! `fetch_min`) and unpark the worker when it moves earlier; the worker
//! sleeps until it and then calls the core's `expire`.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use aiopoll::Notify;
use parking_lot::{Condvar, Mutex};

/// Wakes threads blocked in `get_events` when a completion is queued or
/// deferred work is pending, and keeps the earliest request deadline for
/// the context's thread.
#[derive(Debug)]
pub(crate) struct Signal {
    /// Where the context's reapers sleep; shared, so that the OS poller's
    /// hand-off can ring it.
    bell: Arc<Bell>,
    /// The thread that runs the context's deferred work, once started.
    worker: OnceLock<Thread>,
    /// Tells the worker to exit.
    stopping: AtomicBool,
    /// Tick 0 of the context's deadlines: a tick is a nanosecond after it.
    clock_start: Instant,
    /// The earliest deadline (in ticks) that `expire` must run by, as far as
    /// the hooks were told; [`NO_DEADLINE`]: none.
    next_deadline: AtomicU64,
    /// The completion descriptor (an eventfd), once somebody asked for it.
    #[cfg(target_os = "linux")]
    completion_fd: OnceLock<OwnedFd>,
    /// The completion descriptor was written since it was last drained: a
    /// completion need not write it again.
    #[cfg(target_os = "linux")]
    fd_signalled: AtomicBool,
    /// While the completion descriptor exists: an event loop, not a
    /// reaper, waits for this context's completions, so the OS poller must
    /// be driven at once whenever no reaper waits in it.
    #[cfg(target_os = "linux")]
    fd_demand: OnceLock<crate::fd::Demand>,
}

/// [`Signal::next_deadline`] when no request has a deadline.
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

impl Signal {
    /// Hooks with no worker yet, whose deadline clock starts now.
    pub(crate) fn new() -> Self {
        Signal {
            bell: Arc::new(Bell {
                epoch: AtomicU64::new(0),
                waiters: AtomicUsize::new(0),
                sleepers: AtomicUsize::new(0),
                lock: Mutex::new(()),
                condvar: Condvar::new(),
                in_poller: AtomicBool::new(false),
                ringer_cpu: AtomicUsize::new(NO_CPU),
            }),
            worker: OnceLock::new(),
            stopping: AtomicBool::new(false),
            clock_start: Instant::now(),
            next_deadline: AtomicU64::new(NO_DEADLINE),
            #[cfg(target_os = "linux")]
            completion_fd: OnceLock::new(),
            #[cfg(target_os = "linux")]
            fd_signalled: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            fd_demand: OnceLock::new(),
        }
    }

    /// The completion descriptor, made on the first call: an eventfd that
    /// [`Notify::completed`] makes readable and [`drain_fd`](Self::drain_fd)
    /// empties.
    #[cfg(target_os = "linux")]
    pub(crate) fn completion_fd(&self) -> std::io::Result<BorrowedFd<'_>> {
        if let Some(fd) = self.completion_fd.get() {
            return Ok(fd.as_fd());
        }
        // SAFETY: eventfd(2) takes no pointers; the flags are valid.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // If another thread set one first, ours is closed here.
        let _ = self.completion_fd.set(fd);
        self.fd_demand.get_or_init(crate::fd::Demand::new);
        let fd = self.completion_fd.get().map(|fd| fd.as_fd());
        fd.ok_or_else(|| std::io::Error::other("the completion descriptor vanished"))
    }

    /// Whether somebody asked for the completion descriptor.
    pub(crate) fn has_completion_fd(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.completion_fd.get().is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Makes the completion descriptor readable, if there is one and it is
    /// not signalled already: one `write(2)` of a non-blocking eventfd,
    /// which neither blocks nor allocates, as a hook must not.
    pub(crate) fn signal_fd(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.completion_fd.get() {
            if !self.fd_signalled.swap(true, Ordering::SeqCst) {
                let one = 1u64.to_ne_bytes();
                // SAFETY: `one` is 8 readable bytes, what an eventfd write
                // takes; the descriptor is ours and open. It cannot fail
                // but for a counter near its maximum, which writes of 1
                // between drains never reach.
                let _ = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
            }
        }
    }

    /// Empties the completion descriptor before a reap: whatever is queued
    /// until the reap is reaped by it, and a completion queued later writes
    /// the descriptor again (it finds `fd_signalled` clear), so none is
    /// left without the descriptor readable. Reads even when the flag is
    /// clear: a completion whose write came after an earlier drain's read
    /// (and whose flag that drain then cleared) left the descriptor readable
    /// for a completion reaped already, and a level-triggered event loop
    /// would otherwise see it readable until the next completion.
    pub(crate) fn drain_fd(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.completion_fd.get() {
            let mut count = [0u8; 8];
            // SAFETY: `count` is 8 writable bytes, what an eventfd read
            // takes; the descriptor is ours and open. Non-blocking: an
            // empty counter gives EAGAIN, which is fine.
            let _ = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
            // After the read: a completion whose write came before it was
            // drained by it and is reaped next; one that finds the flag
            // clear after this store writes again.
            self.fd_signalled.store(false, Ordering::SeqCst);
        }
    }

    /// `at` in the ticks of the context's deadlines (an instant before the
    /// context was made is tick 0; one too far away to count is the last
    /// tick, never reached).
    pub(crate) fn ticks(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.clock_start).as_nanos();
        u64::try_from(nanos).map_or(NO_DEADLINE - 1, |nanos| nanos.min(NO_DEADLINE - 1))
    }

    /// The instant of tick `ticks` (`None`: too far away to represent).
    pub(crate) fn instant(&self, ticks: u64) -> Option<Instant> {
        self.clock_start.checked_add(Duration::from_nanos(ticks))
    }

    /// The earliest deadline the hooks know of ([`NO_DEADLINE`]: none). It
    /// may be one whose request has completed since: expiring then finds
    /// nothing, and the next one is programmed.
    pub(crate) fn next_deadline(&self) -> u64 {
        self.next_deadline.load(Ordering::SeqCst)
    }

    /// Forgets the programmed deadline, before `expire` runs and the next one
    /// is programmed from what the core still has.
    pub(crate) fn clear_deadline(&self) {
        self.next_deadline.store(NO_DEADLINE, Ordering::SeqCst);
    }

    /// Makes sure `expire` runs by `deadline`: if it is earlier than the one
    /// programmed, wakes the worker (which sleeps until the earliest
    /// deadline) or, without a worker, the reapers (which then sleep no
    /// longer than until it).
    pub(crate) fn program(&self, deadline: u64) {
        if deadline < self.next_deadline.fetch_min(deadline, Ordering::SeqCst) {
            match self.worker.get() {
                Some(worker) => worker.unpark(),
                None => self.bump(),
            }
        }
    }

    /// The context's bell, where its reapers sleep.
    pub(crate) fn bell(&self) -> &Arc<Bell> {
        &self.bell
    }

    /// Makes `worker` the thread that [`Notify::deferred_work`] unparks.
    pub(crate) fn set_worker(&self, worker: Thread) {
        // Set once, by the context's constructor.
        let _ = self.worker.set(worker);
    }

    /// Tells the worker to exit, and wakes it so that it sees this.
    pub(crate) fn stop_worker(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.get() {
            worker.unpark();
        }
    }

    /// Whether the worker should exit (read after every unpark).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.bell.ring();
    }

    /// Has deferred work run at once, by the context's thread (or, without
    /// it, by the next reap), and wakes the reapers, which may run it first.
    pub(crate) fn wake_worker(&self) {
        match self.worker.get() {
            Some(worker) => worker.unpark(),
            // Without the worker, a reap runs it: an event loop watching
            // the completion descriptor must reap.
            None => self.signal_fd(),
        }
        self.bump();
    }
}

/// Where a context's reapers sleep: an epoch that counts notifications,
/// and a condition variable for those that sleep on it. A reaper that waits
/// in the OS poller instead (it holds the poller's role) sets `in_poller`,
/// and a notification then ends its `epoll_wait` too.
#[derive(Debug)]
pub(crate) struct Bell {
    epoch: AtomicU64,
    /// Reapers that found too few completions and will wait for the epoch
    /// to move ([`Waiting`] guards). While there are none, a notification
    /// costs one load: nobody needs the epoch to move.
    waiters: AtomicUsize,
    /// Threads asleep on the condition variable, or about to check the
    /// epoch a last time before they sleep (not those that only spin).
    sleepers: AtomicUsize,
    /// A leaf lock: held only to check the epoch and to notify.
    lock: Mutex<()>,
    condvar: Condvar,
    /// A reaper of this context waits in the OS poller (or is about to).
    in_poller: AtomicBool,
    /// The CPU the last notification to a waiter came from
    /// ([`NO_CPU`] if not known): see [`spin`](Self::spin).
    ringer_cpu: AtomicUsize,
}

impl Bell {
    /// The epoch now: read it *before* looking for completions, and only
    /// while registered as a waiter (see [`register`](Self::register)).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Registers the caller as a waiter, until the guard is dropped: from
    /// now on every notification moves the epoch. A reaper registers once
    /// it has found too few completions, then reads the epoch and looks
    /// again before it waits: a completion queued before the registration
    /// is found by that look, any later one moves the epoch. (A completion
    /// is queued, and rings, under the context lock, which the look takes:
    /// if the look comes after, it finds the completion; if before, the
    /// registration came before the ring, which then sees it. A deferral
    /// rings without that lock: see `deferred_work`, and the fence here.)
    pub(crate) fn register(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Orders the registration before the look's read of the core's
        // deferred flag (the other half is the fence in `deferred_work`).
        fence(Ordering::SeqCst);
        Waiting { bell: self }
    }

    /// Announces a notification to the registered waiters: moves the epoch,
    /// wakes those asleep on the condition variable, and the one waiting in
    /// the OS poller. Without waiters it only looks at their count: a
    /// reaper that takes its completions as they come never pays for the
    /// others' notifications.
    pub(crate) fn ring(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        // A hint for the waiters' spin (ordered by nothing: a stale CPU
        // only makes one wait spin longer or shorter).
        self.ringer_cpu
            .store(current_cpu().unwrap_or(NO_CPU), Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // If the sleeper count reads 0, every sleeper that comes later
        // reads the epoch after this increment (both are SeqCst) before it
        // sleeps, so it sees the move and does not sleep.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a sleeper's
            // check-then-wait: either it saw the new epoch, or it is already
            // waiting on the condvar.
            drop(self.lock.lock());
            self.condvar.notify_all();
        }
        // The same for a reaper in the OS poller: it sets the flag, then
        // reads the epoch (both SeqCst), so either it sees this increment
        // and does not wait, or this load sees the flag and ends its wait.
        // Only then does a notification cost a system call.
        #[cfg(target_os = "linux")]
        if self.in_poller.load(Ordering::SeqCst) {
            crate::fd::notify_poller();
        }
    }

    /// A reaper of this context is about to wait in the OS poller (`true`),
    /// or is done with it (`false`). Set it before reading the epoch a last
    /// time: see [`ring`](Self::ring).
    pub(crate) fn set_in_poller(&self, waiting: bool) {
        self.in_poller.store(waiting, Ordering::SeqCst);
    }

    /// Watches the epoch for a moment ([`SPIN`]), then sleeps until it
    /// differs from `seen` or `deadline` passes (`None`: no deadline). May
    /// return early (spurious wakeup).
    pub(crate) fn wait(&self, seen: u64, deadline: Option<Instant>) {
        if self.spin(seen, deadline) {
            return;
        }
        // Counted before the last look at the epoch (see `ring`), and only
        // now: a ring while reapers merely spin costs no lock.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock();
        if self.epoch.load(Ordering::SeqCst) == seen {
            match deadline {
                Some(deadline) => {
                    self.condvar.wait_until(&mut guard, deadline);
                }
                None => self.condvar.wait(&mut guard),
            }
        }
        drop(guard);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Watches the epoch for at most [`SPIN`] (and not past `deadline`);
    /// returns whether it moved from `seen`.
    fn spin(&self, seen: u64, deadline: Option<Instant>) -> bool {
        if SPIN.is_zero() {
            return false;
        }
        let now = Instant::now();
        let until = match deadline {
            Some(deadline) => deadline.min(now + SPIN),
            None => now + SPIN,
        };
        // If the last notification came from this very CPU, whoever sends
        // the next one most likely waits for this CPU too: pausing only
        // delays it, so yield after every look.
        let ringer = self.ringer_cpu.load(Ordering::Relaxed);
        let batch = if ringer != NO_CPU && current_cpu() == Some(ringer) {
            1
        } else {
            SPIN_BATCH
        };
        loop {
            // The clock is read once per batch (a few hundred nanoseconds):
            // it costs more than a check.
            for _ in 0..batch {
                if self.epoch.load(Ordering::SeqCst) != seen {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return false;
            }
            // Let a thread that is ready to run (maybe the one that will
            // complete our request) have this CPU: threads may outnumber
            // the cores.
            std::thread::yield_now();
        }
    }
}

/// How long a reaper watches the epoch before it sleeps. A completion from
/// another thread usually lands within microseconds, and sleeping costs a
/// futex round trip plus the wake-up latency of a CPU that went idle, tens
/// of microseconds on these virtual machines: `cargo xtask bench --filter
/// ping-pong/` measured 41 µs per round trip sleeping at once, about 2 µs
/// with this spin. The spin yields the CPU between batches, so threads that
/// outnumber the cores still get to run (`--filter contention/`: 2.7 to
/// 6.9 µs per round before, 0.14 to 0.6 µs with it; 6.9 µs spinning without
/// yielding). Bounded, so an idle reaper still goes to sleep within it.
/// Under Miri (a virtual clock, every step interpreted) it sleeps at once.
const SPIN: Duration = if cfg!(miri) {
    Duration::ZERO
} else {
    Duration::from_micros(20)
};

/// How many pauses a spinning reaper makes between two yields (about
/// 1.3 us on these VMs, where a pause takes about 42 ns): a completion from
/// a thread on another CPU usually lands sooner, and then the reaper never
/// gives the CPU away. When the last notification came from the reaper's
/// own CPU, it yields after every look instead: the thread it waits for
/// needs that CPU, and each pause only delays it. In the ping-pong
/// benchmark with both threads on one CPU (`taskset -c 1`) that took the
/// median round trip from 4.6 to 3.1 us (a `Condvar` pair: 3.7 us).
const SPIN_BATCH: u32 = 32;

/// [`Bell::ringer_cpu`] when no CPU is known.
const NO_CPU: usize = usize::MAX;

/// A reaper registered as a waiter on a [`Bell`] ([`Bell::register`]).
pub(crate) struct Waiting<'a> {
    bell: &'a Bell,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.bell.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Notify for Signal {
    fn deferred_work(&self) {
        // The core raised its deferred flag before this call, holding no
        // context lock: the fence orders that before `ring`'s look at the
        // waiters (the other half is the fence in `Bell::register`), so a
        // reaper either finds the work when it looks again after
        // registering, or is rung.
        fence(Ordering::SeqCst);
        // The worker runs the work at once; a reaper that is waiting wakes
        // too (whichever takes the context lock first runs it, the other
        // finds nothing left).
        self.wake_worker();
    }

    fn completed(&self) {
        self.bump();
        self.signal_fd();
    }

    fn deadline_armed(&self, deadline: u64) {
        self.program(deadline);
    }
}

/// The CPU the calling thread runs on (Linux's `sched_getcpu`, a vDSO call
/// of a few nanoseconds), or `None` where it is not known (also under Miri,
/// which has no such call).
fn current_cpu() -> Option<usize> {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: `sched_getcpu` takes no arguments and touches no memory
        // of ours; it returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(any(not(target_os = "linux"), miri))]
    None
}

//! [`Fd`] (Linux): any file descriptor as a source. How readiness is found
//! and what each event costs is documented on [`Fd`] itself.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};

use aiopoll::{Events, PollTable, Source};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::{AsSource, Lock, SharedSource, WaitQueue};

/// Every poll event there is to ask for (ERR and HUP are always reported).
const POLL_EVENTS: libc::c_short = libc::POLLIN
    | libc::POLLPRI
    | libc::POLLOUT
    | libc::POLLRDNORM
    | libc::POLLRDBAND
    | libc::POLLWRNORM
    | libc::POLLWRBAND
    | libc::POLLRDHUP;

/// What every descriptor is registered for with epoll: the same events,
/// edge-triggered.
const EPOLL_INTEREST: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLRDHUP) as u32
    | libc::EPOLLET as u32;

/// The epoll key of the poller's own notification eventfd.
const NOTIFY: u64 = u64::MAX;

/// How many edges one `epoll_wait` collects at most.
const BATCH: usize = 64;

/// A poll or epoll mask (the two share their values) as [`Events`].
fn events_of(mask: u32) -> Events {
    Events::from_bits_truncate((mask & u32::from(Events::all().bits())) as u16)
}

/// A file descriptor (socket, pipe, eventfd, tty, ...) owned as a source:
/// requests on it complete with the readiness `poll(2)` reports for it.
///
/// `Fd` owns `T` (a `TcpStream`, `TcpListener`, `OwnedFd`, ...); do I/O
/// through [`get_ref`](Self::get_ref), non-blocking (set it so: a request
/// completing means "ready", and a racing reader may still get
/// `WouldBlock`). Dropping the `Fd` deregisters the descriptor, completes
/// pending requests with [`Outcome::SourceGone`](crate::Outcome::SourceGone),
/// then closes `T`.
///
/// # How readiness is found
///
/// A source answers two questions: "what is ready now?" (its `poll`, which
/// must not block) and "tell me when that may have changed" (a wakeup on its
/// queue). For a file descriptor the kernel answers the first with its own
/// `->poll()`, which `poll(2)` with a zero timeout calls once and returns:
/// that is the whole of `Fd`'s `poll`, run at every submit, so its
/// readiness mask is the kernel's, bit for bit. So a request for data that
/// is already there completes at its submit: there is no need to read until
/// `WouldBlock` before submitting again.
///
/// The second comes from epoll: every `Fd` is registered, edge-triggered and
/// for every poll event, with one epoll instance that one thread (the
/// *poller thread*, `aiopoll-fd`, one for all `Fd`s of the program) waits
/// on. The registration lasts as long as the `Fd`, so no change is missed
/// between a request's readiness check and its wait: the request is on the
/// queue before the check, and any later change raises an edge. For each
/// edge epoll reports the descriptor's readiness, and the poller thread
/// wakes the queue *keyed* with that mask: a request whose events are in it
/// completes inline, at once, with them, as a Linux aio request completes
/// inside the write that made it ready. (Only when the wakeup finds the
/// context's lock taken does the request go to deferred work, which the
/// context's own thread runs at once: it re-polls then.)
///
/// # What an event costs
///
/// Per request: one `poll(2)` at submit. Per readiness change: the poller
/// thread's share of one `epoll_wait` (up to 64 edges each), one keyed
/// wakeup (the queue's lock, the context's try-lock, the completion), and,
/// if a reaper sleeps in [`get_events`](crate::StdContext::get_events), a
/// futex wake for it. The hand-off between the poller thread and the
/// reapers is what a server pays over a single-threaded epoll loop:
/// BENCHMARKS.md has the CPU time per echoed line of each thread in the
/// `echo_server` example, beside tokio and mio servers.
///
/// # When requests complete
///
/// A request completes when the poller thread collects the descriptor's
/// edge from epoll and wakes the request with the readiness epoll reported:
/// inline, a few microseconds after the change, whether or not anybody is
/// reaping. Readiness that comes and goes (data written, then read back)
/// completes a request if the poller thread collected the edge before it
/// went, which it does as soon as it runs.
///
/// That is the one difference from Linux aio, where the operation that
/// makes a descriptor ready completes its requests before it returns. Here
/// the operation returns first, so an operation issued microseconds after
/// it may overtake the poller thread:
///
/// - a [`cancel`](crate::StdContext::cancel) right after a write can still
///   find the request pending and report it cancelled, where Linux reports
///   it completed;
/// - a read right after a write can consume the data before the poller
///   thread sees it, and the request then waits for the next change;
/// - a request submitted while the poller thread delivers an edge can
///   complete with that edge's readiness even if a racing read has just
///   consumed it (as with any readiness, the read then says `WouldBlock`).
///
/// Call [`catch_up`](Self::catch_up) after the operation to order them as
/// Linux does: it waits for the poller thread to deliver everything that
/// happened before the call.
pub struct Fd<T: AsFd> {
    shared: Arc<FdShared>,
    io: T,
}

struct FdShared {
    /// The descriptor while the `Fd` lives; `None` once it is being closed,
    /// so a late re-poll never looks at a reused descriptor number.
    raw: RwLock<Option<RawFd>>,
    queue: WaitQueue,
}

impl<T: AsFd> Fd<T> {
    /// Takes `io` and registers its descriptor with the poller thread
    /// (started on first use; it exits when no `Fd` is left).
    ///
    /// # Errors
    /// The OS poller (epoll) could not be created, could not register the
    /// descriptor (e.g. a regular file, which epoll refuses: poll it
    /// otherwise), or its thread could not be started.
    pub fn new(io: T) -> io::Result<Self> {
        let shared = Arc::new(FdShared {
            raw: RwLock::new(Some(io.as_fd().as_raw_fd())),
            queue: WaitQueue::new(),
        });
        driver()?.register(&io, &shared)?;
        Ok(Fd { shared, io })
    }

    /// The owned I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The owned I/O object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The events ready now, as `poll(2)` reports them.
    pub fn readiness(&self) -> Events {
        self.shared.poll(&mut PollTable::readiness_only())
    }

    /// Waits until the poller thread has delivered every readiness change of
    /// this descriptor (and of every other `Fd`) that happened before the
    /// call: the requests those changes made ready have completed, as they
    /// would have in Linux before the I/O operation returned.
    ///
    /// Call it between an operation and what must see its effect, e.g. a
    /// write and a cancel that must find the request completed, or a write
    /// and a read that must not overtake the request. (A wakeup that found
    /// the context's lock taken hands its request to deferred work instead,
    /// which the context's thread runs at once and which a cancel runs
    /// first, so the cancel still finds the request completed.)
    ///
    /// Blocks for one round of the poller thread, a few microseconds when the
    /// machine is idle. Returns at once if the poller thread has stopped
    /// because the OS poller failed (nothing would be delivered then).
    pub fn catch_up(&self) {
        if let Ok(driver) = driver() {
            driver.catch_up();
        }
    }
}

impl<T: AsFd> Drop for Fd<T> {
    fn drop(&mut self) {
        if let Ok(driver) = driver() {
            driver.deregister(&self.io, &self.shared);
        }
        *self.shared.raw.write() = None;
        self.shared.queue.close();
        // `io` is closed after this, when the fields drop.
    }
}

impl<T: AsFd> AsSource for Fd<T> {
    fn as_source(&self) -> SharedSource {
        self.shared.clone()
    }
}

impl<T: AsFd + core::fmt::Debug> core::fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fd").field("io", &self.io).finish()
    }
}

impl Source<Lock> for FdShared {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.queue);
        let raw = self.raw.read();
        let Some(fd) = *raw else {
            return Events::empty();
        };
        let mut entry = libc::pollfd {
            fd,
            events: POLL_EVENTS,
            revents: 0,
        };
        // SAFETY: `entry` is one valid `pollfd` and we pass a count of 1;
        // `fd` is open: the read lock keeps `Drop` from clearing it (and so
        // from closing the descriptor) until we are done. A zero timeout
        // never blocks.
        let count = unsafe { libc::poll(&mut entry, 1, 0) };
        if count <= 0 {
            return Events::empty();
        }
        events_of(u32::from(entry.revents as u16))
    }
}

/// The poller thread's epoll instance and registry.
struct Driver {
    epoll: OwnedFd,
    /// An eventfd in the epoll set under key [`NOTIFY`]: a write to it ends
    /// the poller thread's current or next wait.
    notifier: OwnedFd,
    state: Mutex<DriverState>,
    /// What [`Driver::catch_up`] waits on. Lock order: `state`, then
    /// `rounds`.
    rounds: Mutex<Rounds>,
    caught_up: Condvar,
}

#[derive(Default)]
struct DriverState {
    fds: HashMap<u64, Weak<FdShared>>,
    next_key: u64,
    running: bool,
}

/// Catch-up requests and how far the poller thread has served them.
#[derive(Default)]
struct Rounds {
    /// Catch-up requests so far (each takes the next number).
    requested: u64,
    /// Every request up to this number has been served: the edges raised
    /// before it were delivered.
    delivered: u64,
    /// Whether a poller thread runs (it serves requests).
    serving: bool,
}

fn driver() -> io::Result<&'static Driver> {
    static DRIVER: OnceLock<Result<Driver, io::ErrorKind>> = OnceLock::new();
    DRIVER
        .get_or_init(|| Driver::new().map_err(|error| error.kind()))
        .as_ref()
        .map_err(|kind| io::Error::from(*kind))
}

/// A syscall's descriptor result as an owned descriptor.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the syscall that opened it, and
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Driver {
    fn new() -> io::Result<Driver> {
        // SAFETY: creates a descriptor; no pointers involved.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let notifier = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        let driver = Driver {
            epoll,
            notifier,
            state: Mutex::new(DriverState::default()),
            rounds: Mutex::new(Rounds::default()),
            caught_up: Condvar::new(),
        };
        driver.control(
            libc::EPOLL_CTL_ADD,
            driver.notifier.as_raw_fd(),
            libc::EPOLLIN as u32 | libc::EPOLLET as u32,
            NOTIFY,
        )?;
        Ok(driver)
    }

    /// `epoll_ctl(op, fd)` with `events` and `key`.
    fn control(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: key };
        // SAFETY: `event` is a valid `epoll_event` for the call (the kernel
        // copies it); `fd` is open (callers own it), and a bad one is an
        // error, not undefined behaviour.
        let ret = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ends the poller thread's current or next wait.
    fn notify(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from `one` to our own eventfd. It cannot
        // fail short of the count reaching its maximum, which the poller
        // thread's reads prevent; a failed write would only mean a wait
        // already due to end.
        unsafe { libc::write(self.notifier.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    fn register(&'static self, io: &impl AsFd, shared: &Arc<FdShared>) -> io::Result<()> {
        let mut state = self.state.lock();
        // Keys wrap after u64::MAX registrations; `NOTIFY` is the poller's
        // own.
        let mut key = state.next_key;
        while key == NOTIFY || state.fds.contains_key(&key) {
            key = key.wrapping_add(1);
        }
        state.next_key = key.wrapping_add(1);
        let raw = io.as_fd().as_raw_fd();
        // `Fd::drop` deletes the descriptor from the epoll set
        // (`deregister`) before `io`, which owns it, is closed.
        self.control(libc::EPOLL_CTL_ADD, raw, EPOLL_INTEREST, key)?;
        state.fds.insert(key, Arc::downgrade(shared));
        if !state.running {
            let spawned = std::thread::Builder::new()
                .name("aiopoll-fd".into())
                .spawn(move || self.run());
            if let Err(error) = spawned {
                state.fds.remove(&key);
                // The descriptor was added above: take it back out.
                let _ = self.control(libc::EPOLL_CTL_DEL, raw, 0, 0);
                return Err(error);
            }
            state.running = true;
            self.rounds.lock().serving = true;
        }
        Ok(())
    }

    fn deregister(&self, io: &impl AsFd, shared: &Arc<FdShared>) {
        // Cannot fail for a registered, open descriptor.
        let _ = self.control(libc::EPOLL_CTL_DEL, io.as_fd().as_raw_fd(), 0, 0);
        let mut state = self.state.lock();
        state
            .fds
            .retain(|_, fd| !core::ptr::eq(fd.as_ptr(), Arc::as_ptr(shared)));
        if state.fds.is_empty() {
            // Let the thread see that it has nothing left to wait for.
            self.notify();
        }
    }

    /// Waits until the poller thread has delivered every edge raised
    /// before this call.
    fn catch_up(&self) {
        let ticket = {
            let mut rounds = self.rounds.lock();
            if !rounds.serving {
                return;
            }
            rounds.requested += 1;
            rounds.requested
        };
        self.notify();
        let mut rounds = self.rounds.lock();
        while rounds.delivered < ticket && rounds.serving {
            self.caught_up.wait(&mut rounds);
        }
    }

    /// The poller thread: turns edges into keyed wakeups; exits when no
    /// `Fd` is registered (or if epoll fails).
    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut woken = Vec::new();
        loop {
            // Read before collecting edges: every catch-up request counted
            // here was made after the edges it waits for were raised, so
            // this round collects them (or an earlier one did).
            let (covered, behind) = {
                let rounds = self.rounds.lock();
                (rounds.requested, rounds.requested > rounds.delivered)
            };
            // SAFETY: `events` has room for `BATCH` entries, the count
            // passed; the epoll descriptor is ours and open. A timeout of 0
            // (someone waits to catch up) never blocks; -1 waits for an edge.
            let count = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as libc::c_int,
                    if behind { 0 } else { -1 },
                )
            };
            let failed =
                count < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted;
            let collected = &events[..usize::try_from(count).unwrap_or(0)];
            {
                let mut state = self.state.lock();
                if state.fds.is_empty() || failed {
                    state.running = false;
                    let mut rounds = self.rounds.lock();
                    rounds.serving = false;
                    self.caught_up.notify_all();
                    return;
                }
                for event in collected {
                    // Copied out: the kernel's struct is packed.
                    let (key, mask) = (event.u64, event.events);
                    if key == NOTIFY {
                        self.clear_notification();
                    } else if let Some(shared) = state.fds.get(&key).and_then(Weak::upgrade) {
                        woken.push((shared, events_of(mask)));
                    }
                }
            }
            // Outside the registry's lock: a wakeup may run a completion.
            // The key is the readiness epoll read when it collected the
            // edge, so requests complete with what the edge made ready.
            for (shared, ready) in woken.drain(..) {
                shared.queue.wake(ready);
            }
            // A full batch may have left edges behind: collect them before
            // answering a catch-up.
            if behind && collected.len() < BATCH {
                let mut rounds = self.rounds.lock();
                rounds.delivered = rounds.delivered.max(covered);
                self.caught_up.notify_all();
            }
        }
    }

    /// Resets the notification eventfd's count.
    fn clear_notification(&self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`, from our own
        // non-blocking eventfd; a failed read (nothing there) is harmless.
        unsafe { libc::read(self.notifier.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }
}

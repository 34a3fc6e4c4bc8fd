//! [`Fd`] (Linux): any file descriptor as a source. How readiness is found
//! and what each event costs is documented on [`Fd`] itself.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use aiopoll::{Events, PollTable, Source};
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::handoff::{Arrival, HandOff, Holder, Look, Role};
use crate::signal::Bell;
use crate::{AsSource, Lock, SharedSource, WaitQueue};

/// The edges one `epoll_wait` collected, and the number of its round.
struct Collected<'e> {
    round: u64,
    edges: &'e [libc::epoll_event],
}

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
/// that is `Fd`'s `poll`, run at submit, so its readiness mask is the
/// kernel's, bit for bit. So a request for data that is already there
/// completes at its submit: there is no need to read until `WouldBlock`
/// before submitting again. A submit skips the `poll(2)` only when every
/// event it asks for is known not to be ready: the last edge collected for
/// the descriptor lacked it, or, for a stream socket, [`read`](Self::read)
/// or [`write`](Self::write) found the socket drained or full since, with
/// no edge collected meanwhile. The request then waits for the next edge,
/// whose readiness epoll reports.
///
/// The second comes from epoll: every `Fd` is registered, edge-triggered and
/// for every poll event, with one epoll instance for the whole program, for
/// as long as the `Fd` lives. So no change is missed between a request's
/// readiness check and its wait: the request is on the queue before the
/// check, and any later change raises an edge. For each edge epoll reports
/// the descriptor's readiness, and whoever collects the edge wakes the queue
/// *keyed* with that mask: a request whose events are in it completes
/// inline, at once, with them, as a Linux aio request completes inside the
/// write that made it ready. (Only when the wakeup finds the context's lock
/// taken does the request go to deferred work, which the context's own
/// thread runs at once: it re-polls then.)
///
/// # Who collects the edges
///
/// A thread blocked in [`get_events`](crate::StdContext::get_events) that
/// finds nothing to reap waits in `epoll_wait` itself, the way Linux's
/// `io_getevents` sleeps in the kernel, and runs the wakeups of the edges
/// it collects: the request completes on the thread that then reaps it.
/// One thread waits in epoll at a time; other reapers sleep until a
/// completion of their context comes or the one in epoll leaves (then one
/// of them takes its place). A completion that is not an `Fd`'s (an
/// [`EventCounter`](crate::EventCounter), a [`Timer`](crate::Timer), ...)
/// ends the wait of a reaper of its context that sits in epoll.
///
/// When no reaper waits, the poller thread (`aiopoll-fd`, one for all `Fd`s
/// of the program) collects the edges: at once while an awaited request
/// ([`StdContext::request`](crate::StdContext::request)) or a
/// [`completion_fd`](crate::StdContext::completion_fd) waits, otherwise
/// within about two milliseconds (it looks once per millisecond whether
/// anybody does). A [`reap`](crate::StdContext::reap) that would return
/// nothing collects what epoll has first, without blocking.
///
/// # What an event costs
///
/// Per request: one `poll(2)` at submit, none when the events asked for
/// are known not ready (see above). Per readiness change: a share of
/// one `epoll_wait` (up to 64 edges each) on a reaping thread, and one keyed
/// wakeup (the queue's lock, the context's try-lock, the completion), plus a
/// `poll(2)` when a request on the descriptor registered after the round
/// began (see "When requests complete"; in the echo server, 3,637 per
/// 100,000 lines). A
/// reaper waiting in epoll is woken by the kernel; other reapers of the
/// context by a futex wake when the completions are more than the first
/// takes. BENCHMARKS.md has the CPU time per echoed line of each thread in
/// the `echo_server` example, beside tokio and mio servers.
///
/// # When requests complete
///
/// A request completes when its descriptor's edge is collected and woken
/// with the readiness epoll reported: inline, as soon as a reaper waits or
/// the poller thread looks (see above). Readiness that comes and goes (data
/// written, then read back) completes a request that was waiting if the
/// edge was collected before it went (unless a request registered or
/// looked at the descriptor between the collection and the wakeup: then
/// the wakeup looks afresh, below, and finds it gone).
///
/// The wakeup carries the descriptor's whole readiness, not the kernel's
/// wakeup key (which names only what changed): after a write to an eventfd,
/// a multishot request for `OUT` on it posts `OUT` again, where io_uring's
/// would not.
///
/// That is the one difference from Linux aio, where the operation that
/// makes a descriptor ready completes its requests before it returns. Here
/// the operation returns first, so an operation issued right after it may
/// overtake the collection of the edge:
///
/// - a [`cancel`](crate::StdContext::cancel) right after a write can still
///   find the request pending and report it cancelled, where Linux reports
///   it completed;
/// - a read right after a write can consume the data before the edge is
///   collected, and the request then waits for the next change.
///
/// A request never completes with readiness it could not have seen: when a
/// request may have registered after an edge was collected, the edge wakes
/// with what is ready when the wakeup runs (a `poll(2)` under the queue's
/// lock), not with what the edge reported, so data that a reader consumed
/// before the request was submitted does not complete it.
///
/// Call [`catch_up`](Self::catch_up) after the operation to order them as
/// Linux does: it waits until everything that happened before the call was
/// delivered (collecting it itself if nobody waits in epoll).
pub struct Fd<T: AsFd> {
    shared: Arc<FdShared>,
    io: T,
}

struct FdShared {
    /// The descriptor while the `Fd` lives; `None` once it is being closed,
    /// so a late re-poll never looks at a reused descriptor number. Every
    /// look holds it for reading; a request's look, from its registration
    /// to its stamp in `polled_in`.
    raw: RwLock<Option<RawFd>>,
    queue: WaitQueue,
    /// The latest poller round (see [`ROUNDS`]) that had started when a
    /// `poll(2)` of this descriptor returned: an edge collected by a round
    /// after it is newer than every look a request on the queue took.
    polled_in: AtomicU64,
    /// What is known of the descriptor's readiness without asking the
    /// kernel: see [`Known`].
    known: Known,
}

/// The events an `Fd` is known *not* to have ready, and the *tick* that
/// knowledge dates from, in one atomic word (tick in the high 32 bits, the
/// mask of events known not ready in the low 16), so that a submit can skip
/// its `poll(2)` when every event it asks for is known not ready.
///
/// - Every edge collected from epoll moves the tick on and makes the
///   knowledge whole: epoll computes an edge's mask from the descriptor's
///   readiness when it reports it (`ep_item_poll`), so what the mask lacks
///   was not ready then (or the wakeup's own look, when it takes one: see
///   `FdShared::edge_key`). It is recorded under the queue's lock, before
///   the edge's keyed wakeup.
/// - [`Fd::read`] and [`Fd::write`] of a stream socket add IN or OUT when
///   the call says the socket was drained or full (`WouldBlock`, or fewer
///   bytes than asked for), but only if the tick has not moved since before
///   the call (tokio's readiness tick): an edge collected meanwhile may be
///   for data that came after, and its knowledge stands.
///
/// Nothing else clears a bit, so no edge is lost: a bit is known not ready
/// only while no edge has been collected since a moment it was not ready,
/// and any change since then raised an edge that is collected later (epoll
/// reports each wakeup of the descriptor after the last report). A request
/// submitted meanwhile is on the queue before the submit reads this word,
/// and the edge's wakeup records it under the queue's lock, so either the
/// submit registers after the record and sees the edge's knowledge (and
/// polls, unless what it asks for was not ready then: any change since
/// raises a later edge), or the wakeup sees the request and wakes it with
/// the edge's readiness.
struct Known {
    word: AtomicU64,
}

impl Known {
    /// Nothing known yet: every submit polls until the first edge.
    const fn new() -> Known {
        Known {
            word: AtomicU64::new(0),
        }
    }

    /// The events known not ready now.
    fn clear(&self) -> Events {
        Events::from_bits_truncate(self.word.load(Ordering::SeqCst) as u16)
    }

    /// An edge with readiness `ready` was collected: new tick, and every
    /// event not in `ready` is known not ready.
    fn edge(&self, ready: Events) {
        let known = u64::from((!ready).bits());
        let _ = self
            .word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                Some(((word >> 32).wrapping_add(1) << 32) | known)
            });
    }

    /// The word before an I/O call, for [`drained`](Self::drained).
    fn before(&self) -> u64 {
        self.word.load(Ordering::SeqCst)
    }

    /// An I/O call that began at `before` found `events` not ready: record
    /// it, unless an edge was collected since (the tick moved).
    fn drained(&self, before: u64, events: Events) {
        let tick = before >> 32;
        let _ = self
            .word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                (word >> 32 == tick).then_some(word | u64::from(events.bits()))
            });
    }
}

/// Poller rounds so far: each `epoll_wait` takes the next number before it
/// collects.
///
/// An edge's readiness is what epoll read when it collected the edge, and
/// the wakeup comes a little later. A request that registered in between
/// looks for itself (its submit's `poll(2)`) after the edge, and a reader
/// may have consumed what the edge reported before that: waking it with
/// the edge's readiness would complete it with events it never had. So an
/// edge wakes with the readiness epoll collected only when every request on
/// the queue registered and looked before the round began, which the
/// wakeup checks under the queue's lock (`FdShared::edge_key`); otherwise
/// it looks afresh, under that lock, and wakes with what is ready now, or
/// not at all if nothing is.
static ROUNDS: AtomicU64 = AtomicU64::new(0);

impl<T: AsFd> Fd<T> {
    /// Takes `io` and registers its descriptor with the OS poller (the
    /// program's epoll instance, whose poller thread is started on first use
    /// and exits when no `Fd` is left).
    ///
    /// # Errors
    /// The OS poller (epoll) could not be created, could not register the
    /// descriptor (e.g. a regular file, which epoll refuses: poll it
    /// otherwise), or its thread could not be started.
    pub fn new(io: T) -> io::Result<Self> {
        let shared = Arc::new(FdShared {
            raw: RwLock::new(Some(io.as_fd().as_raw_fd())),
            queue: WaitQueue::new(),
            polled_in: AtomicU64::new(0),
            known: Known::new(),
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
        self.shared.readiness_now()
    }

    /// Waits until every readiness change of this descriptor (and of every
    /// other `Fd`) that happened before the call has been delivered: the
    /// requests those changes made ready have completed, as they would have
    /// in Linux before the I/O operation returned.
    ///
    /// Call it between an operation and what must see its effect, e.g. a
    /// write and a cancel that must find the request completed, or a write
    /// and a read that must not overtake the request. (A wakeup that found
    /// the context's lock taken hands its request to deferred work instead,
    /// which the context's thread runs at once and which a cancel runs
    /// first, so the cancel still finds the request completed.)
    ///
    /// Collects the edges itself if nobody waits in epoll, else has the
    /// thread that does collect once more: a few microseconds when the
    /// machine is idle. Returns at once if the OS poller has failed
    /// (nothing would be delivered then).
    pub fn catch_up(&self) {
        if let Ok(driver) = driver() {
            driver.catch_up();
        }
    }
}

/// Stream sockets, for which a read that returns fewer bytes than asked
/// for means the receive queue was empty when it returned, and a write that
/// takes fewer means the send buffer was full: [`Fd::read`] and
/// [`Fd::write`] record that, so the next request for IN (or OUT) need not
/// ask the kernel. Sealed: implemented for [`TcpStream`](std::net::TcpStream)
/// and [`UnixStream`](std::os::unix::net::UnixStream).
pub trait StreamSocket: AsFd + private::Sealed {}

impl StreamSocket for std::net::TcpStream {}
impl StreamSocket for std::os::unix::net::UnixStream {}

mod private {
    /// Keeps [`StreamSocket`](super::StreamSocket) to the types this crate
    /// knows the read and write semantics of.
    pub trait Sealed {}
    impl Sealed for std::net::TcpStream {}
    impl Sealed for std::os::unix::net::UnixStream {}
}

impl<T: StreamSocket> Fd<T>
where
    for<'a> &'a T: io::Read + io::Write,
{
    /// Reads from the socket (non-blocking, as every `Fd`'s descriptor
    /// should be), like `get_ref().read(buf)`, and remembers when the read
    /// drained it (`WouldBlock`, or fewer bytes than `buf` holds): then the
    /// next request for IN waits for the socket's next edge without a
    /// `poll(2)` at submit, as tokio reads until its readiness is cleared.
    /// An edge collected while the read ran keeps the next submit asking the
    /// kernel, so no data that came meanwhile is missed.
    ///
    /// A TCP read stops short at an urgent-data mark (`MSG_OOB`) even with
    /// data behind it: on a connection that receives urgent data, read
    /// through [`get_ref`](Self::get_ref) instead.
    ///
    /// # Errors
    /// The read's own.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let before = self.shared.known.before();
        let result = io::Read::read(&mut &self.io, buf);
        let drained = match &result {
            Ok(count) => *count > 0 && *count < buf.len(),
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
        };
        if drained {
            self.shared
                .known
                .drained(before, Events::IN | Events::RDNORM);
        }
        result
    }

    /// Writes to the socket, like `get_ref().write(buf)`, and remembers
    /// when the send buffer was full (`WouldBlock`, or fewer bytes taken
    /// than `buf` holds): the next request for OUT then waits for the
    /// socket's next edge without a `poll(2)` at submit.
    ///
    /// # Errors
    /// The write's own.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let before = self.shared.known.before();
        let result = io::Write::write(&mut &self.io, buf);
        let full = match &result {
            Ok(count) => *count < buf.len(),
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
        };
        if full {
            self.shared
                .known
                .drained(before, Events::OUT | Events::WRNORM);
        }
        result
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

/// `poll(2)` of `fd` now, with a zero timeout.
///
/// The caller keeps `fd` open for the call: it holds the `Fd`'s `raw` lock,
/// which `Drop` must take to clear the descriptor before closing it.
fn poll_descriptor(fd: RawFd) -> Events {
    let mut entry = libc::pollfd {
        fd,
        events: POLL_EVENTS,
        revents: 0,
    };
    // SAFETY: `entry` is one valid `pollfd` and we pass a count of 1; `fd`
    // is open (the caller's lock keeps `Drop` from closing it). A zero
    // timeout never blocks.
    let count = unsafe { libc::poll(&mut entry, 1, 0) };
    if count <= 0 {
        return Events::empty();
    }
    events_of(u32::from(entry.revents as u16))
}

impl FdShared {
    /// `poll(2)` of the descriptor now (nothing once it is being closed).
    fn readiness_now(&self) -> Events {
        (*self.raw.read()).map_or(Events::empty(), poll_descriptor)
    }

    /// The key of an edge's wakeup, computed under the queue's lock
    /// ([`WaitQueue::wake_with`]): every request it wakes is on the queue
    /// now, and registered before this runs. `None`: wake nobody.
    ///
    /// The readiness epoll `reported` when round `round` collected the edge
    /// is what the edge made ready, for a request that registered before
    /// the collection. It is used when no look at the descriptor is in
    /// flight (the write lock is free: a look holds the read lock from its
    /// registration to its stamp) and every look's stamp is older than the
    /// round: then every request on the queue registered before the round
    /// began. Otherwise a request may have registered after the
    /// collection, when what epoll reported may have been read already:
    /// the key is the descriptor's readiness now, which every request on
    /// the queue sees while it waits.
    fn edge_key(&self, reported: Events, round: u64) -> Option<Events> {
        let ready = match self.raw.try_write() {
            Some(raw) => {
                let fd = (*raw)?;
                if self.polled_in.load(Ordering::SeqCst) < round {
                    reported
                } else {
                    poll_descriptor(fd)
                }
            }
            // A look in flight (or the descriptor closing: then `None`).
            None => poll_descriptor((*self.raw.try_read()?)?),
        };
        // Before the wakeup, under the queue's lock: a submit that
        // registers after it sees this (see `Known`).
        self.known.edge(ready);
        (!ready.is_empty()).then_some(ready)
    }
}

impl Source<Lock> for FdShared {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        // Held from the registration to the stamp: an edge's wakeup that
        // finds the write lock free knows that every request on the queue
        // has stamped its look (`edge_key`).
        let raw = self.raw.read();
        table.wait(&self.queue);
        // A submit (now on the queue) of events all known not ready waits
        // for their edge without asking the kernel (see `Known`). Re-polls
        // always ask.
        let ready = if table.is_registering() && self.known.clear().contains(table.requested()) {
            Events::empty()
        } else {
            (*raw).map_or(Events::empty(), poll_descriptor)
        };
        // After the look, whether it asked the kernel or knew (the fence
        // orders the system call's reads before the load): a round that
        // this load does not see began after the look returned, so the
        // readiness it collects is newer (`ROUNDS`).
        core::sync::atomic::fence(Ordering::SeqCst);
        let round = ROUNDS.load(Ordering::SeqCst);
        self.polled_in.fetch_max(round, Ordering::SeqCst);
        drop(raw);
        ready
    }
}

/// The OS poller: one epoll instance for every `Fd` of the program, its
/// registry, and who waits in it (the role, see `handoff.rs`).
pub(crate) struct Driver {
    epoll: OwnedFd,
    /// An eventfd in the epoll set under key [`NOTIFY`]: a write to it ends
    /// the current or next wait of whoever holds the role.
    notifier: OwnedFd,
    /// The registry. Lock order: `state`, then `shared`.
    state: Mutex<DriverState>,
    shared: Mutex<Shared>,
    /// What [`Driver::catch_up`] waits on (with `shared`): notified when a
    /// round delivers catch-ups, and when the role becomes vacant while
    /// catch-ups wait (a waiter then drives the poller itself).
    caught_up: Condvar,
    /// `epoll_wait` failed for good: nobody waits in the poller any more,
    /// and reapers sleep on their bells.
    failed: AtomicBool,
}

#[derive(Default)]
struct DriverState {
    fds: HashMap<u64, Weak<FdShared>>,
    next_key: u64,
    /// A poller thread runs.
    running: bool,
}

/// The role and the catch-up rounds, under one lock.
struct Shared {
    role: Role<Arc<Bell>>,
    /// Catch-up requests so far (each takes the next number).
    requested: u64,
    /// Every catch-up up to this number has been served: the edges raised
    /// before it were delivered.
    delivered: u64,
    /// The poller thread, once it has started (it records itself).
    thread: Option<Thread>,
}

impl Shared {
    /// Whether the role must not wait for the poller thread's tick: awaited
    /// requests or completion descriptors wait for edges with no reaper,
    /// or a catch-up waits.
    fn urgent(&self) -> bool {
        DEMAND.load(Ordering::SeqCst) > 0 || self.requested > self.delivered
    }
}

/// Waiters that no reaper serves: pending awaited requests, and contexts
/// with a completion descriptor (see [`Demand`]).
static DEMAND: AtomicUsize = AtomicUsize::new(0);

/// How often the poller thread looks at a vacant role when nobody else
/// takes it: edges wait at most about two ticks when no thread waits for
/// them (awaited requests, completion descriptors and `catch_up` call it at
/// once instead).
const TICK: Duration = Duration::from_millis(1);

/// Keeps the poller thread ready to take the OS poller at once whenever no
/// reaper holds it, while it lives: for waiters that no reaper serves (an
/// awaited request, a context's completion descriptor).
#[derive(Debug)]
pub(crate) struct Demand(());

impl Demand {
    pub(crate) fn new() -> Demand {
        if DEMAND.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(driver) = existing_driver() {
                let mut shared = driver.shared.lock();
                let hand_off = shared.role.urge();
                driver.settle(shared, hand_off);
            }
        }
        Demand(())
    }
}

impl Drop for Demand {
    fn drop(&mut self) {
        DEMAND.fetch_sub(1, Ordering::SeqCst);
    }
}

static DRIVER: OnceLock<Result<Driver, io::ErrorKind>> = OnceLock::new();

fn driver() -> io::Result<&'static Driver> {
    DRIVER
        .get_or_init(|| Driver::new().map_err(|error| error.kind()))
        .as_ref()
        .map_err(|kind| io::Error::from(*kind))
}

/// The OS poller, if an `Fd` was ever made and the poller works: reapers
/// wait in it instead of on their bells.
pub(crate) fn existing_driver() -> Option<&'static Driver> {
    let driver = DRIVER.get()?.as_ref().ok()?;
    (!driver.failed.load(Ordering::Relaxed)).then_some(driver)
}

/// Ends the `epoll_wait` of whoever holds the role (a bell's hook, when a
/// reaper of its context waits in the poller).
pub(crate) fn notify_poller() {
    if let Some(Ok(driver)) = DRIVER.get() {
        driver.notify();
    }
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

/// `until` as an `epoll_wait` timeout: -1 for none, else the milliseconds
/// left, rounded up (so that the wait never ends before it).
fn timeout_ms(until: Option<Instant>) -> libc::c_int {
    match until {
        None => -1,
        Some(until) => {
            let left = until.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
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
            shared: Mutex::new(Shared {
                role: Role::new(),
                requested: 0,
                delivered: 0,
                thread: None,
            }),
            caught_up: Condvar::new(),
            failed: AtomicBool::new(false),
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

    /// Ends the current or next wait in the poller.
    fn notify(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from `one` to our own eventfd. It cannot
        // fail short of the count reaching its maximum, which the drivers'
        // reads prevent; a failed write would only mean a wait already due
        // to end.
        unsafe { libc::write(self.notifier.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// Releases `shared` and carries out what a transition of the role
    /// decided: ring a follower's bell, or unpark the poller thread.
    fn settle(&self, shared: MutexGuard<'_, Shared>, hand_off: HandOff<Arc<Bell>>) {
        // A vacant role with catch-ups waiting: one of them may drive.
        if shared.role.holder() == Holder::Vacant && shared.requested > shared.delivered {
            self.caught_up.notify_all();
        }
        let thread = match hand_off {
            HandOff::CallThread => shared.thread.clone(),
            _ => None,
        };
        drop(shared);
        match hand_off {
            HandOff::Ring(bell) => bell.ring(),
            HandOff::CallThread => {
                if let Some(thread) = thread {
                    thread.unpark();
                }
            }
            HandOff::None => {}
        }
    }

    /// Gives the role up (its holder being a reaper), and hands it off.
    fn release(&self) {
        let mut shared = self.shared.lock();
        let urgent = shared.urgent();
        let hand_off = shared.role.release(urgent);
        self.settle(shared, hand_off);
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
            // Before the thread runs: a hand-off from now on may call it.
            self.shared.lock().role.thread_started();
            let spawned = std::thread::Builder::new()
                .name("aiopoll-fd".into())
                .spawn(move || self.run());
            if let Err(error) = spawned {
                state.fds.remove(&key);
                // The descriptor was added above: take it back out.
                let _ = self.control(libc::EPOLL_CTL_DEL, raw, 0, 0);
                let mut shared = self.shared.lock();
                let urgent = shared.urgent();
                let hand_off = shared.role.thread_exits(urgent);
                self.settle(shared, hand_off);
                return Err(error);
            }
            state.running = true;
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
            // Let the poller thread see that it has nothing left to wait
            // for, wherever it is.
            self.notify();
            if let Some(thread) = &self.shared.lock().thread {
                thread.unpark();
            }
        }
    }

    /// A reaper of the context whose bell is `bell` found nothing (its
    /// epoch read `seen` before it reaped) and waits until its epoch moves
    /// or `until` passes: in the poller if the role is vacant (it collects
    /// the edges and runs their wakeups itself), else on its bell as a
    /// follower. May return early. Returns whether it was rung for the
    /// role: then it must arrive again or call [`pass_on`](Self::pass_on)
    /// before it leaves `get_events`.
    pub(crate) fn wait(&self, bell: &Arc<Bell>, seen: u64, until: Option<Instant>) -> bool {
        let arrival = self.shared.lock().role.arrive(bell.clone());
        match arrival {
            Arrival::Lead => {
                bell.set_in_poller(true);
                // After the flag: a completion from now on ends the wait.
                if bell.epoch() == seen {
                    self.drive(timeout_ms(until), Some(bell));
                }
                bell.set_in_poller(false);
                self.release();
                false
            }
            Arrival::Follow(id) => {
                bell.wait(seen, until);
                self.shared.lock().role.leave(id)
            }
        }
    }

    /// A follower that was rung leaves `get_events` without leading: hands
    /// the role on if it is still vacant.
    pub(crate) fn pass_on(&self) {
        let mut shared = self.shared.lock();
        let urgent = shared.urgent();
        let hand_off = shared.role.pass_on(urgent);
        self.settle(shared, hand_off);
    }

    /// Collects what the poller has now, without blocking, if nobody waits
    /// in it (a reap that found nothing). Returns whether it did.
    pub(crate) fn drive_now(&self) -> bool {
        if !self.shared.lock().role.try_take() {
            return false;
        }
        self.drive(0, None);
        self.release();
        true
    }

    /// Waits until every edge raised before this call was delivered.
    fn catch_up(&self) {
        let ticket = {
            let mut shared = self.shared.lock();
            shared.requested += 1;
            shared.requested
        };
        // Ends a wait in the poller, whoever is in it: its next round
        // serves the ticket.
        self.notify();
        let mut shared = self.shared.lock();
        loop {
            if shared.delivered >= ticket || self.failed.load(Ordering::SeqCst) {
                return;
            }
            if shared.role.try_take() {
                drop(shared);
                self.drive(0, None);
                self.release();
                shared = self.shared.lock();
            } else {
                self.caught_up.wait(&mut shared);
            }
        }
    }

    /// Holding the role: waits in the poller for up to `timeout` ms (-1:
    /// no timeout) and delivers what it collects, then, while catch-ups
    /// wait, collects again without blocking until they are served.
    ///
    /// `waiting` is the bell of the reaper that leads, whose `in_poller`
    /// flag is up: it is lowered as soon as `epoll_wait` returns, before
    /// the wakeups run, so that the completions those wakeups make on this
    /// very thread do not write the notification eventfd to end a wait
    /// that is already over (one `write(2)` per collected edge, and an
    /// `epoll_wait` that returns at once, in the echo server).
    fn drive(&self, timeout: libc::c_int, waiting: Option<&Bell>) {
        let mut timeout = timeout;
        let mut waiting = waiting;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        while self.round(timeout, &mut events, waiting.take()) {
            timeout = 0;
        }
    }

    /// One `epoll_wait` and the keyed wakeups of what it collected.
    /// Returns whether catch-ups still wait.
    fn round(
        &self,
        timeout: libc::c_int,
        events: &mut [libc::epoll_event; BATCH],
        waiting: Option<&Bell>,
    ) -> bool {
        // Read before collecting edges: every catch-up counted here was made
        // after the edges it waits for were raised, so this round collects
        // them (or an earlier one did).
        let covered = self.shared.lock().requested;
        let Some(collected) = self.collect(timeout, events, waiting) else {
            // Nothing will be delivered any more: reapers sleep on their
            // bells, catch-ups return.
            self.failed.store(true, Ordering::SeqCst);
            let _shared = self.shared.lock();
            self.caught_up.notify_all();
            return false;
        };
        let full = collected.edges.len() == BATCH;
        self.deliver(collected);
        let mut shared = self.shared.lock();
        // A full batch may have left edges behind: collect them before
        // answering a catch-up.
        if !full && shared.delivered < covered {
            shared.delivered = covered;
            self.caught_up.notify_all();
        }
        shared.requested > shared.delivered
    }

    /// Holding the role: one `epoll_wait` of up to `timeout` ms (-1: no
    /// timeout), then lowers the `in_poller` flag of `waiting` (see
    /// [`drive`](Self::drive)). `None` if the poller failed for good.
    fn collect<'e>(
        &self,
        timeout: libc::c_int,
        events: &'e mut [libc::epoll_event; BATCH],
        waiting: Option<&Bell>,
    ) -> Option<Collected<'e>> {
        // Before collecting (the fence orders it before `epoll_wait`'s
        // reads): a look that returned before this is older than what the
        // round collects.
        let round = ROUNDS.fetch_add(1, Ordering::SeqCst) + 1;
        core::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: `events` has room for `BATCH` entries, the count passed;
        // the epoll descriptor is ours and open.
        let count = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                BATCH as libc::c_int,
                timeout,
            )
        };
        // The wait is over: a completion of the leader's context from now
        // on moves its epoch, which the leader reads before it waits again.
        if let Some(bell) = waiting {
            bell.set_in_poller(false);
        }
        if count < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
        Some(Collected {
            round,
            edges: &events[..usize::try_from(count).unwrap_or(0)],
        })
    }

    /// The keyed wakeups of what a round collected.
    fn deliver(&self, collected: Collected<'_>) {
        let mut woken: [Option<(Arc<FdShared>, Events)>; BATCH] = [const { None }; BATCH];
        {
            let state = self.state.lock();
            for (event, place) in collected.edges.iter().zip(&mut woken) {
                // Copied out: the kernel's struct is packed.
                let (key, mask) = (event.u64, event.events);
                if key == NOTIFY {
                    self.clear_notification();
                } else if let Some(shared) = state.fds.get(&key).and_then(Weak::upgrade) {
                    *place = Some((shared, events_of(mask)));
                }
            }
        }
        // Outside the registry's lock: a wakeup may run a completion.
        // The key is the readiness epoll read when it collected the edge,
        // so requests complete with what the edge made ready, unless a
        // request may have registered since: then what is ready now, if
        // anything (see `edge_key` and `ROUNDS`).
        for (shared, reported) in woken.iter_mut().filter_map(Option::take) {
            shared
                .queue
                .wake_with(|| shared.edge_key(reported, collected.round));
        }
    }

    /// The poller thread: takes the role when nobody else holds it (at
    /// once when called, or once it stayed vacant for a whole tick), turns
    /// edges into keyed wakeups while it holds it, gives it to the first
    /// reaper that follows, and exits when no `Fd` is registered (or if
    /// the poller fails).
    fn run(&self) {
        self.shared.lock().thread = Some(std::thread::current());
        let mut last = None;
        loop {
            let look = {
                let mut state = self.state.lock();
                let mut shared = self.shared.lock();
                if state.fds.is_empty() || self.failed.load(Ordering::SeqCst) {
                    state.running = false;
                    shared.thread = None;
                    let urgent = shared.urgent();
                    let hand_off = shared.role.thread_exits(urgent);
                    drop(state);
                    self.settle(shared, hand_off);
                    return;
                }
                let urgent = shared.urgent();
                shared.role.thread_look(&mut last, urgent)
            };
            match look {
                Look::Park => std::thread::park(),
                Look::Watch => std::thread::park_timeout(TICK),
                Look::Drive => loop {
                    self.drive(-1, None);
                    let mut shared = self.shared.lock();
                    let urgent = shared.urgent();
                    if let Some(hand_off) = shared.role.thread_round(&mut last, urgent) {
                        self.settle(shared, hand_off);
                        // Watching: a reaper takes the role, or it stays
                        // vacant for the tick and the thread takes it again
                        // (at once if called).
                        std::thread::park_timeout(TICK);
                        break;
                    }
                    drop(shared);
                    if self.state.lock().fds.is_empty() || self.failed.load(Ordering::SeqCst) {
                        // Still holding the role: the exit gives it up.
                        break;
                    }
                },
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

// Real descriptors and epoll: not under Miri.
#[cfg(all(test, not(miri)))]
mod descriptors {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::{Completion, Outcome, StdContext};

    /// Takes the OS poller's role, so that edges wait in epoll until the
    /// test collects them. The poller thread may be waiting in epoll: the
    /// notification ends its round, and it gives the role up (nothing in
    /// this test makes it urgent).
    fn hold_the_role(driver: &Driver) {
        for _ in 0..1_000_000 {
            if driver.shared.lock().role.try_take() {
                return;
            }
            driver.notify();
            std::thread::yield_now();
        }
        panic!("the poller thread never gave the role up");
    }

    #[test]
    fn an_edge_collected_before_a_submit_never_completes_it_with_what_was_read() {
        // The edge of a write is collected (epoll reads IN); before its
        // wakeup runs, a request finds the byte by its own look and
        // completes, the byte is read, and a second request waits. The
        // late wakeup must not complete the second request with the IN
        // that was read before it was submitted.
        let context = StdContext::<4>::new();
        let (ours, mut peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let socket = Fd::new(ours).unwrap();
        let driver = driver().unwrap();
        hold_the_role(driver);
        peer.write_all(b"x").unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let collected = driver.collect(0, &mut events, None).unwrap();
        assert!(
            collected
                .edges
                .iter()
                .any(|edge| { edge.u64 != NOTIFY && events_of(edge.events).contains(Events::IN) }),
            "the write's edge was collected"
        );
        context.submit(&socket, Events::IN, 1).unwrap();
        let mut out = [Completion::EMPTY; 4];
        assert_eq!(context.reap(&mut out), 1);
        assert_eq!(out[0].outcome, Outcome::Ready(Events::IN));
        socket.get_ref().read_exact(&mut [0; 1]).unwrap();
        let handle = context.submit(&socket, Events::IN, 2).unwrap();
        driver.deliver(collected);
        driver.release();
        assert!(
            context.cancel(handle).is_ok(),
            "the late wakeup completed a request with readiness read before its submit"
        );
        assert_eq!(context.reap(&mut out), 1);
        assert_eq!((out[0].user_data, out[0].outcome), (2, Outcome::Cancelled));
    }
}

// The `Known` word alone: also under Miri.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_known_before_the_first_edge() {
        let known = Known::new();
        assert_eq!(known.clear(), Events::empty());
        // A drain alone says nothing of ERR and HUP: a submit still polls.
        known.drained(known.before(), Events::IN | Events::RDNORM);
        assert!(!known
            .clear()
            .contains(Events::IN | Events::ERR | Events::HUP));
    }

    #[test]
    fn an_edge_tells_everything_it_lacks_and_a_drain_adds_to_it() {
        let known = Known::new();
        known.edge(Events::IN | Events::RDNORM | Events::OUT | Events::WRNORM);
        assert_eq!(
            known.clear(),
            Events::all() & !(Events::IN | Events::RDNORM | Events::OUT | Events::WRNORM)
        );
        let before = known.before();
        known.drained(before, Events::IN | Events::RDNORM);
        assert!(known
            .clear()
            .contains(Events::IN | Events::ERR | Events::HUP));
        assert!(!known.clear().contains(Events::OUT));
    }

    #[test]
    fn a_drain_that_an_edge_overtook_is_forgotten() {
        let known = Known::new();
        known.edge(Events::OUT);
        // A read begins; data comes and its edge is collected before the
        // read records that it drained the socket: the data may have come
        // after the read, so IN must not be marked not ready.
        let before = known.before();
        known.edge(Events::IN | Events::OUT);
        known.drained(before, Events::IN);
        assert!(!known.clear().contains(Events::IN));
        // A later read that sees no edge meanwhile records its drain.
        let before = known.before();
        known.drained(before, Events::IN);
        assert!(known.clear().contains(Events::IN));
    }
}

//! [`StdContext`]: a context that threads share, with blocking reaping.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aiopoll::{
    CancelError, Completion, Context, Events, Handle, InProgress, Source, Stats, SubmitError,
};
use parking_lot::Mutex;

use crate::signal::Signal;
use crate::{GetEventsError, Lock, StdLocks};

/// A source as a [`StdContext`] holds it: shared, so that it stays alive
/// until its request's completion has been reaped.
pub type SharedSource = Arc<dyn Source<Lock> + Send + Sync>;

/// Anything that can be submitted to a [`StdContext`]: it hands out the
/// shared source the context keeps alive while the request is in flight.
///
/// Implemented by this crate's sources, by `Arc<S>` for any
/// `S: Source<Lock>` (so your own sources work too), and by
/// [`SharedSource`].
pub trait AsSource {
    /// The source to poll, shared with the context.
    fn as_source(&self) -> SharedSource;
}

impl<S: Source<Lock> + Send + Sync + 'static> AsSource for Arc<S> {
    fn as_source(&self) -> SharedSource {
        self.clone()
    }
}

/// A source already in its shared form (what [`AsSource::as_source`]
/// returns), so code that picks sources at run time can submit them.
impl AsSource for SharedSource {
    fn as_source(&self) -> SharedSource {
        self.clone()
    }
}

/// What the context keeps for one request in flight, under a ticket number
/// (the core's user data): the caller's user data and the source.
struct Ticket {
    user_data: u64,
    /// Never read: holding it keeps the source (and its wait queues) alive
    /// until the core has let go of it.
    _source: SharedSource,
}

/// Tickets of requests in flight; a ticket is taken before the core sees
/// the request and returned after its completion has been reaped.
#[derive(Default)]
struct Tickets {
    entries: Vec<Option<Ticket>>,
    free: Vec<u64>,
}

impl Tickets {
    fn take(&mut self, ticket: Ticket) -> u64 {
        match self.free.pop() {
            Some(number) => {
                self.entries[number as usize] = Some(ticket);
                number
            }
            None => {
                self.entries.push(Some(ticket));
                (self.entries.len() - 1) as u64
            }
        }
    }

    fn give_back(&mut self, number: u64) -> Option<Ticket> {
        let ticket = self.entries.get_mut(number as usize)?.take()?;
        self.free.push(number);
        Some(ticket)
    }
}

/// The pinned part: the core context and the sources it polls. Shared by
/// the [`StdContext`] and its deferred-work thread.
struct Inner<const N: usize> {
    /// Declared before `tickets`, so it is dropped first: the core detaches
    /// every pending request before the sources it points at are released.
    core: Context<'static, N, StdLocks, 2, Signal>,
    tickets: Mutex<Tickets>,
}

impl<const N: usize> Inner<N> {
    /// Builds the context where it will live, on the heap, never on the
    /// stack: with thousands of slots it is megabytes.
    fn new_on_heap() -> Pin<Arc<Self>> {
        let mut inner = Box::<Self>::new_uninit();
        let place = inner.as_mut_ptr();
        // SAFETY: `place` points to an allocation for an `Inner<N>`,
        // aligned and valid for writes, of which each field is written once
        // (the core field by field, by `init_in_place`), so the whole is
        // initialised before `assume_init`.
        let inner = unsafe {
            Context::init_in_place(core::ptr::addr_of_mut!((*place).core), Signal::default());
            core::ptr::addr_of_mut!((*place).tickets).write(Mutex::new(Tickets::default()));
            inner.assume_init()
        };
        // The move into the `Arc` copies the bytes heap to heap; the
        // context is not in use (nor pinned) yet, so it may move.
        let inner: Arc<Self> = Arc::from(inner);
        // SAFETY: the `Arc` is never unwrapped nor its contents moved out:
        // `Inner` is only reached through this `Pin<Arc<_>>` and its clones.
        unsafe { Pin::new_unchecked(inner) }
    }

    /// The deferred-work thread: sleeps until the core's
    /// [`Notify::deferred_work`](aiopoll::Notify::deferred_work) hook
    /// unparks it, runs the work, and exits when the context is dropped.
    fn serve(self: Pin<Arc<Self>>) {
        let signal = self.core.hooks();
        loop {
            std::thread::park();
            if signal.stopping() {
                return;
            }
            // A source whose `poll` panics must not take the thread down
            // with it: the core keeps that request's work pending (as it
            // does for a reaper), and the thread goes on serving the others.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.core.run_deferred()));
        }
    }
}

/// A context for std programs: `N` request slots shared by any number of
/// threads (it is `Send + Sync`; put it in an `Arc` or borrow it from a
/// scope), with [`get_events`](Self::get_events) blocking like Linux's
/// `io_getevents`.
///
/// Sources are submitted by shared handle ([`AsSource`]): the context keeps
/// each source alive until the request's completion has been reaped, so a
/// source may be dropped by its owner at any time (its requests then
/// complete with [`Outcome::SourceGone`](crate::Outcome::SourceGone)).
///
/// Each context has a thread of its own that runs deferred completions the
/// moment a wakeup hands one over, so they never wait for a reaper: see the
/// crate docs. Dropping the context waits for that thread to finish what it
/// is running (one pass of re-polls at most), so do not drop a context while
/// holding a lock that your own source's `poll` takes.
///
/// # Capacity: how many slots, and what they cost
///
/// Each request takes one of the `N` slots from its submit until its
/// completion has been *reaped*, whatever the outcome: a request that was
/// cancelled, or whose source was dropped, keeps its slot until its
/// `Cancelled` or `SourceGone` completion is reaped. So budget slots as
/// *connections × requests per connection + fixed requests* (a listener, a
/// shutdown counter), and admit no more connections than that budget: then
/// [`SubmitError::Busy`] never happens, because every re-submit reuses the
/// slot its own completion just gave back. A server with 10,000
/// connections of two requests each (socket and idle timer) and a listener
/// needs `StdContext::<20_001>`. The `echo_server` example admits
/// connections this way.
///
/// A context allocates [`BYTES`](Self::BYTES) when it is made: under 200
/// bytes per slot on 64-bit targets (151 on x86_64 Linux today; about 3
/// MiB for 20,000 slots), built in place on the heap, so a context of any
/// size is made on any thread's stack. `N` is at most 65,535; for more
/// requests, use several contexts (one per reaping thread, say).
///
/// `N` is a const generic because the core keeps its slots, wait entries
/// and completion queue in fixed arrays, with no allocator (it also runs on
/// microcontrollers): the slot count is part of the context's type and no
/// submit ever allocates or reallocates. A server picks its `N` from its
/// connection limit at compile time; a limit chosen at run time can still
/// admit fewer connections than `N` allows.
pub struct StdContext<const N: usize> {
    inner: Pin<Arc<Inner<N>>>,
    /// The deferred-work thread (`None` if it could not be started).
    worker: Option<JoinHandle<()>>,
}

impl<const N: usize> StdContext<N> {
    /// An empty context, and its deferred-work thread (named
    /// `aiopoll-deferred`; it sleeps until a wakeup defers work, and exits
    /// when the context is dropped). If the OS refuses the thread, the
    /// context works all the same, and deferred work waits for the next
    /// reap.
    pub fn new() -> Self {
        let inner = Inner::new_on_heap();
        let theirs = inner.clone();
        let worker = std::thread::Builder::new()
            .name("aiopoll-deferred".into())
            .spawn(move || theirs.serve())
            .ok();
        if let Some(worker) = &worker {
            // No request exists yet, so no work was deferred before the
            // hook knows whom to unpark.
            inner.core.hooks().set_worker(worker.thread().clone());
        }
        StdContext { inner, worker }
    }

    fn core(&self) -> Pin<&Context<'static, N, StdLocks, 2, Signal>> {
        // SAFETY: `core` is structurally pinned: `Inner` is only ever
        // reached through `Pin<Arc<_>>`, and nothing moves out of it.
        unsafe { self.inner.as_ref().map_unchecked(|inner| &inner.core) }
    }

    /// Submits a one-shot poll request for `events` (plus ERR and HUP,
    /// always) on `source`; `user_data` comes back in its [`Completion`].
    /// If the source is ready now the request completes at once (its
    /// completion is queued like any other).
    ///
    /// # Errors
    /// The core's [`SubmitError`]s, and a refused submit changes nothing:
    /// - `Busy`: all `N` slots are in use, by pending requests and by
    ///   completions not reaped yet (cancelled requests included, until
    ///   their `Cancelled` completion is reaped). Reaping frees slots; if
    ///   the completions are already reaped, every slot holds a pending
    ///   request and only a completion (or a [`cancel`](Self::cancel) and
    ///   the reap of its completion) frees one: give up this request (a
    ///   server closes the connection it was for) or budget more slots (see
    ///   *Capacity* above).
    /// - `UnknownEvents`, `TooManyQueues`, `NotPollable`: see each.
    pub fn submit(
        &self,
        source: &impl AsSource,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        let source = source.as_source();
        let ticket = self.inner.tickets.lock().take(Ticket {
            user_data,
            _source: source.clone(),
        });
        // SAFETY: the ticket holds an `Arc` of the source (whose allocation
        // holds its wait queues) until the request's completion has been
        // reaped (`reap_into` gives the ticket back only after the core's
        // `reap` returned it), or until the context is dropped (`core` is
        // dropped before `tickets`). Dropping a queue closes it.
        let submitted = unsafe { self.core().submit_unchecked(&*source, events, ticket) };
        if submitted.is_err() {
            // Refused: the core keeps nothing, no completion will follow.
            self.inner.tickets.lock().give_back(ticket);
        }
        submitted
    }

    /// Cancels a pending request (Linux's `io_cancel`): `Ok(InProgress)`
    /// means its one completion, [`Outcome::Cancelled`](crate::Outcome::Cancelled),
    /// is already queued.
    ///
    /// # Errors
    /// [`CancelError::NotFound`]: the request already completed, was
    /// cancelled, or the handle is another context's.
    pub fn cancel(&self, handle: Handle) -> Result<InProgress, CancelError> {
        self.inner.core.cancel(handle)
    }

    /// Waits for completions, like `io_getevents(min, max, timeout)`:
    /// returns once at least `min` completions have been taken (up to `max`),
    /// or when `timeout` has passed (`None`: no timeout; `Some(ZERO)`: never
    /// block). The completions are in completion order.
    ///
    /// A thread blocked here wakes as soon as another thread's wakeup
    /// completes a request or defers one (then this thread or the context's
    /// own thread, whichever comes first, runs the deferred work). Several
    /// threads may wait at once; each completion goes to one
    /// of them. Before it sleeps, a waiting thread watches for a completion
    /// for up to 20 µs (never past the timeout): one from another thread
    /// usually lands sooner than a sleeping thread could be woken.
    ///
    /// # Errors
    /// [`GetEventsError::MinAboveMax`] when `min > max`.
    pub fn get_events(
        &self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Completion>, GetEventsError> {
        if min > max {
            return Err(GetEventsError::MinAboveMax { min, max });
        }
        let mut out = Vec::new();
        let mut chunk = [Completion::EMPTY; 16];
        self.wait_for(min, max, timeout, |space| {
            let take = space.min(chunk.len());
            let count = self.reap_into(&mut chunk[..take]);
            out.extend_from_slice(&chunk[..count]);
            count
        });
        Ok(out)
    }

    /// [`get_events`](Self::get_events) into a caller's buffer: `max` is
    /// `out.len()`. Returns how many completions were written.
    ///
    /// # Errors
    /// [`GetEventsError::MinAboveMax`] when `min > out.len()`.
    pub fn get_events_into(
        &self,
        min: usize,
        out: &mut [Completion],
        timeout: Option<Duration>,
    ) -> Result<usize, GetEventsError> {
        if min > out.len() {
            return Err(GetEventsError::MinAboveMax {
                min,
                max: out.len(),
            });
        }
        let mut count = 0;
        self.wait_for(min, out.len(), timeout, |_| {
            let reaped = self.reap_into(&mut out[count..]);
            count += reaped;
            reaped
        });
        Ok(count)
    }

    /// The blocking loop of `get_events`: `reap(room)` takes up to `room`
    /// completions and returns how many it took.
    fn wait_for(
        &self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
        mut reap: impl FnMut(usize) -> usize,
    ) {
        // A timeout too far away to represent is no timeout.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let sleeper = self.inner.core.hooks().sleeper();
        let mut count = 0;
        loop {
            let seen = sleeper.epoch();
            // Reap until nothing more comes or `max` is reached.
            while count < max {
                let reaped = reap(max - count);
                if reaped == 0 {
                    break;
                }
                count += reaped;
            }
            if count >= min || count == max {
                return;
            }
            if timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            sleeper.wait(seen, deadline);
        }
    }

    /// Takes the completions there are now (running deferred work first),
    /// without blocking: `get_events_into(0, out, Some(ZERO))`.
    pub fn reap(&self, out: &mut [Completion]) -> usize {
        self.reap_into(out)
    }

    fn reap_into(&self, out: &mut [Completion]) -> usize {
        let count = self.inner.core.reap(out);
        if count == 0 {
            return 0;
        }
        let mut released = Vec::with_capacity(count);
        {
            let mut tickets = self.inner.tickets.lock();
            for completion in &mut out[..count] {
                // Every ticket the core returns was taken at submit and is
                // given back exactly once, here.
                if let Some(ticket) = tickets.give_back(completion.user_data) {
                    completion.user_data = ticket.user_data;
                    released.push(ticket);
                }
            }
        }
        // Sources are released outside the lock: dropping the last handle
        // of one closes its queues.
        drop(released);
        count
    }

    /// How many completions wait to be reaped.
    pub fn completions(&self) -> usize {
        self.inner.core.completions()
    }

    /// How many slots are in use: pending requests plus unreaped completions.
    pub fn in_use(&self) -> usize {
        self.inner.core.in_use()
    }

    /// The number of request slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The bytes a context of `N` slots allocates when it is made (its
    /// slots, wait entries and completion queue; what the sources and the
    /// requests in flight hold comes on top).
    pub const BYTES: usize = core::mem::size_of::<Inner<N>>();

    /// What the core has done so far.
    pub fn stats(&self) -> Stats {
        self.inner.core.stats()
    }
}

impl<const N: usize> Drop for StdContext<N> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.inner.core.hooks().stop_worker();
            // The worker never owns a `StdContext`, so it cannot be the
            // thread dropping one; the check only keeps a join from waiting
            // on itself.
            if worker.thread().id() != std::thread::current().id() {
                // A panic in the worker was caught where it happened.
                let _ = worker.join();
            }
        }
        // `inner` goes with the last `Arc`, ours now: the core detaches its
        // requests, then the sources are released.
    }
}

impl<const N: usize> Default for StdContext<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for StdContext<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StdContext")
            .field("core", &self.inner.core)
            .finish()
    }
}

//! [`StdContext`]: a context that threads share, with blocking reaping.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aiopoll::{
    BatchRefused, CancelError, Completion, Context, Events, Handle, InProgress, RequestOptions,
    Source, Stats, SubmitError, UpdateError, Updated,
};

use crate::kept::Kept;
use crate::signal::{Signal, NO_DEADLINE};
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

/// The pinned part: the core context and the sources it polls. Shared by
/// the [`StdContext`] and its thread.
struct Inner<const N: usize> {
    /// Declared before `kept`, so it is dropped first: the core detaches
    /// every pending request before the sources it points at are released.
    core: Context<'static, N, StdLocks, 2, Signal>,
    kept: Kept,
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
            Context::init_in_place(core::ptr::addr_of_mut!((*place).core), Signal::new());
            core::ptr::addr_of_mut!((*place).kept).write(Kept::new(N));
            inner.assume_init()
        };
        // The move into the `Arc` copies the bytes heap to heap; the
        // context is not in use (nor pinned) yet, so it may move.
        let inner: Arc<Self> = Arc::from(inner);
        // SAFETY: the `Arc` is never unwrapped nor its contents moved out:
        // `Inner` is only reached through this `Pin<Arc<_>>` and its clones.
        unsafe { Pin::new_unchecked(inner) }
    }

    /// The context's thread: sleeps until the core's
    /// [`Notify::deferred_work`](aiopoll::Notify::deferred_work) hook
    /// unparks it or the earliest deadline comes, runs the deferred work and
    /// expires the requests whose deadline passed, and exits when the
    /// context is dropped.
    fn serve(self: Pin<Arc<Self>>) {
        let signal = self.core.hooks();
        loop {
            let next = signal.next_deadline();
            match signal.instant(next).filter(|_| next != NO_DEADLINE) {
                None => std::thread::park(),
                Some(at) => {
                    let now = Instant::now();
                    if at > now {
                        std::thread::park_timeout(at - now);
                    }
                }
            }
            if signal.stopping() {
                return;
            }
            // A source whose `poll` panics must not take the thread down
            // with it: the core keeps that request's work pending (as it
            // does for a reaper), and the thread goes on serving the others.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.core.run_deferred()));
            if std::panic::catch_unwind(AssertUnwindSafe(|| self.expire_due())).is_err() {
                // The deadline was cleared before the panic: program the
                // next one again from what the core has.
                if let Some(next) = self.core.next_deadline() {
                    signal.program(next);
                }
            }
        }
    }

    /// Expires the requests whose deadline has passed, if the programmed
    /// deadline has (a cheap check otherwise), and programs the next one.
    fn expire_due(&self) {
        let signal = self.core.hooks();
        let next = signal.next_deadline();
        if next == NO_DEADLINE {
            return;
        }
        let now = signal.ticks(Instant::now());
        if next > now {
            return;
        }
        // Cleared first: a deadline armed from now on programs itself again,
        // and every one armed before is seen by `next_deadline` below.
        signal.clear_deadline();
        self.core.expire(now);
        if let Some(next) = self.core.next_deadline() {
            signal.program(next);
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
/// bytes per slot on 64-bit targets (191 on x86_64 Linux today, 40 of them
/// the places where it keeps each request's source; about 3.7 MiB for
/// 20,000 slots), built in place on the heap, so a context of any size is
/// made on any thread's stack. `N` is at most 65,535; for more
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
    /// An empty context, and its thread (named `aiopoll-deferred`; it
    /// sleeps until a wakeup defers work or a request's deadline comes, and
    /// exits when the context is dropped). If the OS refuses the thread, the
    /// context works all the same: deferred work and deadlines then wait for
    /// the next reap (and a thread blocked in `get_events` sleeps no longer
    /// than until the next deadline).
    pub fn new() -> Self {
        let inner = Inner::new_on_heap();
        let theirs = inner.clone();
        let worker = std::thread::Builder::new()
            .name("aiopoll-deferred".into())
            .spawn(move || theirs.serve())
            .ok();
        if let Some(worker) = &worker {
            // No request exists yet, so no work was deferred and no deadline
            // armed before the hooks know whom to unpark.
            inner.core.hooks().set_worker(worker.thread().clone());
        }
        StdContext { inner, worker }
    }

    pub(crate) fn core(&self) -> Pin<&Context<'static, N, StdLocks, 2, Signal>> {
        // SAFETY: `core` is structurally pinned: `Inner` is only ever
        // reached through `Pin<Arc<_>>`, and nothing moves out of it.
        unsafe { self.inner.as_ref().map_unchecked(|inner| &inner.core) }
    }

    /// The context's hooks: its completion signal and deadline clock.
    pub(crate) fn signal(&self) -> &Signal {
        self.inner.core.hooks()
    }

    /// Submits a one-shot poll request for `events` (plus ERR and HUP,
    /// always) on `source`; `user_data` comes back in its [`Completion`],
    /// with the handle returned here. If the source is ready now the request
    /// completes at once (its completion is queued like any other).
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
        self.submit_kept(
            source.as_source(),
            events,
            user_data,
            RequestOptions::ONE_SHOT,
        )
    }

    /// Submits a multishot poll request (io_uring's
    /// `IORING_POLL_ADD_MULTI`): it stays armed, and each readiness of the
    /// source posts a completion with [`Completion::more`] set (readiness
    /// that comes while the previous one is not reaped yet merges into it:
    /// events OR'd, nothing lost). Its final completion, without `more`,
    /// comes when it is cancelled or its source goes; only then does the
    /// context let go of the source.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_multishot(
        &self,
        source: &impl AsSource,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        self.submit_kept(
            source.as_source(),
            events,
            user_data,
            RequestOptions::ONE_SHOT.multishot(),
        )
    }

    /// Submits `requests` in order, like Linux's `io_submit(nr)`: stops at
    /// the first one refused. `accepted` is given the handle of each request
    /// accepted, in order. Returns how many were accepted (all of them).
    ///
    /// # Errors
    /// [`BatchRefused`]: how many were accepted before the refused one, and
    /// the [`SubmitError`] that refused it. Nothing of the refused request
    /// remains, the requests after it are not submitted, and the accepted
    /// ones stand.
    pub fn submit_batch<'a>(
        &self,
        requests: impl IntoIterator<Item = Submission<'a>>,
        mut accepted: impl FnMut(Handle),
    ) -> Result<usize, BatchRefused> {
        let mut count = 0;
        for request in requests {
            match self.submit_kept(
                request.source.as_source(),
                request.events,
                request.user_data,
                RequestOptions::ONE_SHOT,
            ) {
                Ok(handle) => {
                    count += 1;
                    accepted(handle);
                }
                Err(error) => {
                    return Err(BatchRefused {
                        accepted: count,
                        error,
                    })
                }
            }
        }
        Ok(count)
    }

    /// Submits through the core, which calls back under its lock so that
    /// the source is kept before anybody can reap the request. `source` is
    /// the one handle taken for the request: it moves into the place the
    /// request keeps (or is dropped when the submit is refused), so a submit
    /// costs one reference count increment, and the reap one decrement.
    fn submit_kept(
        &self,
        source: SharedSource,
        events: Events,
        user_data: u64,
        options: RequestOptions,
    ) -> Result<Handle, SubmitError> {
        let kept = &self.inner.kept;
        let pointer = Arc::as_ptr(&source);
        // SAFETY: `pointer` is the allocation `source` owns, which lives
        // while any handle of it does. `source` moves into `accepted`, which
        // the core owns until `submit_unchecked_with` returns (and drops
        // then, without the context lock, if it never called it); if the
        // core calls it, under its context lock and before the request can
        // be reaped, the handle moves into the request's place of `kept`,
        // which is emptied only by the `reap_with` callback of the
        // request's final completion (so once the core has let go of the
        // source), or when the context is dropped (`core` is dropped before
        // `kept`). So the reference outlives every use the core makes of it,
        // as `submit_unchecked_with` requires. Dropping a queue closes it.
        unsafe {
            self.core().submit_unchecked_with(
                &*pointer,
                events,
                user_data,
                options,
                // SAFETY: the core calls `accepted` under its context lock,
                // with the handle of a request of this context.
                move |handle| kept.hold(handle, source),
            )
        }
    }

    /// [`submit`](Self::submit) with a deadline (io_uring's linked timeout):
    /// if nothing asked for is ready by `deadline`, the request completes
    /// with [`Outcome::TimedOut`](crate::Outcome::TimedOut), exactly once
    /// against readiness, cancel and teardown (a wakeup that came first
    /// wins). The context's thread expires it on time; a deadline already
    /// past times the request out at once, unless its source is ready.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_with_deadline(
        &self,
        source: &impl AsSource,
        events: Events,
        user_data: u64,
        deadline: Instant,
    ) -> Result<Handle, SubmitError> {
        let ticks = self.inner.core.hooks().ticks(deadline);
        self.submit_kept(
            source.as_source(),
            events,
            user_data,
            RequestOptions::ONE_SHOT.deadline(ticks),
        )
    }

    /// Cancels a pending request (Linux's `io_cancel`): `Ok(InProgress)`
    /// means its one completion, [`Outcome::Cancelled`](crate::Outcome::Cancelled),
    /// is already queued. A wakeup that reached the request first wins,
    /// even one that had to defer: then cancel finds nothing.
    ///
    /// # Errors
    /// [`CancelError::NotFound`]: the request already completed, was
    /// cancelled, or the handle is another context's.
    pub fn cancel(&self, handle: Handle) -> Result<InProgress, CancelError> {
        self.inner.core.cancel(handle)
    }

    /// Cancels every pending request whose user data is `user_data`
    /// (io_uring's `IORING_ASYNC_CANCEL_ALL` matched on user data). Returns
    /// how many it cancelled; each completes once, with
    /// [`Outcome::Cancelled`](crate::Outcome::Cancelled). A request whose
    /// wakeup came first completes with that instead, and is not counted.
    pub fn cancel_user_data(&self, user_data: u64) -> usize {
        self.inner.core.cancel_user_data(user_data)
    }

    /// Cancels every pending request on `source` (io_uring's
    /// `IORING_ASYNC_CANCEL_FD` with `_ALL`), awaited ones included (their
    /// futures resolve with `Cancelled`). Returns how many it cancelled; a
    /// request whose wakeup came first completes with that instead, and is
    /// not counted.
    pub fn cancel_source(&self, source: &impl AsSource) -> usize {
        self.inner.core.cancel_source(&*source.as_source())
    }

    /// Changes the event mask and/or the user data of a pending request
    /// (io_uring's poll update; `None` keeps what it was), atomically with
    /// respect to its wakeups: a wakeup that came first wins (the update
    /// then finds nothing), and readiness for the new mask that is there
    /// already completes the request at once ([`Updated::Completed`]; a
    /// multishot request posts it and keeps waiting).
    ///
    /// # Errors
    /// [`UpdateError::UnknownEvents`] (nothing changed) and
    /// [`UpdateError::NotFound`] (as for [`cancel`](Self::cancel)).
    pub fn update(
        &self,
        handle: Handle,
        events: Option<Events>,
        user_data: Option<u64>,
    ) -> Result<Updated, UpdateError> {
        self.inner.core.update(handle, events, user_data)
    }

    /// Waits for completions, like `io_getevents(min, max, timeout)`:
    /// returns once at least `min` completions have been taken (up to `max`),
    /// or when `timeout` has passed (`None`: no timeout; `Some(ZERO)`: never
    /// block). The completions are in completion order, each with the user
    /// data given at submit and its request's handle.
    ///
    /// A thread blocked here wakes as soon as another thread's wakeup
    /// completes a request or defers one (then this thread or the context's
    /// own thread, whichever comes first, runs the deferred work). Several
    /// threads may wait at once; each completion goes to one
    /// of them. Before it sleeps, a waiting thread watches for a completion
    /// for up to 20 µs (never past the timeout): one from another thread
    /// usually lands sooner than a sleeping thread could be woken.
    ///
    /// On Linux, once an [`Fd`](crate::Fd) exists, a thread that finds
    /// nothing waits in the OS poller (`epoll_wait`) if no other thread
    /// does, like `io_getevents` sleeping in the kernel: it collects the
    /// descriptors' readiness edges and completes their requests itself, and
    /// any other completion of this context ends its wait. The others sleep
    /// as above until it leaves; see [`Fd`](crate::Fd). While a thread
    /// waits in the poller, its timeout is rounded up to whole milliseconds.
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
        let mut chunk = [Completion::EMPTY; RELEASE_BATCH];
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
        let signal = self.inner.core.hooks();
        let bell = signal.bell();
        let mut count = 0;
        // Linux, with an `Fd` made: this thread was rung to take the OS
        // poller, and must take it or pass it on before it returns.
        let mut obliged = false;
        // It collected what the OS poller had, once, before returning empty.
        let mut drove = false;
        // Registered as a waiter once a reap found too few completions:
        // from then on every completion moves the bell's epoch.
        let mut waiting = None;
        loop {
            let seen = bell.epoch();
            // Reap until nothing more comes or `max` is reached.
            while count < max {
                let reaped = reap(max - count);
                if reaped == 0 {
                    break;
                }
                count += reaped;
            }
            let done = count >= min || count == max;
            let expired =
                timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| Instant::now() >= d);
            if done || expired {
                // About to return empty-handed: if nobody waits in the OS
                // poller, collect its edges once (like `io_getevents`, whose
                // completions never wait for another thread), and reap again.
                #[cfg(target_os = "linux")]
                if count == 0 && max > 0 && !drove {
                    drove = true;
                    if crate::fd::existing_driver().is_some_and(|poller| poller.drive_now()) {
                        continue;
                    }
                }
                break;
            }
            if waiting.is_none() {
                // About to wait: register, then look again (with `seen` read
                // after the registration) before waiting.
                waiting = Some(bell.register());
                continue;
            }
            // Without the context's thread, this thread expires requests
            // (in `reap`): it wakes for the next deadline.
            let wake_at = match self.worker {
                Some(_) => deadline,
                None => {
                    let next = signal.next_deadline();
                    let request = signal.instant(next).filter(|_| next != NO_DEADLINE);
                    match (deadline, request) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
            };
            // With `Fd`s: wait in the OS poller if nobody does, else follow.
            #[cfg(target_os = "linux")]
            if let Some(poller) = crate::fd::existing_driver() {
                obliged = poller.wait(bell, seen, wake_at);
                continue;
            }
            bell.wait(seen, wake_at);
        }
        #[cfg(target_os = "linux")]
        if obliged {
            if let Some(poller) = crate::fd::existing_driver() {
                poller.pass_on();
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (obliged, drove);
    }

    /// Takes the completions there are now (running deferred work first),
    /// without blocking: `get_events_into(0, out, Some(ZERO))`.
    pub fn reap(&self, out: &mut [Completion]) -> usize {
        let mut count = 0;
        self.wait_for(0, out.len(), Some(Duration::ZERO), |_| {
            let reaped = self.reap_into(&mut out[count..]);
            count += reaped;
            reaped
        });
        count
    }

    fn reap_into(&self, out: &mut [Completion]) -> usize {
        self.inner.expire_due();
        // Before reaping: a completion queued from here on is either reaped
        // below or makes the descriptor readable again.
        self.signal().drain_fd();
        let mut total = 0;
        for chunk in out.chunks_mut(RELEASE_BATCH) {
            // A small buffer (one completion at a time, say) does not pay
            // for a whole batch of places.
            let count = if chunk.len() <= 2 {
                self.reap_chunk::<2>(chunk)
            } else {
                self.reap_chunk::<RELEASE_BATCH>(chunk)
            };
            total += count;
            if count < chunk.len() {
                return total;
            }
        }
        // `out` is full: completions may still wait, which the drain above
        // took the descriptor's readiness from.
        if total > 0 && self.signal().has_completion_fd() && self.completions() > 0 {
            self.signal().signal_fd();
        }
        total
    }

    /// Reaps into `chunk` (at most `B` long), releasing the sources kept for
    /// the requests that ended once the core's lock is released: dropping a
    /// source's last handle closes its queues.
    fn reap_chunk<const B: usize>(&self, chunk: &mut [Completion]) -> usize {
        let mut released: [Option<SharedSource>; B] = [const { None }; B];
        let mut next = 0;
        let kept = &self.inner.kept;
        let count = self.inner.core.reap_with(chunk, |completion| {
            // SAFETY: the core calls this under its context lock, with a
            // completion it reaped from this context.
            let source = unsafe { kept.release(completion) };
            // One completion per place: `chunk` has at most `B`.
            if let Some(place) = released.get_mut(next) {
                *place = source;
                next += 1;
            }
        });
        drop(released);
        count
    }

    /// A file descriptor that is readable while completions wait to be
    /// reaped (Linux aio's `IOCB_FLAG_RESFD`), for an event loop to watch:
    /// tokio's `AsyncFd`, mio, epoll, poll(2). Made on the first call (an
    /// eventfd, closed with the context) and readable at once if
    /// completions wait already.
    ///
    /// Every completion queued makes it readable, and every reap
    /// ([`reap`](Self::reap), [`get_events`](Self::get_events)) drains it
    /// before taking the completions (and makes it readable again if it
    /// leaves some waiting), so no completion is left unseen: with an
    /// edge-triggered loop, clear its readiness, then reap:
    ///
    /// ```no_run
    /// # async fn serve(context: &aiopoll_std::StdContext<8>) -> std::io::Result<()> {
    /// use tokio::io::{unix::AsyncFd, Interest};
    /// let fd = context.completion_fd()?;
    /// // SAFETY: a `BorrowedFd` stays open while it is borrowed, and the
    /// // `AsyncFd` holding it cannot outlive the borrow.
    /// let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
    /// loop {
    ///     fd.readable().await?.clear_ready();
    ///     for completion in context.get_events(0, 8, Some(std::time::Duration::ZERO)).expect("min <= max") {
    ///         println!("{completion:?}");
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// Awaited requests ([`request`](Self::request)) never make it
    /// readable: their futures are woken instead.
    ///
    /// # Errors
    /// The OS refused the eventfd (out of descriptors or memory).
    #[cfg(target_os = "linux")]
    pub fn completion_fd(&self) -> std::io::Result<std::os::fd::BorrowedFd<'_>> {
        let fd = self.signal().completion_fd()?;
        if self.completions() > 0 {
            self.signal().signal_fd();
        }
        Ok(fd)
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
    /// slots, wait entries and completion queue, and the places where it
    /// keeps each request's source; what the sources and the requests in
    /// flight hold comes on top).
    pub const BYTES: usize = core::mem::size_of::<Inner<N>>() + Kept::bytes(N);

    /// What the core has done so far.
    pub fn stats(&self) -> Stats {
        self.inner.core.stats()
    }
}

/// Completions reaped per hold of the context lock, and so sources released
/// per batch once the lock is released.
const RELEASE_BATCH: usize = 16;

/// One request of a [`StdContext::submit_batch`] (Linux's `iocb` for
/// `IOCB_CMD_POLL`).
pub struct Submission<'a> {
    /// The source to poll.
    pub source: &'a dyn AsSource,
    /// The events asked for (ERR and HUP are always added).
    pub events: Events,
    /// Comes back in the request's [`Completion`].
    pub user_data: u64,
}

impl core::fmt::Debug for Submission<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Submission")
            .field("events", &self.events)
            .field("user_data", &self.user_data)
            .finish_non_exhaustive()
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

//! # aiopoll-std: aiopoll for threads
//!
//! The [`aiopoll`] core bound to std: locks that park a waiting thread
//! instead of spinning ([`Lock`]), a context that threads share
//! ([`StdContext`]) with an `io_getevents`-style blocking
//! [`get_events`](StdContext::get_events), and sources that behave exactly
//! like their Linux namesakes: [`EventCounter`] (eventfd), [`pipe`] (pipe(7)),
//! [`Timer`] (timerfd-like, one timer thread for all timers) and, on Linux,
//! [`Fd`] (any file descriptor, its readiness edges collected from epoll by
//! one poller thread).
//!
//! All of the request protocol (submit, wakeup, deferral, cancel,
//! teardown) is the core's; this crate only keeps sources alive while the
//! core points at them, blocks reapers, and moves bytes and counts.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use aiopoll_std::{Events, EventCounter, Outcome, StdContext};
//!
//! let context = Arc::new(StdContext::<8>::new());
//! let counter = EventCounter::new();
//! context.submit(&counter, Events::IN, 7)?;
//!
//! std::thread::scope(|scope| {
//!     scope.spawn(|| counter.write(1).unwrap());
//!     // Blocks until the other thread's write completes the request.
//!     let done = context.get_events(1, 8, None).unwrap();
//!     assert_eq!(done[0].user_data, 7);
//!     assert_eq!(done[0].outcome, Outcome::Ready(Events::IN));
//! });
//! # Ok::<(), aiopoll_std::SubmitError>(())
//! ```
//!
//! ## Who runs deferred completions
//!
//! A wakeup that cannot take the context's lock (another thread holds it),
//! an unkeyed wakeup (a pipe end closing), or a closing queue hands its
//! request to the core's deferred work, which re-polls the source. Linux
//! runs that work from a kernel work queue at once; here each
//! [`StdContext`] has a thread of its own for it (`aiopoll-deferred`, started
//! with the context, parked while there is nothing to do, joined when the
//! context is dropped). The core's [`Notify::deferred_work`] hook unparks it
//! (it neither blocks nor allocates, as a hook must not) and also wakes a
//! thread blocked in [`get_events`](StdContext::get_events); whichever
//! takes the context lock first runs the work, and every reap runs pending
//! work first too. So a deferred completion never waits for a reaper: it
//! is queued a moment after the wakeup, whether or not anybody reaps.
//!
//! A [`cancel`](StdContext::cancel) that comes after such a wakeup but
//! before its work ran runs that request's work first: the wakeup wins and
//! the cancel reports `NotFound`, as in Linux. Keyed wakeups that find the
//! lock free (every write to an [`EventCounter`] or [`pipe`], a [`Timer`]
//! expiring, an [`Fd`] edge) complete requests inline, without any of this.
//!
//! [`Notify::deferred_work`]: aiopoll::Notify::deferred_work
//!
//! ## Teardown
//!
//! - Dropping a source's last handle ([`EventCounter`], [`Timer`], [`Fd`], a
//!   pipe end) closes its wait queue: requests pending on it complete with
//!   [`Outcome::SourceGone`]. (A pipe end's drop also closes that end, which
//!   the other end's requests see as `HUP` or `ERR`, as in Linux.)
//! - Dropping a [`StdContext`] detaches its pending requests from their
//!   queues, releases the sources it kept alive, and ends its deferred-work
//!   thread (the drop waits for it to exit).
//! - The timer thread and the file-descriptor thread exit on their own when
//!   no timer is armed and no [`Fd`] exists; no thread is left blocked.
//!
//! ## Features
//! - `defmt`: every public type implements `defmt::Format`.
#![warn(missing_docs)]

mod context;
mod counter;
mod error;
#[cfg(target_os = "linux")]
mod fd;
mod pipe;
mod signal;
mod timer;

pub use context::{AsSource, SharedSource, StdContext};
pub use counter::EventCounter;
pub use error::{GetEventsError, SourceError};
#[cfg(target_os = "linux")]
pub use fd::Fd;
pub use pipe::{pipe, pipe_with_capacity, PipeReader, PipeWriter, PIPE_BUF, PIPE_CAPACITY};
pub use timer::Timer;

pub use aiopoll;
pub use aiopoll::{
    CancelError, Completion, Events, Handle, InProgress, Outcome, Stats, SubmitError,
};

/// The lock of every std context and wait queue: `parking_lot`'s raw mutex,
/// which spins a few times and then parks the thread, so a thread waiting
/// for a lock never burns a core while the holder is descheduled.
pub type Lock = parking_lot::RawMutex;

/// The [`aiopoll::Locks`] of a [`StdContext`]: [`Lock`] for the context and
/// for its wait queues.
pub type StdLocks = (Lock, Lock);

/// A wait queue for std sources: implement [`aiopoll::Source<Lock>`] on your
/// own type, with one of these per condition, to make it pollable.
pub type WaitQueue = aiopoll::WaitQueue<Lock>;

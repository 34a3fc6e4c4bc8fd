//! # aiopoll-std: aiopoll for threads
//!
//! The [`aiopoll`] core bound to std: locks that park a waiting thread
//! instead of spinning ([`Lock`]), a context that threads share
//! ([`StdContext`]) with an `io_getevents`-style blocking
//! [`get_events`](StdContext::get_events), and sources that behave exactly
//! like their Linux namesakes: [`EventCounter`] (eventfd), [`pipe`] (pipe(7)),
//! [`Timer`] (timerfd-like, one timer thread for all timers) and, on Linux,
//! [`Fd`] (any file descriptor, notified by the `polling` crate).
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
//! an unkeyed wakeup, or a closing queue hands its request to the core's
//! deferred work. This crate runs that work in whichever thread reaps: every
//! [`get_events`](StdContext::get_events) reaps, reaping runs pending
//! deferred work first, and the core's [`Notify::deferred_work`] hook wakes a
//! thread blocked in `get_events` so that it does so at once. Nobody calls a
//! special function; if no thread is reaping, the work waits for the next
//! one (a completion nobody reaps is seen by nobody).
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
//!   queues and releases the sources it kept alive.
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

#![doc = include_str!("../README.md")]
//!
//! ## The API at a glance
//!
//! - [`StdContext`], with [`submit`](StdContext::submit),
//!   [`get_events`](StdContext::get_events), [`cancel`](StdContext::cancel);
//!   [`submit_batch`](StdContext::submit_batch),
//!   [`submit_multishot`](StdContext::submit_multishot),
//!   [`submit_with_deadline`](StdContext::submit_with_deadline),
//!   [`update`](StdContext::update),
//!   [`cancel_user_data`](StdContext::cancel_user_data),
//!   [`cancel_source`](StdContext::cancel_source).
//! - Async code: [`StdContext::request`] ([`StdRequest`]), and on Linux
//!   [`StdContext::completion_fd`] for an event loop.
//! - Sources: [`EventCounter`], [`pipe`] ([`PipeReader`], [`PipeWriter`]),
//!   [`Timer`], [`Fd`] (Linux), and your own through [`AsSource`].
//! - Locks: [`Lock`], [`StdLocks`], [`WaitQueue`].
//! - Errors: [`SubmitError`], [`CancelError`], [`GetEventsError`],
//!   [`SourceError`], [`BatchRefused`], [`UpdateError`].
//!
//! ## The threads behind a context, and what each event costs
//!
//! Your threads submit and reap; besides them, at most three kinds of
//! thread run, each started when first needed:
//!
//! - **`aiopoll-fd`**, one for all [`Fd`]s: the stand-by of the OS poller.
//!   A thread blocked in [`get_events`](StdContext::get_events) that finds
//!   nothing waits in `epoll_wait` itself and wakes each descriptor's queue
//!   with the readiness epoll reports, which completes its requests inline
//!   on that thread (per event: its share of one `epoll_wait`, one keyed
//!   wakeup). When no reaper waits there, `aiopoll-fd` does the same: at
//!   once for awaited requests and completion descriptors, otherwise once
//!   the poller has stayed unattended for a millisecond. [`Fd`] says how
//!   readiness is found and who collects it.
//! - **`aiopoll-timer`**, one for all [`Timer`]s: sleeps until the earliest
//!   deadline. Arming and disarming cost O(log n) and wake it only when
//!   the earliest deadline moves earlier; per expiry, one keyed wakeup.
//! - **`aiopoll-deferred`**, one per [`StdContext`]: parked until a wakeup
//!   could not complete a request itself (the context's lock was taken, the
//!   wakeup was unkeyed, a queue closed); then it re-polls those sources. Per
//!   such event: an unpark (a futex wake), and a re-poll. It also sleeps
//!   until the earliest request deadline
//!   ([`submit_with_deadline`](StdContext::submit_with_deadline),
//!   [`StdRequest::deadline`]) and expires the requests whose deadline
//!   passed.
//!
//! Every source's `poll` runs at submit (for an [`Fd`], one `poll(2)`,
//! skipped when the events asked for are known not ready: see [`Fd`]), so a
//! request for readiness that is already there completes at once. A reaper
//! in [`get_events`](StdContext::get_events) waits in the OS poller if
//! [`Fd`]s exist and no other reaper does; otherwise it watches for
//! completions for up to 20 µs before it sleeps. BENCHMARKS.md measures the whole chain in a
//! TCP echo server (the `echo_server` example, CPU time per line by
//! thread) beside tokio, mio and thread-per-connection servers.
//!
//! For a server: [`StdContext`]'s docs say how to budget slots so that
//! [`SubmitError::Busy`] cannot happen, and what a slot costs; [`Timer`]'s
//! say how a pending request behaves across a re-arm.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod context;
mod counter;
mod error;
#[cfg(target_os = "linux")]
mod fd;
#[cfg(target_os = "linux")]
mod handoff;
mod kept;
mod lock;
mod pipe;
mod request;
mod signal;
mod timer;
#[cfg(test)]
mod woken_unlocked;

pub use context::{AsSource, SharedSource, StdContext, Submission};
pub use counter::EventCounter;
pub use error::{GetEventsError, SourceError};
#[cfg(target_os = "linux")]
pub use fd::{Fd, StreamSocket};
pub use lock::{Lock, StdLocks};
pub use pipe::{pipe, pipe_with_capacity, PipeReader, PipeWriter, PIPE_BUF, PIPE_CAPACITY};
pub use request::StdRequest;
pub use timer::Timer;

pub use aiopoll;
pub use aiopoll::{
    BatchRefused, CancelError, Completion, Events, Handle, InProgress, Outcome, Stats, SubmitError,
    UpdateError, Updated,
};

/// A wait queue for std sources: implement [`aiopoll::Source<Lock>`] on your
/// own type, with one of these per condition, to make it pollable.
pub type WaitQueue = aiopoll::WaitQueue<Lock>;

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
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod context;
mod counter;
mod error;
#[cfg(target_os = "linux")]
mod fd;
mod kept;
mod pipe;
mod request;
mod signal;
mod timer;

pub use context::{AsSource, SharedSource, StdContext, Submission};
pub use counter::EventCounter;
pub use error::{GetEventsError, SourceError};
#[cfg(target_os = "linux")]
pub use fd::Fd;
pub use pipe::{pipe, pipe_with_capacity, PipeReader, PipeWriter, PIPE_BUF, PIPE_CAPACITY};
pub use request::StdRequest;
pub use timer::Timer;

pub use aiopoll;
pub use aiopoll::{
    BatchRefused, CancelError, Completion, Events, Handle, InProgress, Outcome, Stats, SubmitError,
    UpdateError, Updated,
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

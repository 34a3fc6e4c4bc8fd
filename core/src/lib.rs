//! # aiopoll: one-shot poll requests with exactly-once completion
//!
//! aiopoll brings the Linux aio `IOCB_CMD_POLL` request model to `no_std`
//! Rust. A caller [submits](Context::submit) a one-shot request for an
//! [`Events`] mask on a [`Source`]; the source's [`WaitQueue`]s are woken from
//! interrupt handlers, other threads or another core; the request completes
//! **exactly once** into the [`Context`]'s bounded completion queue, or is
//! [cancelled](Context::cancel) with a definite outcome.
//!
//! ```
//! use core::pin::pin;
//! use aiopoll::{Context, Events, Outcome, PollTable, Source, WaitQueue};
//! use core::sync::atomic::{AtomicBool, Ordering};
//!
//! /// A flag that interrupt handlers raise.
//! struct Flag { raised: AtomicBool, queue: WaitQueue }
//!
//! impl Source for Flag {
//!     fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, aiopoll::SpinLock>) -> Events {
//!         table.wait(&self.queue); // register first ...
//!         if self.raised.load(Ordering::Acquire) { Events::IN } else { Events::empty() } // ... then look
//!     }
//! }
//!
//! let flag = Flag { raised: AtomicBool::new(false), queue: WaitQueue::new() };
//! let context = pin!(Context::<'_, 4>::new());
//! let handle = context.as_ref().submit(&flag, Events::IN, 42).unwrap();
//!
//! // An interrupt handler: change the state, then wake with a key.
//! flag.raised.store(true, Ordering::Release);
//! flag.queue.wake(Events::IN);
//!
//! let mut completions = [aiopoll::Completion::EMPTY; 4];
//! assert_eq!(context.reap(&mut completions), 1);
//! assert_eq!(completions[0].user_data, 42);
//! assert_eq!(completions[0].outcome, Outcome::Ready(Events::IN));
//! assert!(context.cancel(handle).is_err()); // already completed: not found
//! ```
//!
//! The state machine and its proof obligations are written down in
//! [`context`]; the wait queues' locking in [`wait_queue`]; every invariant
//! the `unsafe` code relies on, and the test that guards it, in [`safety`].
//!
//! ## Locks
//!
//! The core is generic over its locks ([`lock_api::RawMutex`]): a context
//! names a [`Locks`] pair, the context's lock and the wait queues' lock. The
//! default is [`spin`]'s mutex; the adapters bring critical-section,
//! priority-ceiling and thread-parking flavours. The lock order is fixed:
//! **context, then wait queue**; the wakeup side holds a wait-queue lock and
//! only ever *tries* a context lock.
//!
//! ## Features
//! - `defmt`: every public type implements `defmt::Format`.
//! - `critical-section`: atomic read-modify-write through `critical-section`
//!   on targets without compare-and-swap (thumbv6m).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod completion;
pub mod context;
mod error;
mod events;
mod locks;
pub mod request;
pub mod safety;
mod source;
mod sync;
pub mod wait_queue;

pub use completion::{Completion, Handle, Outcome};
pub use context::{
    BatchRefused, Context, InProgress, Notify, Stats, Submission, UpdateError, Updated,
};
pub use error::{CancelError, SubmitError};
pub use events::{Events, UnknownEvents};
pub use locks::{Locks, SpinLock, SpinLocks};
pub use request::Request;
pub use source::{PollTable, Source};
pub use wait_queue::WaitQueue;

/// Re-exported so adapters and users name the same lock trait.
pub use lock_api;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#![doc = include_str!("../README.md")]
//!
//! ## Where things are written down
//!
//! - The request's state machine, its transitions and who owns what in each
//!   state: [`context`].
//! - The wait queues' entries, keys and locking: [`wait_queue`].
//! - Every invariant the `unsafe` code relies on, and the test that guards
//!   it: [`safety`].
//! - Which kinds of request a context takes, and what leaving one out saves
//!   (flash, instructions, a deadline per slot): [`kinds`].
//!
//! The entry points: [`Context::submit`], [`Context::cancel`],
//! [`Context::reap`], [`Context::run_deferred`]; a source implements
//! [`Source`] and wakes its [`WaitQueue`]s with [`WaitQueue::wake`].
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod completion;
pub mod context;
mod error;
mod events;
pub mod kinds;
mod locks;
pub mod request;
pub mod safety;
mod source;
mod sync;
pub mod wait_queue;

pub use completion::{Completion, Handle, Outcome};
pub use context::{
    BatchRefused, Context, InProgress, Notify, RequestOptions, Stats, Submission, UpdateError,
    Updated,
};
pub use error::{CancelError, SubmitError};
pub use events::{Events, UnknownEvents};
pub use kinds::{EveryKind, Kinds, QueuedOneShot, RequestKinds};
pub use locks::{Locks, SpinLock, SpinLocks};
pub use request::Request;
pub use source::{AsDynSource, PollTable, Source};
pub use wait_queue::WaitQueue;

/// Re-exported so adapters and users name the same lock trait.
pub use lock_api;

//! Typed errors of submit and cancel, each saying what the caller should do.

use core::fmt;

/// Why a submit was refused. A refused submit changes nothing: no slot is
/// taken, no wait queue keeps an entry, no completion will follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SubmitError {
    /// Every request slot is in use: by pending requests, or by completions
    /// not yet reaped (a cancelled request keeps its slot until its
    /// `Cancelled` completion is reaped). Linux aio reports `EAGAIN`.
    Busy,
    /// The event mask has bits that are not poll events (`EINVAL`).
    UnknownEvents {
        /// The offending bits.
        unknown: u32,
    },
    /// The source registered the request on more wait queues than the
    /// context's per-request limit `W` (`EINVAL`).
    TooManyQueues {
        /// The context's limit.
        limit: usize,
    },
    /// The source registered on no wait queue and nothing asked for is ready:
    /// it can never complete (`EINVAL`, as aio reports for a file that cannot
    /// poll).
    NotPollable,
    /// A multishot request, on a context whose [`Kinds`](crate::Kinds)
    /// leave them out
    /// ([`Context::submit_unchecked_with`](crate::Context::submit_unchecked_with)'s
    /// options).
    MultishotNotTaken,
    /// A deadline, on a context whose [`Kinds`](crate::Kinds) leave them
    /// out (as above).
    DeadlinesNotTaken,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Busy => f.write_str(
                "every request slot is in use: reap completions; if none are left to reap, every slot holds a pending request: give this request up, or cancel one and reap its completion, or make the context larger (budget connections × requests per connection + fixed requests)",
            ),
            SubmitError::UnknownEvents { unknown } => write!(
                f,
                "event mask has unknown bits {unknown:#x}: use only the poll events of `Events`"
            ),
            SubmitError::TooManyQueues { limit } => write!(
                f,
                "the source registered on more than {limit} wait queues: raise the context's `W` parameter"
            ),
            SubmitError::NotPollable => f.write_str(
                "the source registers on no wait queue and none of the requested events is ready: it cannot be polled for them",
            ),
            SubmitError::MultishotNotTaken => f.write_str(
                "this context does not take multishot requests: give it `Kinds` that do (`EveryKind`, the default)",
            ),
            SubmitError::DeadlinesNotTaken => f.write_str(
                "this context does not take deadlines: give it `Kinds` that do (`EveryKind`, the default)",
            ),
        }
    }
}

impl core::error::Error for SubmitError {}

/// Why a cancel found nothing to cancel (Linux aio reports `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CancelError {
    /// The handle names no pending request of this context: it already
    /// completed (its completion is or was in the queue), was already
    /// cancelled, belongs to another context, or was never issued.
    NotFound,
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::NotFound => f.write_str(
                "no pending request for this handle: it already completed or was cancelled (reap its completion), or it belongs to another context",
            ),
        }
    }
}

impl core::error::Error for CancelError {}

//! Typed errors of the std adapter, each saying what to do.

use core::fmt;
use std::io;

/// Why [`StdContext::get_events`](crate::StdContext::get_events) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GetEventsError {
    /// `min` is larger than `max` (Linux's `io_getevents` reports `EINVAL`).
    MinAboveMax {
        /// The minimum asked for.
        min: usize,
        /// The maximum asked for.
        max: usize,
    },
}

impl fmt::Display for GetEventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetEventsError::MinAboveMax { min, max } => write!(
                f,
                "asked to wait for at least {min} completions but to return at most {max}: pass min <= max"
            ),
        }
    }
}

impl std::error::Error for GetEventsError {}

/// Why a non-blocking operation on a source did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SourceError {
    /// The operation would block (Linux's `EAGAIN`): poll for readiness
    /// (`IN` to read, `OUT` to write), then retry.
    WouldBlock,
    /// The pipe's read end is closed (Linux's `EPIPE`): nobody will ever
    /// read what is written; stop writing.
    BrokenPipe,
    /// The value cannot be written (Linux's `EINVAL`): an event counter
    /// never accepts `u64::MAX`.
    InvalidValue,
    /// The timer thread could not be started (the system is out of threads
    /// or memory): the timer stays disarmed; retry later.
    NoTimerThread,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceError::WouldBlock => {
                "the operation would block: wait for readiness (poll IN to read, OUT to write), then retry"
            }
            SourceError::BrokenPipe => "the pipe's read end is closed: stop writing to it",
            SourceError::InvalidValue => {
                "an event counter cannot add u64::MAX: write a value below it"
            }
            SourceError::NoTimerThread => {
                "the timer thread could not be started: free threads or memory, then arm again"
            }
        })
    }
}

impl std::error::Error for SourceError {}

impl From<SourceError> for io::Error {
    fn from(error: SourceError) -> io::Error {
        let kind = match error {
            SourceError::WouldBlock => io::ErrorKind::WouldBlock,
            SourceError::BrokenPipe => io::ErrorKind::BrokenPipe,
            SourceError::InvalidValue => io::ErrorKind::InvalidInput,
            SourceError::NoTimerThread => io::ErrorKind::OutOfMemory,
        };
        io::Error::new(kind, error)
    }
}

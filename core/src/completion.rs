//! What a finished request reports: [`Completion`] and its [`Outcome`], and
//! the [`Handle`] that names a submitted request.

use crate::Events;

/// Linux's `ETIME` ("timer expired").
const ETIME: i64 = 62;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The source became ready: the ready events ∩ the requested events
    /// (which always include [`Events::ERR`] and [`Events::HUP`]). Never empty.
    Ready(Events),
    /// The request was cancelled before any wakeup completed it
    /// (Linux reports result 0).
    Cancelled,
    /// The wait queue the request waited on was closed or dropped (Linux's
    /// `POLLFREE`): the source is gone and will never become ready.
    SourceGone,
    /// The request's deadline passed before anything it asked for was ready
    /// (io_uring's linked timeout; see
    /// [`Context::submit_with_deadline`](crate::Context::submit_with_deadline)).
    TimedOut,
}

impl Outcome {
    /// The result as Linux aio reports it in `io_event::res`: the mask for a
    /// ready request, 0 for a cancelled one, `POLLHUP` for a vanished source,
    /// and `-ETIME` for one whose deadline passed (what io_uring reports for
    /// an expired timeout).
    pub const fn to_linux(self) -> i64 {
        match self {
            Outcome::Ready(events) => events.bits() as i64,
            Outcome::Cancelled => 0,
            Outcome::SourceGone => Events::HUP.bits() as i64,
            Outcome::TimedOut => -ETIME,
        }
    }
}

/// One entry of a context's completion queue: which request, its user data,
/// and how it ended. Every one-shot request produces exactly one; a
/// multishot request produces one per readiness (each with
/// [`more`](Self::more) set) and then a final one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Completion {
    /// The value given at submit (Linux aio's `aio_data`).
    pub user_data: u64,
    /// How the request ended (or, with `more`, what became ready).
    pub outcome: Outcome,
    /// The request this completion belongs to: the handle its submit
    /// returned (Linux aio's `io_event.obj`), so a caller can match the
    /// completion to its request without a map.
    pub handle: Handle,
    /// More completions will follow: a multishot request that stays armed
    /// (io_uring's `IORING_CQE_F_MORE`). Its handle stays valid (to cancel
    /// it) until a completion without `more` arrives.
    pub more: bool,
}

impl Completion {
    /// A placeholder for initialising a reap buffer (its handle names no
    /// request).
    pub const EMPTY: Completion = Completion {
        user_data: 0,
        outcome: Outcome::Cancelled,
        handle: Handle::NONE,
        more: false,
    };
}

impl Default for Completion {
    fn default() -> Self {
        Completion::EMPTY
    }
}

/// Names one submitted request of one context, for [`cancel`].
///
/// A handle carries the slot's generation and its context's identity: once
/// the request's completion has been reaped and the slot reused, or when the
/// handle is shown to another context, it is simply not found.
///
/// [`cancel`]: crate::Context::cancel
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handle {
    pub(crate) context: u32,
    pub(crate) slot: u16,
    pub(crate) generation: u32,
}

impl Handle {
    /// A handle that names no request of any context (context identity 0
    /// is never assigned).
    pub(crate) const NONE: Handle = Handle {
        context: 0,
        slot: 0,
        generation: 0,
    };

    /// The request slot this handle refers to (for logs and tests).
    pub const fn slot(&self) -> u16 {
        self.slot
    }

    /// The generation of the slot at submit (for logs and tests).
    pub const fn generation(&self) -> u32 {
        self.generation
    }
}

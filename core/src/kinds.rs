//! [`Kinds`]: which kinds of request a context takes, so that a firmware
//! pays, in flash and in instructions, only for the kinds it uses.
//!
//! Every context takes one-shot requests whose completions are reaped from
//! its queue: Linux aio's `IOCB_CMD_POLL`. Three kinds are extra:
//!
//! - **multishot** requests ([`Context::submit_multishot`], io_uring's
//!   `IORING_POLL_ADD_MULTI`), which stay armed and post a completion per
//!   readiness;
//! - **awaited** requests ([`Context::request`]), whose outcome goes to a
//!   future instead of the queue, and futures that wait for a free slot;
//! - **deadlines** ([`Context::submit_with_deadline`],
//!   [`Request::deadline`](crate::Request::deadline)), which complete a
//!   request with [`Outcome::TimedOut`](crate::Outcome::TimedOut).
//!
//! A context whose [`Kinds`] leave one out has no way to submit it (the
//! methods that would are not there, and [`Context::submit_unchecked_with`]
//! refuses such options with [`SubmitError::MultishotNotTaken`] or
//! [`SubmitError::DeadlinesNotTaken`]), and the wake
//! function, reap, cancel and deferred work test a constant instead of the
//! request: the compiler drops the code of that kind. A context that takes
//! no deadlines keeps none ([`Kinds::Deadlines`]): 8 bytes less per slot.
//! In the size firmware of `cargo xtask size` (one context, one interrupt
//! source, Cortex-M3), [`QueuedOneShot`] takes 1,924 bytes of flash where
//! [`EveryKind`] takes 3,004, 68 bytes per slot where it takes 76, and a
//! submit → interrupt wake → reap 290 instructions where it takes 367
//! (BENCHMARKS.md).
//!
//! A firmware that only submits and reaps names its context so:
//!
//! ```
//! use core::pin::Pin;
//! use core::sync::atomic::{AtomicBool, Ordering};
//! use aiopoll::{Completion, Context, Events, PollTable, QueuedOneShot, Source, SpinLock, SpinLocks, WaitQueue};
//!
//! struct Flag { raised: AtomicBool, queue: WaitQueue }
//! impl Source for Flag {
//!     fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
//!         table.wait(&self.queue);
//!         if self.raised.load(Ordering::Acquire) { Events::IN } else { Events::empty() }
//!     }
//! }
//!
//! static FLAG: Flag = Flag { raised: AtomicBool::new(false), queue: WaitQueue::new() };
//! // 8 slots, spin locks, one queue per request, no hooks, one-shot queued requests.
//! static CONTEXT: Context<'static, 8, SpinLocks, 1, (), QueuedOneShot> = Context::new();
//!
//! let context = Pin::static_ref(&CONTEXT);
//! context.submit(&FLAG, Events::IN, 7).unwrap();
//! FLAG.raised.store(true, Ordering::Release);
//! FLAG.queue.wake(Events::IN);
//! let mut out = [Completion::EMPTY; 1];
//! assert_eq!(context.reap(&mut out), 1);
//! assert_eq!(out[0].user_data, 7);
//! ```
//!
//! and the kinds it leaves out do not compile:
//!
//! ```compile_fail,E0277
//! # use core::pin::Pin;
//! # use aiopoll::{Context, Events, PollTable, QueuedOneShot, Source, SpinLock, SpinLocks, WaitQueue};
//! # struct Flag { queue: WaitQueue }
//! # impl Source for Flag {
//! #     fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
//! #         table.wait(&self.queue);
//! #         Events::empty()
//! #     }
//! # }
//! # static FLAG: Flag = Flag { queue: WaitQueue::new() };
//! static CONTEXT: Context<'static, 8, SpinLocks, 1, (), QueuedOneShot> = Context::new();
//! // error[E0277]: `QueuedOneShot` does not take multishot requests.
//! let _ = Pin::static_ref(&CONTEXT).submit_multishot(&FLAG, Events::IN, 7);
//! ```
//!
//! ```compile_fail,E0277
//! # use core::pin::Pin;
//! # use aiopoll::{Context, Events, PollTable, QueuedOneShot, Source, SpinLock, SpinLocks, WaitQueue};
//! # struct Flag { queue: WaitQueue }
//! # impl Source for Flag {
//! #     fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
//! #         table.wait(&self.queue);
//! #         Events::empty()
//! #     }
//! # }
//! # static FLAG: Flag = Flag { queue: WaitQueue::new() };
//! static CONTEXT: Context<'static, 8, SpinLocks, 1, (), QueuedOneShot> = Context::new();
//! // error[E0277]: `QueuedOneShot` does not take awaited requests.
//! let _ = Pin::static_ref(&CONTEXT).request(&FLAG, Events::IN);
//! ```
//!
//! [`Context`]: crate::Context
//! [`Context::submit_multishot`]: crate::Context::submit_multishot
//! [`Context::request`]: crate::Context::request
//! [`Context::submit_with_deadline`]: crate::Context::submit_with_deadline
//! [`Context::submit_unchecked_with`]: crate::Context::submit_unchecked_with
//! [`SubmitError::MultishotNotTaken`]: crate::SubmitError::MultishotNotTaken
//! [`SubmitError::DeadlinesNotTaken`]: crate::SubmitError::DeadlinesNotTaken

/// Which kinds of request a [`Context`](crate::Context) takes beyond queued
/// one-shot requests: its last type parameter, [`EveryKind`] unless said.
///
/// Implemented by [`RequestKinds`] alone (sealed): name one of its aliases,
/// [`EveryKind`] or [`QueuedOneShot`], or `RequestKinds<MULTISHOT, AWAITED,
/// DEADLINES>` for another mix.
pub trait Kinds: sealed::Sealed + 'static {
    /// Takes multishot requests.
    const MULTISHOT: bool;
    /// Takes awaited requests (and their futures may wait for a slot).
    const AWAITED: bool;
    /// Takes requests with deadlines.
    const DEADLINES: bool;
    /// Where a context of `N` slots keeps its requests' deadlines: a `u64`
    /// per slot when it takes deadlines, nothing otherwise.
    type Deadlines<const N: usize>: DeadlineStore;
}

/// Where a context keeps its requests' deadlines ([`Kinds::Deadlines`]):
/// `[u64; N]`, or [`NoDeadlines`], which takes no memory. Sealed.
///
/// Every implementation is valid all zeros (a new context is all zeros, so
/// a `static` one takes no flash for its initial value), and is read and
/// written only under the context's lock.
pub trait DeadlineStore: sealed::Sealed {
    /// No slot has a deadline (all zeros).
    const EMPTY: Self;
    /// The deadline of the request in `slot`, set when it armed; the
    /// largest `u64` for a context that keeps none.
    fn get(&self, slot: usize) -> u64;
    /// Sets the deadline of the request in `slot` (nothing for a context
    /// that keeps none).
    fn set(&mut self, slot: usize, deadline: u64);
}

impl<const N: usize> DeadlineStore for [u64; N] {
    const EMPTY: Self = [0; N];

    #[inline(always)]
    fn get(&self, slot: usize) -> u64 {
        // In bounds whenever asked (slots are below N): no panic path.
        self.as_slice().get(slot).copied().unwrap_or(u64::MAX)
    }

    #[inline(always)]
    fn set(&mut self, slot: usize, deadline: u64) {
        if let Some(place) = self.as_mut_slice().get_mut(slot) {
            *place = deadline;
        }
    }
}

/// The [`DeadlineStore`] of a context whose [`Kinds`] leave deadlines out:
/// no memory, and no request ever has a deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoDeadlines;

impl DeadlineStore for NoDeadlines {
    const EMPTY: Self = NoDeadlines;

    #[inline(always)]
    fn get(&self, _slot: usize) -> u64 {
        u64::MAX
    }

    #[inline(always)]
    fn set(&mut self, _slot: usize, _deadline: u64) {}
}

/// The kinds of request a context takes, each `true` or `false`: multishot
/// requests, awaited requests, and deadlines (see the [module](self) docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestKinds<const MULTISHOT: bool, const AWAITED: bool, const DEADLINES: bool>;

impl<const MULTISHOT: bool, const AWAITED: bool> Kinds for RequestKinds<MULTISHOT, AWAITED, true> {
    const MULTISHOT: bool = MULTISHOT;
    const AWAITED: bool = AWAITED;
    const DEADLINES: bool = true;
    type Deadlines<const N: usize> = [u64; N];
}

impl<const MULTISHOT: bool, const AWAITED: bool> Kinds for RequestKinds<MULTISHOT, AWAITED, false> {
    const MULTISHOT: bool = MULTISHOT;
    const AWAITED: bool = AWAITED;
    const DEADLINES: bool = false;
    type Deadlines<const N: usize> = NoDeadlines;
}

/// Every kind of request: the default of [`Context`](crate::Context).
pub type EveryKind = RequestKinds<true, true, true>;

/// Queued one-shot requests only (Linux aio's poll requests): the least
/// flash and the fewest instructions per request.
pub type QueuedOneShot = RequestKinds<false, false, false>;

/// [`Kinds`] that take multishot requests.
pub trait TakesMultishot: Kinds {}

// One impl per value of DEADLINES: `Kinds` is (one impl for each, since
// the deadline store's type depends on it).
impl<const AWAITED: bool> TakesMultishot for RequestKinds<true, AWAITED, true> {}
impl<const AWAITED: bool> TakesMultishot for RequestKinds<true, AWAITED, false> {}

/// [`Kinds`] that take awaited requests.
pub trait TakesAwaited: Kinds {}

impl<const MULTISHOT: bool> TakesAwaited for RequestKinds<MULTISHOT, true, true> {}
impl<const MULTISHOT: bool> TakesAwaited for RequestKinds<MULTISHOT, true, false> {}

/// [`Kinds`] that take deadlines.
pub trait TakesDeadlines: Kinds {}

impl<const MULTISHOT: bool, const AWAITED: bool> TakesDeadlines
    for RequestKinds<MULTISHOT, AWAITED, true>
{
}

mod sealed {
    pub trait Sealed {}

    impl<const MULTISHOT: bool, const AWAITED: bool, const DEADLINES: bool> Sealed
        for super::RequestKinds<MULTISHOT, AWAITED, DEADLINES>
    {
    }

    impl<const N: usize> Sealed for [u64; N] {}

    impl Sealed for super::NoDeadlines {}
}

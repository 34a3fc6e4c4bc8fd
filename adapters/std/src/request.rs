//! [`StdRequest`]: a one-shot poll request as a future, for async code on
//! any executor (tokio, futures-executor, smol, ...).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use aiopoll::{Events, Outcome, SubmitError};

use crate::signal::Signal;
use crate::{AsSource, Lock, SharedSource, StdContext, StdLocks};

/// A one-shot poll request as a future: see [`StdContext::request`].
///
/// It submits its request when first polled and resolves with its one
/// [`Outcome`]; whatever completes the request (a write on another thread,
/// the context's thread running deferred work or a deadline, a source
/// going away) wakes the task once no aiopoll lock is held. Dropping the
/// future cancels a pending request, so a timeout is a `select` against a
/// timer of the executor's, or `tokio::time::timeout`: the request then
/// leaves no trace (its slot is free again, no completion is queued).
///
/// It keeps the source alive until the request is over, and is `Send`, so
/// a task that awaits it can move between threads. Awaited requests share
/// the context's slots with submitted ones but never reach the queue that
/// [`get_events`](StdContext::get_events) drains; when every slot is in
/// use, the future waits for one instead of failing with
/// [`SubmitError::Busy`].
#[must_use = "a request does nothing unless it is awaited"]
pub struct StdRequest<'c, const N: usize> {
    /// Declared before `source`, so dropped first: a pending request is
    /// cancelled while its source is still alive.
    inner: aiopoll::Request<
        'c,
        'static,
        N,
        StdLocks,
        2,
        Signal,
        aiopoll::EveryKind,
        dyn aiopoll::Source<Lock> + Send + Sync,
    >,
    /// Kept alive for the core, which points at it until `inner` is gone.
    source: SharedSource,
    context: &'c StdContext<N>,
    /// While the request is pending (Linux): asks that the OS poller be
    /// driven at once whenever no reaper waits in it, since nothing else
    /// would collect this request's readiness.
    #[cfg(target_os = "linux")]
    demand: Option<crate::fd::Demand>,
}

impl<const N: usize> StdContext<N> {
    /// A one-shot poll request on `source` for `events` (plus ERR and HUP,
    /// always) as a future, resolving with the request's one [`Outcome`]:
    /// `context.request(&socket, Events::IN).await`. Dropping the future
    /// cancels the request. See [`StdRequest`].
    ///
    /// The future resolves with an error only for a request the core
    /// refuses ([`SubmitError::UnknownEvents`], `TooManyQueues`,
    /// `NotPollable`), never `Busy`: it waits for a free slot.
    pub fn request(&self, source: &impl AsSource, events: Events) -> StdRequest<'_, N> {
        let source = source.as_source();
        // SAFETY: the core points at the source until the returned future
        // is dropped (or the context is, which the borrow `'_` rules out
        // first); the future holds an `Arc` of the source (whose allocation
        // holds its wait queues) in `source`, dropped after `inner`.
        // Moving the `Arc` into the future does not move the source.
        let inner = unsafe { self.core().request_unchecked(&*source, events) };
        StdRequest {
            inner,
            source,
            context: self,
            #[cfg(target_os = "linux")]
            demand: None,
        }
    }
}

impl<const N: usize> StdRequest<'_, N> {
    /// Gives the request a deadline: the future resolves with
    /// [`Outcome::TimedOut`] if nothing asked for is ready by then (the
    /// context's thread expires it). Dropping the future at a timer of the
    /// executor's does the same from the task's side.
    pub fn deadline(self, deadline: Instant) -> Self {
        let StdRequest {
            inner,
            source,
            context,
            #[cfg(target_os = "linux")]
            demand,
        } = self;
        let ticks = context.signal().ticks(deadline);
        StdRequest {
            inner: inner.deadline(ticks),
            source,
            context,
            #[cfg(target_os = "linux")]
            demand,
        }
    }

    /// Whether the future has resolved (polling it again returns
    /// `Poll::Pending` for ever).
    pub fn is_resolved(&self) -> bool {
        self.inner.is_resolved()
    }
}

impl<const N: usize> Future for StdRequest<'_, N> {
    type Output = Result<Outcome, SubmitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: only `inner` is structurally pinned, and it is never moved
        // out of a pinned `StdRequest` (only `deadline`, which takes the
        // future by value before it is pinned, moves it); `StdRequest` has
        // no `Drop` of its own. `demand` is not pinned: it is replaced in
        // place below, which moves nothing else.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `inner` stays where it is (see above).
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let poll = inner.poll(cx);
        #[cfg(target_os = "linux")]
        match poll {
            Poll::Pending if this.demand.is_none() && crate::fd::existing_driver().is_some() => {
                this.demand = Some(crate::fd::Demand::new());
            }
            Poll::Ready(_) => this.demand = None,
            Poll::Pending => {}
        }
        poll
    }
}

impl<const N: usize> core::fmt::Debug for StdRequest<'_, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StdRequest")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

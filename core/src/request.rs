//! [`Request`]: a one-shot poll request as a [`Future`].
//!
//! `context.request(&source, events).await` submits a request whose
//! completion goes to the future instead of the completion queue, and
//! resolves with its one [`Outcome`]. It is driven by wakers only: whatever
//! completes the request (an inline wakeup from an interrupt handler or
//! another thread, deferred work, a closing queue) takes the task's
//! [`Waker`](core::task::Waker) out of the request's slot and calls it once
//! it holds no aiopoll lock, so no waker ever runs inside aiopoll's locks
//! and none can re-enter them.
//!
//! Awaited and reaped requests share one context: an awaited request never
//! reaches the queue that [`Context::reap`] drains.
//!
//! # Cancel safety
//!
//! Dropping the future gives the request up with a definite outcome: a
//! pending request is cancelled (a wakeup that had to defer before the drop
//! wins, as for [`Context::cancel`], and its outcome is discarded); a
//! completed one that was never polled again is consumed. Either way the
//! slot is free again and no wait entry or completion is left behind. So a
//! timeout is made by dropping the future: `select(request, timer)`.
//!
//! # Misuse, and what it does
//!
//! - Polled again after it resolved: `Poll::Pending`, and it never wakes
//!   (like a fused future). A request is one-shot; make a new one.
//! - Every slot in use: the future waits (its node sits on the context's
//!   list of slot waiters) and is woken when a slot frees; it never returns
//!   [`SubmitError::Busy`].
//! - `mem::forget` of a submitted future: sound; its slot stays in use for
//!   the context's life (as a leaked submit without a reap would). See
//!   [`safety`](crate::safety).
//!
//! # Deferred work
//!
//! An awaited request is never stranded by deferred work waiting for a
//! reaper (nobody reaps in async code): the adapter must run
//! [`Context::run_deferred`] when [`Notify::deferred_work`] asks (the
//! Cortex-M adapter's pended interrupt, the std adapter's worker thread).

use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context as TaskContext, Poll};

use crate::context::{Awaiting, SlotWaiter};
use crate::kinds::{EveryKind, Kinds, TakesAwaited, TakesDeadlines};
use crate::{AsDynSource, Context, Events, Locks, Notify, Outcome, Source, SubmitError};

/// A one-shot poll request as a future: see [`Context::request`] and the
/// [module docs](self).
///
/// Resolves with `Ok(outcome)`, or with the [`SubmitError`] that refused
/// the request (`UnknownEvents`, `TooManyQueues`, `NotPollable`; never
/// `Busy`: it waits for a slot instead).
///
/// `S` is the source's type, so that the `poll` that submits the request is
/// a direct call (see [`AsDynSource`]); it is `dyn Source` for a source
/// given as a trait object.
#[must_use = "a request does nothing unless it is awaited"]
pub struct Request<
    'c,
    's,
    const N: usize,
    L: Locks,
    const W: usize,
    H: Notify,
    K: Kinds = EveryKind,
    S: ?Sized = dyn Source<<L as Locks>::Queue>,
> {
    context: Pin<&'c Context<'s, N, L, W, H, K>>,
    /// Borrowed for `'s` by [`Context::request`], or kept alive by the
    /// caller of [`Context::request_unchecked`] until the future is
    /// dropped: a pointer, so that the unchecked constructor can take a
    /// source whose type does not outlive `'s`.
    source: NonNull<S>,
    events: Events,
    /// When the request times out (`u64::MAX`: never).
    deadline: u64,
    state: RequestState,
    /// Linked on the context's slot waiters while every slot is in use.
    waiter: SlotWaiter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    /// Not polled yet: nothing submitted.
    Unsubmitted,
    /// Every slot was in use: `waiter` waits for one.
    WaitingForSlot,
    /// Submitted: the slot (of this generation) is this future's.
    Submitted { slot: u16, generation: u32 },
    /// Resolved: the outcome (or error) was returned.
    Resolved,
}

// SAFETY: the fields that are not plainly `Send` are the slot waiter's node
// (raw pointers), which is only ever read or written under the context's
// lock, and the source's pointer, which is only ever used as a shared
// reference to a `Sync` source (the bound); the context is a shared
// reference to a `Sync` thing (the bounds). So moving the future to another
// thread (before it is pinned) or polling it there is sound when the
// context is `Sync`.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized + Sync> Send
    for Request<'_, '_, N, L, W, H, K, S>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

// SAFETY: a shared `&Request` gives access to nothing (every method takes
// `Pin<&mut Self>`), so sharing one between threads is sound.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized + Sync> Sync
    for Request<'_, '_, N, L, W, H, K, S>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// A one-shot poll request as a future: `source` is polled for `events`
    /// (plus ERR and HUP, always) when the future is first polled, and the
    /// future resolves with the request's one [`Outcome`]. Dropping it
    /// cancels the request. See [`Request`].
    ///
    /// ```
    /// # use core::pin::pin;
    /// # use core::sync::atomic::{AtomicBool, Ordering};
    /// # use aiopoll::{Context, Events, Outcome, PollTable, Source, SpinLock, WaitQueue};
    /// # struct Flag { raised: AtomicBool, queue: WaitQueue }
    /// # impl Source for Flag {
    /// #     fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
    /// #         table.wait(&self.queue);
    /// #         if self.raised.load(Ordering::Acquire) { Events::IN } else { Events::empty() }
    /// #     }
    /// # }
    /// # fn block_on<F: core::future::Future>(future: F) -> F::Output {
    /// #     let mut future = pin!(future);
    /// #     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// #     loop { if let core::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) { return out; } }
    /// # }
    /// let flag = Flag { raised: AtomicBool::new(true), queue: WaitQueue::new() };
    /// let context = pin!(Context::<'_, 4>::new());
    /// let outcome = block_on(context.as_ref().request(&flag, Events::IN));
    /// assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
    /// ```
    pub fn request<'c, S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&'c Self>,
        source: &'s S,
        events: Events,
    ) -> Request<'c, 's, N, L, W, H, K, S>
    where
        K: TakesAwaited,
    {
        // SAFETY: `source` and every queue it registers on are borrowed for
        // `'s`, which outlives this context, and so the future.
        unsafe { self.request_unchecked(source, events) }
    }

    /// [`request`](Self::request) for adapters whose sources are kept alive
    /// by other means than a borrow (an `Arc` held beside the future, say).
    ///
    /// # Safety
    /// `source`, and every wait queue it registers on, stay alive and in
    /// place until the returned future has been dropped or the context has
    /// been dropped, as for [`submit_unchecked`](Self::submit_unchecked).
    pub unsafe fn request_unchecked<'c, S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&'c Self>,
        source: &S,
        events: Events,
    ) -> Request<'c, 's, N, L, W, H, K, S>
    where
        K: TakesAwaited,
    {
        // The caller promises `source` outlives the request, which ends at
        // the latest when the future is dropped; the future only ever uses
        // the pointer as a shared reference while it is polled.
        Request {
            context: self,
            source: NonNull::from(source),
            events,
            deadline: u64::MAX,
            state: RequestState::Unsubmitted,
            waiter: SlotWaiter::new(),
        }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized>
    Request<'_, '_, N, L, W, H, K, S>
{
    /// Gives the request a deadline, in the ticks of the clock the adapter
    /// passes to [`Context::expire`]: the future resolves with
    /// [`Outcome::TimedOut`] if nothing asked for is ready by then (see
    /// [`Context::submit_with_deadline`]). For a timeout measured by a
    /// timer of the executor's, dropping the future does the same.
    pub fn deadline(mut self, deadline: u64) -> Self
    where
        K: TakesDeadlines,
    {
        self.deadline = deadline.min(u64::MAX - 1);
        self
    }

    /// Whether the future has resolved (polling it again returns
    /// `Poll::Pending` for ever).
    pub fn is_resolved(&self) -> bool {
        self.state == RequestState::Resolved
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S> Future
    for Request<'_, '_, N, L, W, H, K, S>
where
    S: AsDynSource<L::Queue> + ?Sized,
{
    type Output = Result<Outcome, SubmitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the future: `waiter`, which the
        // context may link, is only ever handed out by shared reference and
        // stays where it is; the other fields are plain values.
        let this = unsafe { self.get_unchecked_mut() };
        match this.state {
            RequestState::Unsubmitted | RequestState::WaitingForSlot => {
                let was_waiting = this.state == RequestState::WaitingForSlot;
                // SAFETY: the source is borrowed for `'s`, which outlives
                // the context, or kept alive by the caller of
                // `request_unchecked` until this future is dropped (so it
                // is there now, and for the request's whole life); `waiter`
                // is pinned in this future, whose `Drop` gives it up before
                // it goes, and only this context ever links it.
                let submitted = unsafe {
                    this.context.submit_awaited(
                        this.source.as_ref(),
                        this.events,
                        &this.waiter,
                        was_waiting,
                        this.deadline,
                        cx.waker(),
                    )
                };
                match submitted {
                    Ok(Awaiting::Pending { slot, generation }) => {
                        this.state = RequestState::Submitted { slot, generation };
                        Poll::Pending
                    }
                    Ok(Awaiting::WaitingForSlot) => {
                        this.state = RequestState::WaitingForSlot;
                        Poll::Pending
                    }
                    Ok(Awaiting::Ready(outcome)) => {
                        this.state = RequestState::Resolved;
                        Poll::Ready(Ok(outcome))
                    }
                    Err(error) => {
                        this.state = RequestState::Resolved;
                        Poll::Ready(Err(error))
                    }
                }
            }
            RequestState::Submitted { slot, generation } => {
                match this.context.poll_awaited(slot, generation, cx.waker()) {
                    Poll::Ready(outcome) => {
                        this.state = RequestState::Resolved;
                        Poll::Ready(Ok(outcome))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            RequestState::Resolved => Poll::Pending,
        }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized> Drop
    for Request<'_, '_, N, L, W, H, K, S>
{
    /// Inline, so that dropping a resolved (or never polled) future, the
    /// usual end of an await, costs a check and no call.
    #[inline]
    fn drop(&mut self) {
        match self.state {
            RequestState::Submitted { slot, generation } => {
                self.context.cancel_awaited(slot, generation);
            }
            RequestState::WaitingForSlot => self.abandon_slot_wait(),
            RequestState::Unsubmitted | RequestState::Resolved => {}
        }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized>
    Request<'_, '_, N, L, W, H, K, S>
{
    /// `Drop` of a future that waits for a slot.
    #[inline(never)]
    fn abandon_slot_wait(&mut self) {
        // SAFETY: `waiter` is linked on this context's list or on none.
        unsafe { self.context.abandon_slot_wait(&self.waiter) }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds, S: ?Sized> core::fmt::Debug
    for Request<'_, '_, N, L, W, H, K, S>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Request")
            .field("events", &self.events)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

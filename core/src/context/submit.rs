//! The requester's side: submit (T1 to T4) and cancel (T9).

use super::*;
use crate::kinds::TakesMultishot;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Submits a one-shot poll request: `source` is polled for `events`
    /// (plus ERR and HUP, always), and the request completes exactly once
    /// with the ready events ∩ those, or is cancelled, or finds its source
    /// gone. `user_data` comes back in the [`Completion`].
    ///
    /// If `source` is ready at once the request completes now (its completion
    /// is queued like any other) and the handle is returned all the same.
    ///
    /// # Errors
    /// - [`SubmitError::UnknownEvents`]: `events` has bits that are not poll
    ///   events.
    /// - [`SubmitError::Busy`]: every slot is in use; reap, then retry.
    /// - [`SubmitError::TooManyQueues`]: the source registered on more than
    ///   `W` queues.
    /// - [`SubmitError::NotPollable`]: the source registered on no queue and
    ///   nothing asked for is ready.
    ///
    /// A refused submit changes nothing.
    ///
    /// `source` is taken by its own type (see [`AsDynSource`]): a
    /// `&dyn Source` works too.
    pub fn submit<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &'s S,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        // SAFETY: `source` and every queue it registers on are borrowed for
        // `'s`, which outlives this context.
        unsafe { self.submit_unchecked(source, events, user_data) }
    }

    /// [`submit`](Self::submit) for adapters whose sources are kept alive by
    /// other means than a borrow (an `Arc` held beside the request, say).
    ///
    /// # Safety
    /// `source`, and every [`WaitQueue`] it registers on, stay alive and in
    /// place until the request's completion has been reaped or the context
    /// has been dropped. (A queue may be closed or dropped earlier only if
    /// dropping it closes it, which [`WaitQueue`]'s `Drop` does; the source
    /// itself may not go.)
    pub unsafe fn submit_unchecked<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &S,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        // SAFETY: the caller's contract is this function's.
        unsafe {
            self.submit_unchecked_with(source, events, user_data, RequestOptions::ONE_SHOT, |_| {})
        }
    }

    /// [`submit_unchecked`](Self::submit_unchecked) with `options` (a
    /// multishot request, a deadline), that calls `accepted` with the
    /// request's handle while the context lock is still held, before any
    /// reaper can see the request: for an adapter that keeps something per
    /// request (the source it keeps alive) and lets go of it in
    /// [`reap_with`](Self::reap_with). A refused submit does not call it.
    /// `accepted` must not call into this context (it would deadlock) and
    /// should not block.
    ///
    /// Every other way of submitting a queued request is this one: the safe
    /// [`submit`](Self::submit), [`submit_multishot`](Self::submit_multishot)
    /// and [`submit_with_deadline`](Self::submit_with_deadline) borrow the
    /// source for the context's lifetime instead.
    ///
    /// # Safety
    /// As [`submit_unchecked`](Self::submit_unchecked): until the request's
    /// final completion (for a multishot request, the one without `more`)
    /// has been reaped, or the context has been dropped.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub unsafe fn submit_unchecked_with<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &S,
        events: Events,
        user_data: u64,
        options: RequestOptions,
        accepted: impl FnOnce(Handle),
    ) -> Result<Handle, SubmitError> {
        let this = self.get_ref();
        let events = checked_events(events)?;
        if options.multishot && !K::MULTISHOT {
            return Err(SubmitError::MultishotNotTaken);
        }
        if options.deadline.is_some() && !K::DEADLINES {
            return Err(SubmitError::DeadlinesNotTaken);
        }
        // SAFETY: the caller promises `source` outlives its request; the slot
        // drops the reference when the request is reaped or the context goes.
        let kept: &'s dyn Source<L::Queue> =
            unsafe { core::mem::transmute(source.as_dyn_source()) };
        let locked = Locked::lock(&this.lock);
        let submitted = this.submit_locked(
            &locked,
            source,
            NewRequest {
                kept,
                events,
                user_data,
                delivery: Delivery::Queue,
                multishot: options.multishot,
                deadline: options
                    .deadline
                    .map_or(NO_DEADLINE, |at| at.min(NO_DEADLINE - 1)),
            },
            &mut None,
        )?;
        accepted(submitted.handle);
        Ok(submitted.handle)
    }

    /// Submits a multishot poll request (io_uring's
    /// `IORING_POLL_ADD_MULTI`): it stays armed after each readiness and
    /// posts one completion per readiness, with [`Completion::more`] set.
    /// It keeps the one completion place its slot reserves: readiness that
    /// arrives while its previous completion is not reaped yet merges into
    /// that completion (events OR'd; nothing lost, nothing dropped, the
    /// queue never overflows). Cancel, a closing queue or a deadline posts
    /// its final completion, without `more`; only then is its slot freed.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_multishot<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &'s S,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError>
    where
        K: TakesMultishot,
    {
        // SAFETY: `source` and every queue it registers on are borrowed for
        // `'s`, which outlives this context.
        unsafe { self.submit_multishot_unchecked(source, events, user_data) }
    }

    /// [`submit_multishot`](Self::submit_multishot) for adapters whose
    /// sources are kept alive by other means than a borrow.
    ///
    /// # Safety
    /// As [`submit_unchecked`](Self::submit_unchecked): until the request's
    /// final completion (the one without `more`) has been reaped, or the
    /// context has been dropped.
    pub unsafe fn submit_multishot_unchecked<S: AsDynSource<L::Queue> + ?Sized>(
        self: Pin<&Self>,
        source: &S,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError>
    where
        K: TakesMultishot,
    {
        // SAFETY: the caller's contract is this function's.
        unsafe {
            self.submit_unchecked_with(
                source,
                events,
                user_data,
                RequestOptions::ONE_SHOT.multishot(),
                |_| {},
            )
        }
    }

    /// T1 to T4 under the context lock, for a request whose completion goes
    /// to `delivery`. An awaited request's task waker is taken out of
    /// `waker` when the request arms (T2); otherwise it is left there, for
    /// the caller to drop once the lock is released.
    ///
    /// Generic over the source's type, so that its `poll` at submit (and
    /// the registration it calls) is a direct call, inlined where the
    /// compiler sees fit; `request.kept` is the same source as the slot
    /// keeps it, for re-polls. Only the poll is generic: what comes before
    /// it ([`begin_submit`](Self::begin_submit)) and after it
    /// ([`finish_submit`](Self::finish_submit)) is not, so every source type
    /// can share one copy of each (the compiler inlines them where it finds
    /// one caller).
    #[inline]
    pub(super) fn submit_locked<S: AsDynSource<L::Queue> + ?Sized>(
        &self,
        locked: &Locked<'_, L::Context>,
        source: &S,
        request: NewRequest<'s, L::Queue>,
        waker: &mut Option<Waker>,
    ) -> Result<Submitted, SubmitError> {
        let slot = self.begin_submit(locked, &request)?;
        // If `poll` unwinds, T4 undoes everything before the lock is released.
        let mut unwind = UndoSubmit {
            context: self,
            locked,
            slot,
            armed: true,
        };
        let mut registration = Registration {
            context: self,
            slot: slot as u16,
            queues: [core::ptr::null_mut(); W],
            registered: 0,
            overflow: false,
            closed: false,
        };
        let ready = source.poll(&mut PollTable::registering(
            &mut registration,
            request.events,
        )) & request.events;
        unwind.armed = false;
        let Registration {
            registered,
            overflow,
            closed,
            ..
        } = registration;
        self.finish_submit(
            locked,
            slot,
            request,
            Polled {
                ready,
                registered,
                overflow,
                closed,
            },
            waker,
        )
    }

    /// T1 submit: `Free → Polling`, a slot taken and set up for `request`,
    /// before its source is polled. `Busy` when every slot is in use.
    #[inline]
    fn begin_submit(
        &self,
        locked: &Locked<'_, L::Context>,
        request: &NewRequest<'s, L::Queue>,
    ) -> Result<usize, SubmitError> {
        let this = self;
        let slot = this
            .with_state(locked, |state| {
                if state.id == 0 {
                    // The context's first submit.
                    state.assign_id();
                    // SAFETY: we hold the context lock; none of its entries
                    // is linked yet (this is its first submit).
                    unsafe { this.header.install(Self::wake_entry) };
                }
                let slot = state.allocate()?;
                let record = &mut state.slots[slot];
                record.phase = Phase::Polling;
                match request.delivery {
                    Delivery::Queue => record.set_queued(request.user_data),
                    Delivery::Awaited => record.set_awaited(),
                }
                record.source = Some(request.kept);
                // Never set where the kinds leave multishot out: the
                // checks of it fold to `false`.
                record.multishot = K::MULTISHOT && request.multishot;
                Some(slot)
            })
            .ok_or(SubmitError::Busy)?;
        transition!("T1 submit", slot);
        debug_assert_eq!(this.words[slot].load(Ordering::Relaxed), 0);
        // Before any entry is linked: wakers read the events here.
        this.words[slot].store(u32::from(request.events.bits()), Ordering::Relaxed);
        Ok(slot)
    }

    /// T2 to T4 once the source's `poll` returned: the request completes
    /// at submit (T3), arms (T2), or is refused (T4).
    #[inline]
    fn finish_submit(
        &self,
        locked: &Locked<'_, L::Context>,
        slot: usize,
        request: NewRequest<'s, L::Queue>,
        polled: Polled,
        waker: &mut Option<Waker>,
    ) -> Result<Submitted, SubmitError> {
        // SAFETY: `slot` is the one `begin_submit` took off the free list
        // (`allocate`), below `N` (safety invariant 13). Told to the
        // compiler, the indexing below has no bounds check, so no panic
        // path.
        unsafe { core::hint::assert_unchecked(slot < N) };
        let this = self;
        let NewRequest {
            multishot,
            deadline,
            ..
        } = request;
        let Polled {
            ready,
            registered,
            overflow,
            closed,
        } = polled;
        this.with_state(locked, |state| {
            if overflow {
                // T4 submit refused: too many queues.
                transition!("T4 submit refused", slot);
                this.detach_all(slot);
                this.words[slot].store(0, Ordering::Relaxed);
                state.release(slot);
                return Err(SubmitError::TooManyQueues { limit: W });
            }
            let outcome = if !ready.is_empty() {
                Some(Outcome::Ready(ready))
            } else if closed {
                Some(Outcome::SourceGone)
            } else if registered == 0 {
                // T4 submit refused: nothing to wait on, nothing ready.
                transition!("T4 submit refused", slot);
                // No entry was linked, so no waker saw the word.
                this.words[slot].store(0, Ordering::Relaxed);
                state.release(slot);
                return Err(SubmitError::NotPollable);
            } else {
                None
            };
            let generation = state.slots[slot].generation;
            let context = state.id;
            state.stats.submitted = state.stats.submitted.wrapping_add(1);
            // A multishot request that is ready at once posts that readiness
            // (T16) and arms; its final completion follows only if a queue
            // it registered on is closed already.
            let outcome = match outcome {
                Some(Outcome::Ready(ready)) if K::MULTISHOT && multishot => {
                    state.slots[slot].phase = Phase::Armed;
                    this.post(state, slot, ready);
                    closed.then_some(Outcome::SourceGone)
                }
                other => other,
            };
            match outcome {
                Some(outcome) => {
                    // T3 submit completes ("steals" the request back).
                    transition!("T3 submit completes", slot);
                    state.stats.completed_at_submit =
                        state.stats.completed_at_submit.wrapping_add(1);
                    // An awaited request's waker is not in the slot yet:
                    // its future takes the outcome at once.
                    let no_waker = this.complete(state, slot, outcome);
                    debug_assert!(no_waker.is_none());
                }
                None => {
                    // T2 submit arms. If a wakeup during `poll` set
                    // PENDING, its deferred work owns the follow-up.
                    transition!("T2 submit arms", slot);
                    let record = &mut state.slots[slot];
                    record.phase = Phase::Armed;
                    // Its deadline is set before anybody else can see the
                    // slot (we hold the lock).
                    if K::DEADLINES {
                        this.with_deadlines(locked, |deadlines| deadlines.set(slot, deadline));
                    }
                    // At most `W`, which is at most 255.
                    record.queues = registered as u8;
                    // `waker()` tells an awaited request (only kinds that
                    // take them can have one). No lock-free reader yet:
                    // wakeups during `poll` could only defer, and deferred
                    // work needs the lock we hold.
                    if K::AWAITED {
                        if let Some(slot_waker) = record.waker() {
                            *slot_waker = waker.take();
                        }
                    }
                }
            }
            Ok(Submitted {
                handle: Handle {
                    context,
                    slot: slot as u16,
                    generation,
                },
                completed: outcome.is_some(),
            })
        })
        .inspect(|submitted| {
            if K::DEADLINES && !submitted.completed && deadline != NO_DEADLINE {
                this.hooks.deadline_armed(deadline);
            }
        })
    }

    /// Submits `requests` in order, like Linux's `io_submit(nr)`: stops at
    /// the first one refused. `accepted` is given the handle of each request
    /// accepted, in order (it runs with no aiopoll lock held).
    ///
    /// # Errors
    /// [`BatchRefused`]: how many were accepted before the refused one, and
    /// the [`SubmitError`] that refused it. Nothing of the refused request
    /// remains, and the requests after it are not submitted; the accepted
    /// ones stand.
    pub fn submit_batch<'r>(
        self: Pin<&Self>,
        requests: impl IntoIterator<Item = &'r Submission<'s, L::Queue>>,
        mut accepted: impl FnMut(Handle),
    ) -> Result<usize, BatchRefused>
    where
        's: 'r,
        L::Queue: 'r,
    {
        let mut count = 0;
        for request in requests {
            match self.submit(request.source, request.events, request.user_data) {
                Ok(handle) => {
                    count += 1;
                    accepted(handle);
                }
                Err(error) => {
                    return Err(BatchRefused {
                        accepted: count,
                        error,
                    })
                }
            }
        }
        Ok(count)
    }

    /// Cancels a pending request (Linux's `io_cancel`).
    ///
    /// `Ok(InProgress)`: the request was pending; it is now complete with
    /// [`Outcome::Cancelled`] and that completion is in the queue. A wakeup
    /// that got there first wins, and then cancel reports `NotFound`: also a
    /// wakeup that had to hand the request to deferred work (an unkeyed
    /// wakeup, a request on two queues, a wakeup that found the context
    /// lock held), because cancel runs that request's deferred work first.
    ///
    /// # Errors
    /// [`CancelError::NotFound`]: the request already completed (its
    /// completion is or was in the queue), was cancelled already, or the
    /// handle belongs to another context.
    pub fn cancel(&self, handle: Handle) -> Result<InProgress, CancelError> {
        let slot = usize::from(handle.slot);
        if slot >= N {
            return Err(CancelError::NotFound);
        }
        // A queued request has no waker: this batch stays empty.
        let mut batch = TaskWakers::<K>::new();
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| {
            if handle.context != state.id {
                return Err(CancelError::NotFound);
            }
            let record = &state.slots[slot];
            // An awaited request is cancelled by dropping its future.
            if record.generation != handle.generation
                || record.phase != Phase::Armed
                || Self::delivery_of(record) != Delivery::Queue
            {
                return Err(CancelError::NotFound);
            }
            Ok(())
        })?;
        // A wakeup that reached the request before this cancel took the lock
        // but had to defer wins: run its work now (T7 or T8), so the outcome
        // does not depend on when the deferred work would have run.
        if self.run_deferred_slot(&locked, slot, &mut batch) == SlotWork::Completed {
            return Err(CancelError::NotFound);
        }
        self.with_state(&locked, |state| {
            // T9 cancel.
            transition!("T9 cancel", slot);
            state.stats.cancelled = state.stats.cancelled.wrapping_add(1);
            let no_waker = self.complete(state, slot, Outcome::Cancelled);
            debug_assert!(no_waker.is_none());
            Ok(InProgress)
        })
    }

    /// Cancels every pending queued request whose user data is `user_data`
    /// (io_uring's `IORING_ASYNC_CANCEL_ALL` matched on user data). Returns
    /// how many it cancelled; each completes once, with
    /// [`Outcome::Cancelled`]. As for [`cancel`](Self::cancel), a request
    /// whose deferred wakeup came first completes with that instead, and is
    /// not counted. Awaited requests have no user data and are never
    /// matched.
    pub fn cancel_user_data(&self, user_data: u64) -> usize {
        self.end_where(
            |record, _| {
                Self::delivery_of(record) == Delivery::Queue && record.user_data() == user_data
            },
            Outcome::Cancelled,
        )
    }

    /// Cancels every pending request on `source`, queued or awaited
    /// (io_uring's `IORING_ASYNC_CANCEL_FD` with `_ALL`). Returns how many
    /// it cancelled; each completes once, with [`Outcome::Cancelled`] (an
    /// awaited one resolves its future with it). A request whose deferred
    /// wakeup came first completes with that instead, and is not counted.
    pub fn cancel_source(&self, source: &dyn Source<L::Queue>) -> usize {
        let target = source as *const dyn Source<L::Queue> as *const ();
        self.end_where(
            |record, _| {
                record.source.is_some_and(|source| {
                    core::ptr::eq(source as *const dyn Source<L::Queue> as *const (), target)
                })
            },
            Outcome::Cancelled,
        )
    }

    /// T9 (for `Outcome::Cancelled`) or T15 (for `Outcome::TimedOut`) for
    /// every armed request that `matches`, each after its own deferred work
    /// (a wakeup that came first wins, and is not counted); a few slots per
    /// lock hold, so that awaiting tasks are woken with no lock held.
    /// Returns how many it ended with `outcome`.
    pub(super) fn end_where(
        &self,
        matches: impl Fn(&Slot<'s, L::Queue>, u64) -> bool,
        outcome: Outcome,
    ) -> usize {
        let mut ended = 0;
        let mut slot = 0;
        while slot < N {
            // Before the guard: woken once the lock is released.
            let mut batch = TaskWakers::<K>::new();
            let locked = Locked::lock(&self.lock);
            while slot < N && batch.has_room() {
                let hit = self.with_state(&locked, |state| {
                    let record = &state.slots[slot];
                    record.phase == Phase::Armed
                        && matches(
                            record,
                            self.with_deadlines(&locked, |deadlines| deadlines.get(slot)),
                        )
                });
                if hit && self.run_deferred_slot(&locked, slot, &mut batch) != SlotWork::Completed {
                    self.with_state(&locked, |state| {
                        if outcome == Outcome::TimedOut {
                            // T15 deadline passes.
                            transition!("T15 deadline passes", slot);
                            state.stats.timed_out = state.stats.timed_out.wrapping_add(1);
                        } else {
                            // T9 cancel.
                            transition!("T9 cancel", slot);
                            state.stats.cancelled = state.stats.cancelled.wrapping_add(1);
                        }
                        if let Some(waker) = self.complete(state, slot, outcome) {
                            batch.push(waker);
                        }
                    });
                    ended += 1;
                }
                slot += 1;
            }
        }
        ended
    }
}

/// How a queued request is armed beyond its source, events and user data
/// (io_uring's poll flags and linked timeout), for
/// [`Context::submit_unchecked_with`].
///
/// ```
/// use aiopoll::RequestOptions;
///
/// let options = RequestOptions::ONE_SHOT.multishot().deadline(1_000);
/// assert!(options.multishot);
/// assert_eq!(options.deadline, Some(1_000));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestOptions {
    /// Stays armed after each readiness, posting one completion per
    /// readiness (see [`Context::submit_multishot`]).
    pub multishot: bool,
    /// Completes with [`Outcome::TimedOut`] if still pending at this time,
    /// in the ticks of the adapter's clock (see
    /// [`Context::submit_with_deadline`]); `None`: never. A multishot
    /// request with a deadline posts its readiness until then, and its
    /// final completion is `TimedOut`.
    pub deadline: Option<u64>,
}

impl RequestOptions {
    /// A one-shot request without a deadline, what
    /// [`Context::submit`] submits.
    pub const ONE_SHOT: Self = RequestOptions {
        multishot: false,
        deadline: None,
    };

    /// These options, multishot.
    #[must_use]
    pub const fn multishot(self) -> Self {
        RequestOptions {
            multishot: true,
            ..self
        }
    }

    /// These options, with a deadline in the ticks of the adapter's clock.
    #[must_use]
    pub const fn deadline(self, deadline: u64) -> Self {
        RequestOptions {
            deadline: Some(deadline),
            ..self
        }
    }
}

/// One request of a [`Context::submit_batch`] (Linux's `iocb` for
/// `IOCB_CMD_POLL`).
pub struct Submission<'s, Q: lock_api::RawMutex = crate::SpinLock> {
    /// The source to poll.
    pub source: &'s dyn Source<Q>,
    /// The events asked for (ERR and HUP are always added).
    pub events: Events,
    /// Comes back in the request's [`Completion`].
    pub user_data: u64,
}

impl<Q: lock_api::RawMutex> core::fmt::Debug for Submission<'_, Q> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Submission")
            .field("events", &self.events)
            .field("user_data", &self.user_data)
            .finish_non_exhaustive()
    }
}

/// Why [`Context::submit_batch`] stopped early: how far it got, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchRefused {
    /// Requests accepted before the refused one (they stand).
    pub accepted: usize,
    /// Why the next one was refused.
    pub error: SubmitError,
}

impl core::fmt::Display for BatchRefused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the batch stopped after {} accepted requests: {}",
            self.accepted, self.error
        )
    }
}

impl core::error::Error for BatchRefused {}

/// What [`Context::submit_locked`] is asked to submit.
pub(super) struct NewRequest<'s, Q: lock_api::RawMutex> {
    /// The source as its slot keeps it (for re-polls), for `'s`: the
    /// submitting function's caller promised it lives that long.
    pub(super) kept: &'s dyn Source<Q>,
    /// Already checked, with ERR and HUP added.
    pub(super) events: Events,
    pub(super) user_data: u64,
    pub(super) delivery: Delivery,
    pub(super) multishot: bool,
    /// In the adapter's ticks, below [`NO_DEADLINE`]; [`NO_DEADLINE`]:
    /// none.
    pub(super) deadline: u64,
}

/// What a source's `poll` at submit answered, and what it registered.
struct Polled {
    /// The events ready, of those asked for.
    ready: Events,
    /// How many queues the request registered on.
    registered: usize,
    /// The source asked for more than `W` queues.
    overflow: bool,
    /// The source registered on a closed queue.
    closed: bool,
}

/// What [`Context::submit_locked`] accepted.
pub(super) struct Submitted {
    pub(super) handle: Handle,
    /// It completed at submit (T3).
    pub(super) completed: bool,
}

/// The events a request waits for, or why they are refused.
pub(super) fn checked_events(events: Events) -> Result<Events, SubmitError> {
    let unknown = events.unknown_bits();
    if unknown != 0 {
        return Err(SubmitError::UnknownEvents {
            unknown: u32::from(unknown),
        });
    }
    Ok(events | Events::ALWAYS)
}

/// Registers the request being submitted on the queues its source names.
struct Registration<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> {
    context: &'c Context<'s, N, L, W, H, K>,
    slot: u16,
    /// The distinct queues registered so far, linked or found closed; the
    /// entry of the same index is linked on the queue unless it was closed.
    queues: [*mut (); W],
    /// How many of `queues` are in use.
    registered: usize,
    /// The source asked for more than `W` queues.
    overflow: bool,
    /// The source registered on a closed queue.
    closed: bool,
}

/// For a queue borrowed for any `'q`: a source's `poll` is generic over the
/// borrow of itself it is given, so the queues it registers on are its own
/// (or live longer), and live as long as the source, which outlives the
/// request (the submitting function's contract).
impl<'q, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Registrar<'q, L::Queue>
    for Registration<'_, '_, N, L, W, H, K>
{
    #[inline]
    fn register(&mut self, queue: &'q WaitQueue<L::Queue>) {
        let erased = queue as *const WaitQueue<L::Queue> as *mut ();
        // Registering twice on one queue is once (io_uring's double poll
        // does the same).
        // (`get`: no bounds checks, so no panic path; `registered` is at
        // most `W` and the slot below `N`, so both are always there.)
        let registered = self.queues.get(..self.registered).unwrap_or(&[]);
        if registered.contains(&erased) {
            return;
        }
        let index = self.registered;
        let entries = self.context.entries.get(usize::from(self.slot));
        let Some(entry) = entries.and_then(|entries| entries.get(index)) else {
            self.overflow = true;
            return;
        };
        self.queues[index] = erased;
        self.registered += 1;
        // SAFETY: the entry is unused (each index is used once per submit,
        // and a Free slot has no linked entry); we hold the context lock; the
        // queue lives as long as the source (see the impl's doc), which
        // outlives the request, and the context detaches the entry before
        // either goes.
        let attached = unsafe { queue.attach::<L>(entry, self.context.header()) };
        if !attached {
            self.closed = true;
        }
    }
}

/// T4 when a source's `poll` unwinds: the slot goes back, no entry stays.
struct UndoSubmit<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> {
    context: &'c Context<'s, N, L, W, H, K>,
    locked: &'c Locked<'c, L::Context>,
    slot: usize,
    armed: bool,
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Drop
    for UndoSubmit<'_, '_, N, L, W, H, K>
{
    fn drop(&mut self) {
        // SAFETY: `slot` is the one `begin_submit` took off the free list
        // (`allocate`), below `N` (safety invariant 13): no bounds check,
        // so no panic path, in the undo.
        unsafe { core::hint::assert_unchecked(self.slot < N) };
        if self.armed {
            // T4 submit refused: `poll` panicked. The context lock is still
            // held (its guard is dropped after this one).
            transition!("T4 submit refused", self.slot);
            self.context.detach_all(self.slot);
            self.context.words[self.slot].store(0, Ordering::Relaxed);
            self.context
                .with_state(self.locked, |state| state.release(self.slot));
        }
    }
}

//! The contract as a plain, single-threaded reference model, and a harness
//! that runs one operation sequence against the model and the real core,
//! comparing every return value and every completion. Shared by the
//! property test (`tests/model.rs`) and the fuzz target (`fuzz/`).
//!
//! Where the contract leaves timing to the implementation (a wakeup the
//! core must defer), the model says when the deferred work runs: at the next
//! reap or `run_deferred`.
//!
//! `Request` futures take part: made, polled and dropped at any point
//! between the other operations. The model says what each poll returns,
//! which slot each holds, and how many times each future's task is woken
//! (by its completion, or by a slot freeing while it waits for one); the
//! harness checks all three after every operation.

use std::collections::HashMap;
use std::pin::Pin;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use aiopoll::{CancelError, Completion, Context, Events, Handle, Outcome, SubmitError};

use super::{fail_next_try_locks, try_lock_failures_left, Device, FaultLock};

/// Request slots of the context under test.
pub const SLOTS: usize = 4;
/// Wait queues one request may sit on.
pub const LIMIT: usize = 2;
/// How many sources the harness has (see [`sources`]).
pub const SOURCES: usize = 7;
/// The source whose registering `poll` panics.
pub const PANICS: usize = 6;

/// One operation of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Submit {
        source: usize,
        events: u16,
        user_data: u64,
    },
    SetReady {
        source: usize,
        events: u16,
    },
    Wake {
        source: usize,
        queue: usize,
        key: u16,
    },
    Close {
        source: usize,
        queue: usize,
    },
    Reopen {
        source: usize,
        queue: usize,
    },
    Cancel {
        nth: usize,
    },
    Reap {
        max: usize,
    },
    RunDeferred,
    DropContext,
    /// Fault injection: the context lock's next `count` try-locks fail, so
    /// wakeups that would complete inline defer instead.
    FailTryLocks {
        count: u32,
    },
    /// Submits a multishot request.
    SubmitMultishot {
        source: usize,
        events: u16,
        user_data: u64,
    },
    /// Submits with a deadline.
    SubmitWithDeadline {
        source: usize,
        events: u16,
        user_data: u64,
        deadline: u64,
    },
    /// The adapter's clock says `now`: expire the deadlines up to it.
    Expire {
        now: u64,
    },
    /// Submits these in order, stopping at the first refused.
    SubmitBatch {
        requests: Vec<(usize, u16, u64)>,
    },
    /// Updates the `nth` submitted request's events and/or user data.
    Update {
        nth: usize,
        events: Option<u16>,
        user_data: Option<u64>,
    },
    /// Cancels every pending queued request with this user data.
    CancelUserData {
        user_data: u64,
    },
    /// Cancels every pending request on this source.
    CancelSource {
        source: usize,
    },
    /// Makes a `Request` future (not polled yet: nothing submitted).
    AwaitNew {
        source: usize,
        events: u16,
        deadline: Option<u64>,
    },
    /// Polls the `nth` future made so far (a no-op once it is dropped).
    AwaitPoll {
        nth: usize,
    },
    /// Drops the `nth` future made so far.
    AwaitDrop {
        nth: usize,
    },
}

/// Builds the sources: 0 registers nowhere, 1, 2 and 3 on that many queues
/// (3 is over the limit), 4 wakes its own queue with IN inside `poll` and
/// reports unknown bits, 5 registers on its queue twice, 6 ([`PANICS`])
/// registers on its queue and then panics.
pub fn sources() -> [Device<FaultLock>; SOURCES] {
    let mut devices: [Device<FaultLock>; SOURCES] = core::array::from_fn(|source| {
        Device::new(match source {
            0 => 0,
            1 | 4 | 5 | PANICS => 1,
            2 => 2,
            _ => 3,
        })
    });
    devices[4].wakes_itself = Some(Events::IN);
    devices[4].unknown_bits = true;
    devices[5].registers_twice = true;
    devices[PANICS].panics = true;
    devices
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Waiting on `linked` queues; `pending`: a wakeup handed it to deferred
    /// work; `gone`: one of its queues closed.
    Armed {
        linked: Vec<usize>,
        pending: bool,
        gone: bool,
    },
    Completed(Outcome),
    /// Its context was dropped.
    Dropped,
}

#[derive(Clone, Debug)]
struct Request {
    source: usize,
    events: Events,
    user_data: u64,
    state: State,
    /// The future that awaits it, or `None` for a queued (reaped) request.
    future: Option<usize>,
    /// When it times out, if it has a deadline.
    deadline: Option<u64>,
    /// A multishot request (stays armed after each readiness).
    multishot: bool,
    /// Its readiness posted and not reaped yet (empty: none).
    posted: Events,
}

/// A `Request` future, as the model sees it.
#[derive(Clone, Debug, PartialEq)]
enum FutureState {
    /// Made, never polled.
    Unsubmitted,
    /// Found every slot in use; `notified`: a freed slot woke it (it is
    /// then no longer on the slot waiters' list).
    Waiting { notified: bool },
    /// Holds request `index`.
    Submitted(usize),
    /// Returned its output, or dropped.
    Resolved,
}

#[derive(Clone, Debug)]
struct FutureModel {
    source: usize,
    events: u16,
    deadline: Option<u64>,
    state: FutureState,
    /// How many times its task has been woken.
    wakes: usize,
}

/// The contract, written plainly.
#[derive(Default)]
pub struct Model {
    ready: [Events; SOURCES],
    closed: [[bool; 3]; SOURCES],
    requests: Vec<Request>,
    /// Completed, unreaped: indices into `requests`, in batches, oldest
    /// batch first. Inline completions are batches of one; one run of
    /// deferred work is one batch, whose order the contract leaves open.
    completed: Vec<Vec<usize>>,
    /// Armed or completed-but-unreaped.
    in_use: usize,
    /// Scheduled try-lock failures left.
    failures: u32,
    futures: Vec<FutureModel>,
    /// The next submit is a multishot one.
    multishot_next: bool,
    /// Futures waiting for a slot, oldest first.
    slot_waiters: std::collections::VecDeque<usize>,
}

fn queues_used(source: usize) -> usize {
    match source {
        0 => 0,
        1 | 4 | 5 => 1,
        2 => 2,
        _ => 3,
    }
}

impl Model {
    /// A completion: a queued request's goes into the completion queue; an
    /// awaited request's wakes its future's task.
    fn complete(&mut self, index: usize, outcome: Outcome) {
        self.requests[index].state = State::Completed(outcome);
        match self.requests[index].future {
            // A multishot request with readiness unreaped is queued already.
            None if !self.requests[index].posted.is_empty() => {}
            None => self.completed.push(vec![index]),
            Some(future) => self.futures[future].wakes += 1,
        }
    }

    /// A multishot request's readiness: queued once, merged after.
    fn post(&mut self, index: usize, ready: Events) {
        let request = &mut self.requests[index];
        if request.posted.is_empty() {
            request.posted = ready;
            self.completed.push(vec![index]);
        } else {
            request.posted |= ready;
        }
    }

    /// What a wakeup that is ready does: a multishot request posts, any
    /// other completes. Returns whether the request completed.
    fn ready(&mut self, index: usize, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Ready(ready) if self.requests[index].multishot => {
                self.post(index, ready);
                false
            }
            outcome => {
                self.complete(index, outcome);
                true
            }
        }
    }

    /// Runs the request's own deferred work first (as cancel, update,
    /// expire and a dropped future do); returns whether it completed it.
    fn deferred_first(&mut self, index: usize) -> bool {
        match self.deferred_outcome(index) {
            Some(outcome) => self.ready(index, outcome),
            None => false,
        }
    }

    /// A slot frees (reaped, or taken by its future): the oldest future
    /// waiting for one is woken.
    fn free_slot(&mut self) {
        self.in_use -= 1;
        self.notify_slot_waiter();
    }

    fn notify_slot_waiter(&mut self) {
        if let Some(future) = self.slot_waiters.pop_front() {
            self.futures[future].state = FutureState::Waiting { notified: true };
            self.futures[future].wakes += 1;
        }
    }

    /// What a cancel finds for a request whose wakeup deferred: the
    /// outcome its deferred work would give, if any.
    fn deferred_outcome(&mut self, index: usize) -> Option<Outcome> {
        let State::Armed {
            pending: pending @ true,
            gone,
            ..
        } = &mut self.requests[index].state
        else {
            return None;
        };
        *pending = false;
        let gone = *gone;
        let request = &self.requests[index];
        if gone {
            Some(Outcome::SourceGone)
        } else {
            let ready = self.ready[request.source] & request.events;
            (!ready.is_empty()).then_some(Outcome::Ready(ready))
        }
    }

    fn poll_future(&mut self, future: usize) -> std::task::Poll<Result<Outcome, SubmitError>> {
        use std::task::Poll;
        let FutureModel {
            source,
            events,
            deadline,
            ref state,
            ..
        } = self.futures[future];
        match state.clone() {
            FutureState::Unsubmitted | FutureState::Waiting { .. } => {
                let notified = *state == FutureState::Waiting { notified: true };
                let linked = self.slot_waiters.contains(&future);
                match self.submit_for(source, events, 0, Some(future)) {
                    Err(SubmitError::Busy) => {
                        if !linked {
                            self.slot_waiters.push_back(future);
                        }
                        self.futures[future].state = FutureState::Waiting { notified: false };
                        Poll::Pending
                    }
                    other => {
                        self.slot_waiters.retain(|&other| other != future);
                        match other {
                            Ok(index) => {
                                if let State::Completed(outcome) = self.requests[index].state {
                                    self.requests[index].state = State::Dropped;
                                    self.free_slot();
                                    self.futures[future].state = FutureState::Resolved;
                                    Poll::Ready(Ok(outcome))
                                } else {
                                    self.requests[index].deadline = deadline;
                                    self.futures[future].state = FutureState::Submitted(index);
                                    Poll::Pending
                                }
                            }
                            Err(error) => {
                                if notified {
                                    self.notify_slot_waiter();
                                }
                                self.futures[future].state = FutureState::Resolved;
                                Poll::Ready(Err(error))
                            }
                        }
                    }
                }
            }
            FutureState::Submitted(index) => match self.requests[index].state {
                State::Completed(outcome) => {
                    self.requests[index].state = State::Dropped;
                    self.free_slot();
                    self.futures[future].state = FutureState::Resolved;
                    Poll::Ready(Ok(outcome))
                }
                _ => Poll::Pending,
            },
            FutureState::Resolved => Poll::Pending,
        }
    }

    fn drop_future(&mut self, future: usize) {
        match self.futures[future].state.clone() {
            FutureState::Submitted(index) => {
                if matches!(self.requests[index].state, State::Armed { .. }) {
                    // Nobody is woken: the task is letting go. A deferred
                    // wakeup that came first still wins (it is no cancel).
                    let outcome = self.deferred_outcome(index).unwrap_or(Outcome::Cancelled);
                    self.requests[index].state = State::Completed(outcome);
                }
                self.requests[index].state = State::Dropped;
                self.free_slot();
            }
            FutureState::Waiting { notified } => {
                self.slot_waiters.retain(|&other| other != future);
                if notified {
                    self.notify_slot_waiter();
                }
            }
            FutureState::Unsubmitted | FutureState::Resolved => {}
        }
        self.futures[future].state = FutureState::Resolved;
    }

    /// A wakeup tries the context lock: fails while failures are scheduled.
    fn try_lock(&mut self) -> bool {
        if self.failures > 0 {
            self.failures -= 1;
            false
        } else {
            true
        }
    }

    fn completions(&self) -> usize {
        self.completed.iter().map(Vec::len).sum()
    }

    fn submit(&mut self, source: usize, events: u16, user_data: u64) -> Result<usize, SubmitError> {
        self.submit_for(source, events, user_data, None)
    }

    /// A submit whose completion goes to the completion queue (`future`:
    /// `None`) or to that future.
    fn submit_for(
        &mut self,
        source: usize,
        events: u16,
        user_data: u64,
        future: Option<usize>,
    ) -> Result<usize, SubmitError> {
        let unknown = events & !Events::all().bits();
        if unknown != 0 {
            return Err(SubmitError::UnknownEvents {
                unknown: u32::from(unknown),
            });
        }
        if self.in_use == SLOTS {
            return Err(SubmitError::Busy);
        }
        let used = queues_used(source);
        if used > LIMIT {
            return Err(SubmitError::TooManyQueues { limit: LIMIT });
        }
        let events = Events::from_bits_retain(events) | Events::ERR | Events::HUP;
        let linked: Vec<usize> = (0..used)
            .filter(|&queue| !self.closed[source][queue])
            .collect();
        let any_closed = linked.len() < used;
        let ready = self.ready[source] & events;
        if ready.is_empty() && !any_closed && used == 0 {
            return Err(SubmitError::NotPollable);
        }
        self.in_use += 1;
        let index = self.requests.len();
        self.requests.push(Request {
            source,
            events,
            user_data,
            state: State::Armed {
                linked,
                pending: false,
                gone: false,
            },
            future,
            deadline: None,
            multishot: self.multishot_next,
            posted: Events::empty(),
        });
        if source == 4 && !self.closed[4][0] {
            // The source wakes its queue with IN while the submitter holds
            // the context lock: every matching waiter's wakeup is deferred,
            // the new request's included.
            for request in &mut self.requests {
                if let State::Armed {
                    linked, pending, ..
                } = &mut request.state
                {
                    if request.source == 4
                        && linked.contains(&0)
                        && request.events.intersects(Events::IN)
                        && !*pending
                    {
                        *pending = true;
                        // The wakeup tried the lock (and found it held);
                        // one already pending joins its deferred work
                        // without a try.
                        self.failures = self.failures.saturating_sub(1);
                    }
                }
            }
        }
        let at_submit = if !ready.is_empty() {
            Some(Outcome::Ready(ready))
        } else if any_closed {
            Some(Outcome::SourceGone)
        } else {
            None
        };
        match (at_submit, future) {
            (Some(Outcome::Ready(ready)), None) if self.multishot_next => {
                // Posted at once; it ends now only if a queue was closed.
                self.post(index, ready);
                if any_closed {
                    self.complete(index, Outcome::SourceGone);
                }
            }
            (Some(outcome), None) => self.complete(index, outcome),
            // The future takes it at once; its task is not woken.
            (Some(outcome), Some(_)) => self.requests[index].state = State::Completed(outcome),
            (None, _) => {}
        }
        Ok(index)
    }

    fn wake(&mut self, source: usize, queue: usize, key: Events) -> usize {
        let mut woken = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed {
                linked, pending, ..
            } = &mut request.state
            else {
                continue;
            };
            if request.source != source || !linked.contains(&queue) {
                continue;
            }
            if key.is_empty() {
                *pending = true;
                woken += 1;
            } else if key.intersects(request.events) {
                woken += 1;
                if *pending {
                    // Deferred work is coming already: the wakeup joins it
                    // without trying the context lock.
                    continue;
                }
                let sole = linked.len() == 1;
                let multishot = request.multishot;
                let ready = key & request.events;
                if self.try_lock() && (sole || multishot) {
                    self.ready(index, Outcome::Ready(ready));
                } else if let State::Armed { pending, .. } = &mut self.requests[index].state {
                    *pending = true;
                }
            }
        }
        woken
    }

    fn reopen(&mut self, source: usize, queue: usize) -> bool {
        core::mem::replace(&mut self.closed[source][queue], false)
    }

    fn close(&mut self, source: usize, queue: usize) -> usize {
        if self.closed[source][queue] {
            return 0;
        }
        self.closed[source][queue] = true;
        let mut woken = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed { linked, .. } = &mut request.state else {
                continue;
            };
            if request.source != source || !linked.contains(&queue) {
                continue;
            }
            woken += 1;
            linked.retain(|&other| other != queue);
            let sole = linked.is_empty();
            if self.try_lock() && sole {
                self.complete(index, Outcome::SourceGone);
            } else if let State::Armed { pending, gone, .. } = &mut self.requests[index].state {
                *pending = true;
                *gone = true;
            }
        }
        woken
    }

    fn cancel(&mut self, index: usize) -> Result<(), CancelError> {
        // A wakeup handed to deferred work before the cancel wins: cancel
        // runs that request's work first (T7 or T8).
        if self.deferred_first(index) {
            return Err(CancelError::NotFound);
        }
        match self.requests[index].state {
            State::Armed { .. } => {
                self.complete(index, Outcome::Cancelled);
                Ok(())
            }
            State::Completed(_) | State::Dropped => Err(CancelError::NotFound),
        }
    }

    fn update(
        &mut self,
        index: usize,
        events: Option<u16>,
        user_data: Option<u64>,
    ) -> Result<aiopoll::Updated, aiopoll::UpdateError> {
        use aiopoll::{UpdateError, Updated};
        if let Some(events) = events {
            let unknown = events & !Events::all().bits();
            if unknown != 0 {
                return Err(UpdateError::UnknownEvents {
                    unknown: u32::from(unknown),
                });
            }
        }
        if self.deferred_first(index) {
            return Err(UpdateError::NotFound);
        }
        if !matches!(self.requests[index].state, State::Armed { .. }) {
            return Err(UpdateError::NotFound);
        }
        let request = &mut self.requests[index];
        if let Some(user_data) = user_data {
            request.user_data = user_data;
        }
        let Some(events) = events else {
            return Ok(Updated::Waiting);
        };
        request.events = Events::from_bits_retain(events) | Events::ERR | Events::HUP;
        let ready = self.ready[request.source] & request.events;
        if ready.is_empty() {
            Ok(Updated::Waiting)
        } else if self.ready(index, Outcome::Ready(ready)) {
            Ok(Updated::Completed)
        } else {
            // A multishot request posted it and keeps waiting.
            Ok(Updated::Waiting)
        }
    }

    /// Ends every armed request that `matches` with `outcome` (a deferred
    /// wakeup that came first wins, and is not counted); the completions
    /// are one batch, whose order the contract leaves open.
    fn end_where(&mut self, matches: impl Fn(&Request) -> bool, outcome: Outcome) -> usize {
        let batches = self.completed.len();
        let mut ended = 0;
        for index in 0..self.requests.len() {
            if !matches!(self.requests[index].state, State::Armed { .. })
                || !matches(&self.requests[index])
            {
                continue;
            }
            if !self.deferred_first(index) {
                self.complete(index, outcome);
                ended += 1;
            }
        }
        let batch: Vec<usize> = self.completed.drain(batches..).flatten().collect();
        if !batch.is_empty() {
            self.completed.push(batch);
        }
        ended
    }

    fn cancel_where(&mut self, matches: impl Fn(&Request) -> bool) -> usize {
        self.end_where(matches, Outcome::Cancelled)
    }

    fn submit_multishot(
        &mut self,
        source: usize,
        events: u16,
        user_data: u64,
    ) -> Result<usize, SubmitError> {
        self.multishot_next = true;
        let submitted = self.submit(source, events, user_data);
        self.multishot_next = false;
        submitted
    }

    fn submit_with_deadline(
        &mut self,
        source: usize,
        events: u16,
        user_data: u64,
        deadline: u64,
    ) -> Result<usize, SubmitError> {
        let index = self.submit(source, events, user_data)?;
        self.requests[index].deadline = Some(deadline);
        Ok(index)
    }

    fn expire(&mut self, now: u64) -> usize {
        self.end_where(
            |request| request.deadline.is_some_and(|deadline| deadline <= now),
            Outcome::TimedOut,
        )
    }

    fn run_deferred(&mut self) -> usize {
        let batches = self.completed.len();
        let completed = self.run_deferred_unbatched();
        // Everything this run completed is one batch.
        let batch: Vec<usize> = self.completed.drain(batches..).flatten().collect();
        if !batch.is_empty() {
            self.completed.push(batch);
        }
        completed
    }

    fn run_deferred_unbatched(&mut self) -> usize {
        let mut completed = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed { pending, gone, .. } = &mut request.state else {
                continue;
            };
            if !*pending {
                continue;
            }
            *pending = false;
            let outcome = if *gone {
                Some(Outcome::SourceGone)
            } else {
                let ready = self.ready[request.source] & request.events;
                (!ready.is_empty()).then_some(Outcome::Ready(ready))
            };
            if let Some(outcome) = outcome {
                self.ready(index, outcome);
                completed += 1;
            }
        }
        completed
    }

    /// Checks a real reap of at most `max` against the model: the same
    /// completions, oldest batch first, any order within a batch (a
    /// multishot request's readiness, then, if it has ended, its final
    /// completion at the back); then forgets what was reaped.
    ///
    /// `handle_of` gives the handle the real submit returned for a request:
    /// a completion must carry its request's handle.
    fn reap(
        &mut self,
        max: usize,
        real: &[Completion],
        handle_of: impl Fn(usize) -> Option<Handle>,
    ) -> Result<(), String> {
        self.run_deferred();
        for completion in real {
            if self.completed.is_empty() {
                return Err(format!(
                    "reaped {completion:?}, the model has nothing to give"
                ));
            }
            let batch = &mut self.completed[0];
            let Some(position) = batch.iter().position(|&index| {
                let request = &self.requests[index];
                request.user_data == completion.user_data
                    && handle_of(index) == Some(completion.handle)
                    && if request.posted.is_empty() {
                        !completion.more && request.state == State::Completed(completion.outcome)
                    } else {
                        completion.more && completion.outcome == Outcome::Ready(request.posted)
                    }
            }) else {
                let batch: Vec<_> = batch.iter().map(|&index| &self.requests[index]).collect();
                return Err(format!(
                    "reaped {completion:?}, the oldest completions are {batch:?}"
                ));
            };
            let index = batch.remove(position);
            if batch.is_empty() {
                self.completed.remove(0);
            }
            let request = &mut self.requests[index];
            if request.posted.is_empty() {
                request.state = State::Dropped;
                self.free_slot();
            } else {
                request.posted = Events::empty();
                if matches!(request.state, State::Completed(_)) {
                    self.completed.push(vec![index]);
                }
            }
        }
        if real.len() < max && self.completions() > 0 {
            return Err(format!(
                "reaped {} completions with room for {max}, the model has {} more",
                real.len(),
                self.completions()
            ));
        }
        Ok(())
    }

    fn drop_context(&mut self) {
        for future in 0..self.futures.len() {
            self.drop_future(future);
        }
        for request in &mut self.requests {
            request.state = State::Dropped;
        }
        self.completed.clear();
        self.in_use = 0;
    }
}

type Ctx<'s> = Context<'s, SLOTS, (FaultLock, super::FaultLock), LIMIT>;

/// A task waker that counts its wakeups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The `Request` future of the context under test.
type Awaited<'d> = aiopoll::Request<
    'd,
    'd,
    SLOTS,
    (FaultLock, FaultLock),
    LIMIT,
    (),
    aiopoll::EveryKind,
    Device<FaultLock>,
>;

/// A real `Request` future of the harness, with its task's waker.
struct RealFuture<'d> {
    /// `None` once dropped.
    future: Option<Pin<Box<Awaited<'d>>>>,
    wakes: Arc<CountingWaker>,
    waker: Waker,
}

/// The context, borrowed for as long as the sources live.
///
/// # Safety
/// Every future made from the returned reference is dropped before the
/// context is (the harness drops them all before it replaces or drops it).
unsafe fn context_ref<'d>(context: &Pin<Box<Ctx<'d>>>) -> Pin<&'d Ctx<'d>> {
    // SAFETY: the context is pinned in its box, so the address is stable;
    // the caller keeps it alive while the reference is used.
    unsafe { Pin::new_unchecked(&*(&**context as *const Ctx<'d>)) }
}

/// What one run did, for the test command's report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Submits accepted.
    pub requests: u64,
    /// Completions reaped (each request exactly once).
    pub completions: u64,
    /// Of those, cancelled.
    pub cancelled: u64,
    /// Of those, completed by deferred work.
    pub deferred: u64,
    /// Queues closed and contexts dropped.
    pub teardowns: u64,
    /// Requests pending or unreaped when their context was dropped.
    pub abandoned: u64,
    /// Awaited requests whose future resolved with an outcome.
    pub awaited: u64,
}

impl Counts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.completions += other.completions;
        self.cancelled += other.cancelled;
        self.deferred += other.deferred;
        self.teardowns += other.teardowns;
        self.abandoned += other.abandoned;
        self.awaited += other.awaited;
    }
}

/// Decodes a fuzzer's bytes: four bytes an operation, kind then three
/// arguments.
pub fn decode(data: &[u8]) -> Vec<Op> {
    data.chunks_exact(4)
        .map(|chunk| {
            let [kind, a, b, c] = [chunk[0], chunk[1], chunk[2], chunk[3]];
            let source = usize::from(a) % SOURCES;
            let events = u16::from_le_bytes([b, c]);
            match kind % 18 {
                0 | 1 => Op::Submit {
                    source,
                    events,
                    user_data: u64::from(c),
                },
                2 => Op::SetReady { source, events },
                3 => Op::Wake {
                    source,
                    queue: usize::from(b) % 3,
                    key: u16::from(c) | u16::from(b & 0x20) << 8,
                },
                4 if c & 0x80 != 0 => Op::Reopen {
                    source,
                    queue: usize::from(b) % 3,
                },
                4 => Op::Close {
                    source,
                    queue: usize::from(b) % 3,
                },
                5 => Op::Cancel {
                    nth: usize::from(a),
                },
                6 => Op::Reap {
                    max: usize::from(a) % 6,
                },
                8 => Op::AwaitNew {
                    source,
                    events,
                    deadline: (c & 0x40 != 0).then_some(u64::from(c % 8)),
                },
                9 => Op::AwaitPoll {
                    nth: usize::from(a),
                },
                10 => Op::AwaitDrop {
                    nth: usize::from(a),
                },
                11 => Op::SubmitBatch {
                    requests: vec![
                        (source, u16::from(b), u64::from(c)),
                        (usize::from(b) % SOURCES, u16::from(c), u64::from(a)),
                    ],
                },
                12 => Op::CancelUserData {
                    user_data: u64::from(c),
                },
                13 => Op::CancelSource { source },
                15 => Op::SubmitWithDeadline {
                    source,
                    events: u16::from(b),
                    user_data: u64::from(c),
                    deadline: u64::from(c % 8),
                },
                17 => Op::SubmitMultishot {
                    source,
                    events: u16::from(b),
                    user_data: u64::from(c),
                },
                16 => Op::Expire {
                    now: u64::from(b % 8),
                },
                14 => Op::Update {
                    nth: usize::from(a),
                    events: (b & 1 == 0).then_some(u16::from(c) | u16::from(b & 0x20) << 8),
                    user_data: (b & 2 == 0).then_some(u64::from(c)),
                },
                _ if a % 4 == 0 => Op::DropContext,
                _ if a % 4 == 1 => Op::FailTryLocks {
                    count: u32::from(b % 4),
                },
                _ => Op::RunDeferred,
            }
        })
        .collect()
}

/// Runs `ops` against the model and the core; `Err` describes the first
/// difference.
pub fn run(ops: &[Op]) -> Result<Counts, String> {
    super::quiet_hostile_panics();
    let mut counts = Counts::default();
    fail_next_try_locks(0);
    let devices = sources();
    let mut context: Pin<Box<Ctx<'_>>> = Box::pin(Ctx::new());
    let mut model = Model::default();
    let mut handles: HashMap<usize, Handle> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();
    let mut futures: Vec<RealFuture<'_>> = Vec::new();

    macro_rules! check {
        ($real:expr, $expected:expr, $op:expr) => {
            if $real != $expected {
                return Err(format!(
                    "{:?}: real {:?}, model {:?}",
                    $op, $real, $expected
                ));
            }
        };
    }

    for op in ops {
        match *op {
            Op::Submit {
                source,
                events,
                user_data,
            } if source == PANICS => {
                // The submit unwinds and changes nothing: no slot taken, no
                // entry left on the queue, the context still usable. The
                // model has no request to add.
                let in_use = context.in_use();
                let real = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    context.as_ref().submit(
                        &devices[source],
                        Events::from_bits_retain(events),
                        user_data,
                    )
                }));
                match real {
                    // Refused before `poll` ran (unknown bits, a full
                    // context): as the model says.
                    Ok(result) => {
                        let refused = result.err();
                        let expected = model.submit(source, events, user_data).err();
                        check!(refused, expected, op);
                        if refused.is_none() {
                            return Err(format!("{op:?}: the hostile poll did not panic"));
                        }
                    }
                    Err(_) if Events::from_bits(events).is_none() || in_use == SLOTS => {
                        return Err(format!("{op:?}: poll ran although the submit is refused"));
                    }
                    Err(_) => {}
                }
                if context.in_use() != in_use || !devices[source].queues[0].is_empty() {
                    return Err(format!(
                        "{op:?}: a panicking poll left a slot or an entry behind"
                    ));
                }
            }
            Op::Submit {
                source,
                events,
                user_data,
            } => {
                let real = context.as_ref().submit(
                    &devices[source],
                    Events::from_bits_retain(events),
                    user_data,
                );
                match (real, model.submit(source, events, user_data)) {
                    (Ok(handle), Ok(index)) => {
                        counts.requests += 1;
                        handles.insert(index, handle);
                        order.push(index);
                    }
                    (Err(real), Err(expected)) => check!(real, expected, op),
                    (real, expected) => {
                        return Err(format!("{op:?}: real {real:?}, model {expected:?}"))
                    }
                }
            }
            Op::SetReady { source, events } => {
                let events = Events::from_bits_truncate(events);
                devices[source].set_ready(events);
                model.ready[source] = events;
            }
            Op::Wake { source, queue, key } => {
                let key = Events::from_bits_truncate(key);
                let real = devices[source].queues[queue].wake(key);
                check!(real, model.wake(source, queue, key), op);
            }
            Op::Close { source, queue } => {
                let real = devices[source].queues[queue].close();
                check!(real, model.close(source, queue), op);
                counts.teardowns += 1;
            }
            Op::Reopen { source, queue } => {
                let real = devices[source].queues[queue].reopen();
                check!(real, model.reopen(source, queue), op);
            }
            Op::Cancel { nth } => {
                if order.is_empty() {
                    continue;
                }
                let index = order[nth % order.len()];
                let real = context.cancel(handles[&index]).map(|_| ());
                check!(real, model.cancel(index), op);
            }
            Op::Reap { max } => {
                let mut out = vec![Completion::EMPTY; max];
                let count = context.reap(&mut out);
                model
                    .reap(max, &out[..count], |index| handles.get(&index).copied())
                    .map_err(|error| format!("{op:?}: {error}"))?;
                counts.reaped(&out[..count]);
            }
            Op::RunDeferred => {
                check!(context.run_deferred(), model.run_deferred(), op);
            }
            Op::FailTryLocks { count } => {
                fail_next_try_locks(count);
                model.failures = count;
            }
            Op::SubmitMultishot {
                source,
                events,
                user_data,
            } => {
                // The panicking source is checked one plain submit at a time.
                let source = if source == PANICS { 1 } else { source };
                let real = context.as_ref().submit_multishot(
                    &devices[source],
                    Events::from_bits_retain(events),
                    user_data,
                );
                match (real, model.submit_multishot(source, events, user_data)) {
                    (Ok(handle), Ok(index)) => {
                        counts.requests += 1;
                        handles.insert(index, handle);
                        order.push(index);
                    }
                    (Err(real), Err(expected)) => check!(real, expected, op),
                    (real, expected) => {
                        return Err(format!("{op:?}: real {real:?}, model {expected:?}"))
                    }
                }
            }
            Op::SubmitWithDeadline {
                source,
                events,
                user_data,
                deadline,
            } => {
                // The panicking source is checked one plain submit at a time.
                let source = if source == PANICS { 1 } else { source };
                let real = context.as_ref().submit_with_deadline(
                    &devices[source],
                    Events::from_bits_retain(events),
                    user_data,
                    deadline,
                );
                let expected = model.submit_with_deadline(source, events, user_data, deadline);
                match (real, expected) {
                    (Ok(handle), Ok(index)) => {
                        counts.requests += 1;
                        handles.insert(index, handle);
                        order.push(index);
                    }
                    (Err(real), Err(expected)) => check!(real, expected, op),
                    (real, expected) => {
                        return Err(format!("{op:?}: real {real:?}, model {expected:?}"))
                    }
                }
            }
            Op::Expire { now } => {
                check!(context.expire(now), model.expire(now), op);
                let expected = model
                    .requests
                    .iter()
                    .filter(|request| matches!(request.state, State::Armed { .. }))
                    .filter_map(|request| request.deadline)
                    .min();
                check!(context.next_deadline(), expected, op);
            }
            Op::SubmitBatch { ref requests } => {
                // The panicking source is checked one submit at a time above.
                let requests: Vec<(usize, u16, u64)> = requests
                    .iter()
                    .map(|&(source, events, user_data)| {
                        (if source == PANICS { 1 } else { source }, events, user_data)
                    })
                    .collect();
                let submissions: Vec<aiopoll::Submission<'_, FaultLock>> = requests
                    .iter()
                    .map(|&(source, events, user_data)| aiopoll::Submission {
                        source: &devices[source],
                        events: Events::from_bits_retain(events),
                        user_data,
                    })
                    .collect();
                let mut accepted = Vec::new();
                let real = context
                    .as_ref()
                    .submit_batch(&submissions, |handle| accepted.push(handle));
                let mut indices = Vec::new();
                let mut expected = Ok(0);
                for &(source, events, user_data) in &requests {
                    match model.submit(source, events, user_data) {
                        Ok(index) => indices.push(index),
                        Err(error) => {
                            expected = Err(aiopoll::BatchRefused {
                                accepted: indices.len(),
                                error,
                            });
                            break;
                        }
                    }
                }
                let expected = expected.map(|_| indices.len());
                check!(real, expected, op);
                check!(accepted.len(), indices.len(), op);
                for (index, handle) in indices.into_iter().zip(accepted) {
                    handles.insert(index, handle);
                    order.push(index);
                }
                counts.requests += real.unwrap_or_else(|refused| refused.accepted) as u64;
            }
            Op::Update {
                nth,
                events,
                user_data,
            } => {
                if order.is_empty() {
                    continue;
                }
                let index = order[nth % order.len()];
                let real = context.update(
                    handles[&index],
                    events.map(Events::from_bits_retain),
                    user_data,
                );
                check!(real, model.update(index, events, user_data), op);
            }
            Op::CancelUserData { user_data } => {
                let real = context.cancel_user_data(user_data);
                let expected = model.cancel_where(|request| {
                    request.future.is_none() && request.user_data == user_data
                });
                check!(real, expected, op);
            }
            Op::CancelSource { source } => {
                let real = context.cancel_source(&devices[source]);
                check!(
                    real,
                    model.cancel_where(|request| request.source == source),
                    op
                );
            }
            Op::AwaitNew {
                source,
                events,
                deadline,
            } => {
                // The panicking source is the hostile-source tests' (its
                // unwinding submit is checked there and above).
                let source = if source == PANICS { 1 } else { source };
                // SAFETY: every future is dropped before the context goes.
                let context = unsafe { context_ref(&context) };
                let mut future =
                    context.request(&devices[source], Events::from_bits_retain(events));
                if let Some(deadline) = deadline {
                    future = future.deadline(deadline);
                }
                let future = Box::pin(future);
                let wakes = Arc::new(CountingWaker::default());
                futures.push(RealFuture {
                    future: Some(future),
                    waker: Waker::from(wakes.clone()),
                    wakes,
                });
                model.futures.push(FutureModel {
                    source,
                    events,
                    deadline,
                    state: FutureState::Unsubmitted,
                    wakes: 0,
                });
            }
            Op::AwaitPoll { nth } => {
                if futures.is_empty() {
                    continue;
                }
                let index = nth % futures.len();
                let real = &mut futures[index];
                let Some(future) = real.future.as_mut() else {
                    continue;
                };
                let polled = future
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(&real.waker));
                if let Poll::Ready(Ok(_)) = polled {
                    counts.awaited += 1;
                }
                check!(polled, model.poll_future(index), op);
            }
            Op::AwaitDrop { nth } => {
                if futures.is_empty() {
                    continue;
                }
                let index = nth % futures.len();
                if futures[index].future.take().is_some() {
                    model.drop_future(index);
                }
            }
            Op::DropContext => {
                // Futures borrow the context: they go first, in order.
                for real in &mut futures {
                    real.future = None;
                }
                counts.deferred += u64::from(context.stats().completed_by_deferred_work);
                counts.teardowns += 1;
                counts.abandoned += context.in_use() as u64;
                context = Box::pin(Ctx::new());
                model.drop_context();
                for device in &devices {
                    if device.queues.iter().any(|queue| !queue.is_empty()) {
                        return Err(format!("{op:?}: a request stayed queued"));
                    }
                }
            }
        }
        check!(try_lock_failures_left(), model.failures, op);
        check!(context.in_use(), model.in_use, op);
        check!(context.completions(), model.completions(), op);
        for (index, real) in futures.iter().enumerate() {
            if real.future.is_some() {
                let wakes = real.wakes.0.load(Ordering::SeqCst);
                check!(
                    wakes,
                    model.futures[index].wakes,
                    (op, "wakes of future", index)
                );
            }
        }
    }
    // Futures go first (they borrow the context), in order.
    for (index, real) in futures.iter_mut().enumerate() {
        if real.future.take().is_some() {
            model.drop_future(index);
        }
    }
    check!(context.in_use(), model.in_use, "futures dropped");
    // Tear down: cancel everything, reap everything; every request once.
    for index in order.iter().copied() {
        let real = context.cancel(handles[&index]).map(|_| ());
        check!(real, model.cancel(index), "final cancel");
    }
    // Room for every slot's multishot readiness and final completion.
    let mut out = [Completion::EMPTY; 2 * SLOTS];
    let count = context.reap(&mut out);
    model
        .reap(2 * SLOTS, &out[..count], |index| {
            handles.get(&index).copied()
        })
        .map_err(|error| format!("final reap: {error}"))?;
    counts.reaped(&out[..count]);
    counts.deferred += u64::from(context.stats().completed_by_deferred_work);
    check!(context.in_use(), 0, "final in_use");
    for device in &devices {
        if device.queues.iter().any(|queue| !queue.is_empty()) {
            return Err("a request stayed queued at the end".into());
        }
    }
    Ok(counts)
}

impl Counts {
    /// Counts the final completions (a multishot request's readiness is
    /// not one: each request has exactly one final completion).
    fn reaped(&mut self, completions: &[Completion]) {
        self.completions += completions.iter().filter(|c| !c.more).count() as u64;
        self.cancelled += completions
            .iter()
            .filter(|c| c.outcome == Outcome::Cancelled)
            .count() as u64;
    }
}

//! [`Context`]: request slots, the poll state machine, and the completion
//! queue (Linux's `kioctx`).
//!
//! # The request state machine
//!
//! Every request slot is in one of four phases. The phase is protected by the
//! context lock; the *wake word*, an atomic per slot, carries what wakers
//! (which hold only a wait-queue lock) tell the context side.
//!
//! | phase | linked on queues? | who owns the request |
//! |---|---|---|
//! | `Free` | no | the context's free list |
//! | `Polling` | being linked by the source's `poll` | the submitter, which holds the context lock throughout |
//! | `Armed` | yes, until completed (even across spurious wakeups) | whoever holds the context lock next: an inline wakeup, deferred work, or cancel |
//! | `Completed` | no | the completion queue, until reaped |
//!
//! The wake word has two bits: `PENDING` (a wakeup could not complete the
//! request itself and handed it to deferred work) and `GONE` (one of its wait
//! queues was closed).
//!
//! ## Transitions
//!
//! Each transition's code names it.
//!
//! - **T1 submit**: `Free → Polling`. Under the context lock, take a free slot
//!   (none: `Busy`, nothing changed), record the events (requested ∪ ERR ∪
//!   HUP), the user data and the source, and call the source's `poll`, which
//!   links the slot's wait entries on its queues. A wakeup during `poll` fails
//!   its try-lock (we hold the lock) and only sets `PENDING` (T6).
//! - **T2 submit arms**: `Polling → Armed`, when nothing asked for is ready
//!   and the request is on at least one queue. If a wakeup already set
//!   `PENDING`, submit gives up responsibility (the seed mail's rule): the
//!   deferred work that wakeup scheduled re-polls the source.
//! - **T3 submit completes**: `Polling → Completed`, when `poll` reported
//!   ready events (the request is "stolen" back off its queues), or when it
//!   registered on a closed queue (`SourceGone`).
//! - **T4 submit refused**: `Polling → Free`, when the source registered on
//!   more than `W` queues (`TooManyQueues`) or on none with nothing ready
//!   (`NotPollable`), or when `poll` panicked: every entry leaves its queue,
//!   the wake word is cleared, and the slot goes back to the free list.
//! - **T5 inline wakeup**: `Armed → Completed`, in the wake function, holding
//!   the queue lock, when the key matches the request's events (or the queue
//!   is closing), the context lock's *try* succeeds, and this is the request's
//!   only linked entry. Result: key ∩ events.
//! - **T6 deferral**: the phase does not change; the wake function sets
//!   `PENDING` (and `GONE` when the queue is closing) and, if `PENDING` was
//!   clear, raises the context's deferred flag and calls
//!   [`Notify::deferred_work`]. This happens when the try-lock fails, when the
//!   wakeup is unkeyed (the source must be re-polled, which a wakeup may not
//!   do: it holds the queue lock the source's own wake path may hold), or when
//!   the request sits on a second queue (two queue locks never nest).
//! - **T7 deferred work completes**: `Armed → Completed`, under the context
//!   lock: the work swaps the wake word to zero, then either finds `GONE`
//!   (`SourceGone`) or re-polls the source and finds events ready.
//! - **T8 deferred work re-arms**: `Armed → Armed`, when the re-poll finds
//!   nothing (a spurious or stale wakeup). The request never left its queues,
//!   so a wakeup between the re-poll and this decision sets `PENDING` again
//!   and is handled by the next run: Linux's "keep poll requests on waitqueue
//!   until completed" (5.16) holds by construction.
//! - **T9 cancel**: `Armed → Completed(Cancelled)`, under the context lock.
//!   Cancel first runs the slot's own pending deferred work (T7 or T8): a
//!   wakeup that reached the request before the cancel took the lock wins,
//!   whether it completed inline or had to defer (stronger than Linux, where
//!   the answer depends on when the kernel's work queue runs). Cancel of any
//!   other phase, of a stale generation or of another context's handle, or
//!   of a request that this deferred work completed, is `NotFound`.
//! - **T10 close**: a closing queue unlinks the entry, clears its queue
//!   pointer with `Release` (the `POLLFREE` protocol), then completes inline
//!   as T5 with `SourceGone`, or defers as T6 with `GONE`. A closed queue
//!   may be reopened ([`WaitQueue::reopen`]) for a source that comes back:
//!   no entry is linked on it then, so reopening touches no request; later
//!   submits register on it as on a new queue.
//! - **T11 reap**: `Completed → Free`: the completion is copied out, the
//!   generation is bumped (stale handles no longer match), the slot is freed.
//! - **T12 context drop**: every `Armed` request leaves its queues; nothing
//!   completes (there is nobody left to reap).
//!
//! ## Lock order
//!
//! Context lock, then one wait-queue lock at a time; never two queue locks
//! nested. The wakeup side holds a queue lock and only *tries* the context
//! lock, so it never blocks on a context: the interrupt path is wait-free
//! with respect to contexts, and bounded by the number of waiters on the queue.
//!
//! ## Why every request completes exactly once
//!
//! 1. Only T3, T5, T7 and T9 complete a request, and each runs under the
//!    context lock and requires phase `Polling` (T3, the submitter's own) or
//!    `Armed` (T5, T7, T9); each sets `Completed` before releasing the lock.
//!    So at most one completion per submit.
//! 2. Completing detaches every wait entry of the slot (each under its queue
//!    lock) before the phase changes, and wakers reach a slot only through a
//!    linked entry while holding that entry's queue lock: after completion no
//!    waker can touch the slot or its wake word, so a slot's word is reset
//!    safely and a stale wakeup never reaches a reused slot.
//! 3. A request never leaves a queue while `Armed`, except through `close`
//!    (T10), which sets `GONE` before it unlinks: so an `Armed` request is
//!    always either on a queue that will wake it, or has `PENDING` set.
//! 4. `PENDING` going from clear to set always raises the deferred flag and
//!    calls [`Notify::deferred_work`]; deferred work swaps each word to zero
//!    *before* it re-polls, so a wakeup during the re-poll sets `PENDING`
//!    again and is seen by the next run. [`Context::reap`] runs pending
//!    deferred work too, so it is never stranded while someone reaps.
//! 5. A completion slot is reserved at submit: the completion queue holds
//!    one index per request slot, so pushing never fails.
//! 6. Handles carry the slot's generation, bumped at every reap, and the
//!    context's identity (unique in the program, even for a context made at
//!    a dropped one's address): a finished request's handle never reaches a
//!    reused slot, nor another context.

use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::completion::{Completion, Handle, Outcome};
use crate::error::{CancelError, SubmitError};
use crate::locks::{Locks, SpinLocks};
use crate::source::{PollTable, Registrar, Source};
use crate::sync::{AtomicBool, AtomicU32, Locked, Ordering, UnsafeCell};
use crate::wait_queue::{ContextHeader, List, Verdict, WaitEntry, WaitQueue, Wake};
use crate::Events;

/// Marks a transition of the state machine; with the `trace` feature, logs
/// it through defmt (at trace level, so it costs nothing unless enabled).
macro_rules! transition {
    ($name:literal, $slot:expr) => {
        #[cfg(feature = "trace")]
        defmt::trace!("aiopoll {=str} slot={=usize}", $name, $slot);
    };
}

/// Wake word bit: a wakeup handed this request to deferred work.
const PENDING: u32 = 1 << 0;
/// Wake word bit: one of the request's wait queues was closed.
const GONE: u32 = 1 << 1;

/// Notifications from a context to its adapter.
///
/// Both run with aiopoll locks held, possibly in an interrupt handler (the
/// wakeup side): they must not block and must not call into aiopoll. Signal
/// something and return: pend an interrupt, unpark a thread, set a flag.
/// (Linux learned this in 5.16: completion notification that recursed into
/// wait-queue code from inside a wakeup was a bug.)
pub trait Notify {
    /// A wakeup could not complete a request itself: call
    /// [`Context::run_deferred`] soon (or let the next [`Context::reap`] do
    /// it). Called once each time a request's work goes from "none" to
    /// "pending".
    fn deferred_work(&self) {}

    /// A completion was queued: a reaper waiting for one may wake up.
    fn completed(&self) {}
}

/// No notifications: the owner reaps (and so runs deferred work) on its own
/// schedule.
impl Notify for () {}

/// What [`Context::cancel`] reports for a pending request, like Linux's
/// `EINPROGRESS`: the cancellation is decided, and the request's one
/// completion ([`Outcome::Cancelled`]) is in the completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InProgress;

/// Counters of what a context has done (each wraps at `u32::MAX`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Requests accepted by submit.
    pub submitted: u32,
    /// Requests completed at submit (ready at once, or source gone).
    pub completed_at_submit: u32,
    /// Requests completed inline by a wakeup (T5, T10 inline).
    pub completed_by_wakeup: u32,
    /// Requests completed by deferred work (T7).
    pub completed_by_deferred_work: u32,
    /// Requests cancelled (T9).
    pub cancelled: u32,
    /// Wakeups handed to deferred work (T6): try-lock failures, unkeyed
    /// wakeups, requests on several queues, and closes that could not
    /// complete inline.
    pub deferrals: u32,
    /// Deferred re-polls that found nothing ready (T8).
    pub spurious: u32,
    /// Completions reaped.
    pub reaped: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Free,
    Polling,
    Armed,
    Completed,
}

struct Slot<'s, Q: lock_api::RawMutex> {
    phase: Phase,
    generation: u32,
    user_data: u64,
    /// Requested ∪ ERR ∪ HUP.
    events: Events,
    source: Option<&'s dyn Source<Q>>,
    outcome: Outcome,
}

impl<Q: lock_api::RawMutex> Slot<'_, Q> {
    const FREE: Self = Slot {
        phase: Phase::Free,
        generation: 0,
        user_data: 0,
        events: Events::empty(),
        source: None,
        outcome: Outcome::Cancelled,
    };
}

/// Everything the context lock protects.
struct State<'s, Q: lock_api::RawMutex, const N: usize> {
    /// This context's identity in its handles: unique among the contexts of
    /// the program, assigned at the first submit (0: not yet).
    id: u32,
    slots: [Slot<'s, Q>; N],
    /// Slots reaped and free again.
    free: heapless::Vec<u16, N>,
    /// Slots `never_used..N` have never been handed out.
    never_used: u16,
    /// Completed slots in completion order; one place per slot, so pushing
    /// never fails.
    completed: heapless::Deque<u16, N>,
    stats: Stats,
}

/// The source of context identities. Not part of the request protocol
/// (it is only read once per context, under the context lock), so it stays a
/// plain atomic under loom.
static NEXT_CONTEXT_ID: portable_atomic::AtomicU32 = portable_atomic::AtomicU32::new(1);

impl<Q: lock_api::RawMutex, const N: usize> State<'_, Q, N> {
    /// This context's identity, assigned on first use: a handle from a
    /// context dropped earlier never matches a context made later, even at
    /// the same address.
    fn id(&mut self) -> u32 {
        if self.id == 0 {
            let mut id = NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed);
            if id == 0 {
                // Wrapped after four billion contexts: skip "unassigned".
                id = NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed);
            }
            self.id = id;
        }
        self.id
    }

    fn allocate(&mut self) -> Option<usize> {
        if let Some(slot) = self.free.pop() {
            return Some(usize::from(slot));
        }
        if usize::from(self.never_used) < N {
            self.never_used += 1;
            return Some(usize::from(self.never_used - 1));
        }
        None
    }

    fn release(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        state.phase = Phase::Free;
        state.source = None;
        state.generation = state.generation.wrapping_add(1);
        // Cannot fail: at most N slots are ever out, and each is freed once.
        let pushed = self.free.push(slot as u16);
        debug_assert!(pushed.is_ok());
    }
}

/// A context: `N` request slots, their completion queue, and the state
/// machine that moves requests between them (Linux's `kioctx`).
///
/// - `'s`: how long the sources (and so their wait queues) live; a context
///   never outlives what it polls.
/// - `N`: request slots (at most 65,535); also the completion queue's size,
///   so a completion always has room.
/// - `L`: the [`Locks`]: the context's lock and its wait queues' lock.
/// - `W`: how many wait queues one request may sit on (io_uring allows two,
///   aio one). A source that registers on more fails the submit.
/// - `H`: the [`Notify`] hooks through which the adapter learns of deferred
///   work and of completions.
///
/// A context is pinned while in use ([`submit`](Self::submit) takes
/// `Pin<&Self>`): wait queues point into it. Put it in a `static` (then
/// `Pin::static_ref`), in `core::pin::pin!`, or in `Arc::pin`.
#[repr(C)]
pub struct Context<'s, const N: usize, L: Locks = SpinLocks, const W: usize = 2, H: Notify = ()> {
    /// Must stay first: wait entries reach the context's wake function
    /// through it.
    header: ContextHeader,
    lock: L::Context,
    state: UnsafeCell<State<'s, L::Queue, N>>,
    /// The wake word of each slot (`PENDING`, `GONE`): written by wakers
    /// under a queue lock, consumed under the context lock.
    words: [AtomicU32; N],
    /// The wait entries of each slot, linked on the sources' queues.
    entries: [[WaitEntry; W]; N],
    /// Some wake word has `PENDING` set since deferred work last ran.
    deferred: AtomicBool,
    /// Count of T6 deferrals (kept apart: wakers hold no context lock).
    deferrals: AtomicU32,
    hooks: H,
    _pinned: PhantomPinned,
}

// SAFETY: all shared state is behind the context lock (`state`), in atomics
// (`words`, `deferred`, `deferrals`), or in wait entries protected by their
// queue's lock. The sources it polls are `Sync` by the `Source` trait's bound.
// So sharing a context between threads is sound when its locks and hooks are.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify> Sync for Context<'_, N, L, W, H>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

// SAFETY: as above; nothing in a context is tied to the thread that made it.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify> Send for Context<'_, N, L, W, H>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

impl<'s, const N: usize, L: Locks, const W: usize> Context<'s, N, L, W, ()> {
    /// An empty context without notification hooks.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self::with_hooks(())
    }

    /// An empty context without notification hooks.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::with_hooks(())
    }
}

impl<const N: usize, L: Locks, const W: usize> Default for Context<'_, N, L, W, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify> Context<'s, N, L, W, H> {
    const VALID_PARAMETERS: () = {
        assert!(N > 0 && N <= u16::MAX as usize, "N must be 1..=65535");
        assert!(W > 0 && W <= 255, "W must be 1..=255");
    };

    /// An empty context that notifies `hooks`.
    #[cfg(not(loom))]
    pub const fn with_hooks(hooks: H) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_PARAMETERS;
        Context {
            header: ContextHeader {
                wake: Self::wake_entry,
            },
            lock: <L::Context as lock_api::RawMutex>::INIT,
            state: UnsafeCell::new(State {
                id: 0,
                slots: [const { Slot::FREE }; N],
                free: heapless::Vec::new(),
                never_used: 0,
                completed: heapless::Deque::new(),
                stats: Stats {
                    submitted: 0,
                    completed_at_submit: 0,
                    completed_by_wakeup: 0,
                    completed_by_deferred_work: 0,
                    cancelled: 0,
                    deferrals: 0,
                    spurious: 0,
                    reaped: 0,
                },
            }),
            words: [const { AtomicU32::new(0) }; N],
            entries: [const { [const { WaitEntry::new() }; W] }; N],
            deferred: AtomicBool::new(false),
            deferrals: AtomicU32::new(0),
            hooks,
            _pinned: PhantomPinned,
        }
    }

    /// An empty context that notifies `hooks`.
    #[cfg(loom)]
    pub fn with_hooks(hooks: H) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_PARAMETERS;
        Context {
            header: ContextHeader {
                wake: Self::wake_entry,
            },
            lock: <L::Context as lock_api::RawMutex>::INIT,
            state: UnsafeCell::new(State {
                id: 0,
                slots: [const { Slot::FREE }; N],
                free: heapless::Vec::new(),
                never_used: 0,
                completed: heapless::Deque::new(),
                stats: Stats::default(),
            }),
            words: core::array::from_fn(|_| AtomicU32::new(0)),
            entries: core::array::from_fn(|_| core::array::from_fn(|_| WaitEntry::new())),
            deferred: AtomicBool::new(false),
            deferrals: AtomicU32::new(0),
            hooks,
            _pinned: PhantomPinned,
        }
    }

    /// The hooks this context notifies.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The number of request slots, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    fn header(&self) -> *const ContextHeader {
        // `header` is the first field of this `repr(C)` struct, so this
        // pointer is also a pointer to the whole context, with the whole
        // context's provenance.
        self as *const Self as *const ContextHeader
    }

    /// Runs `f` on the state the context lock protects; `locked` is the
    /// proof that the lock is held. `f` must not call `with_state` again, nor
    /// a source (whose `poll` may wake its own queues); it may call hooks.
    #[inline(always)]
    fn with_state<R>(
        &self,
        locked: &Locked<'_, L::Context>,
        f: impl FnOnce(&mut State<'s, L::Queue, N>) -> R,
    ) -> R {
        debug_assert!(locked.holds(&self.lock));
        // SAFETY: `locked` shows the context lock is held, so nothing else
        // touches the state; `with_state` is never nested (every caller is
        // in this module and passes a closure that does not call it).
        self.state.with_mut(|state| f(unsafe { &mut *state }))
    }

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
    pub fn submit(
        self: Pin<&Self>,
        source: &'s dyn Source<L::Queue>,
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
    pub unsafe fn submit_unchecked(
        self: Pin<&Self>,
        source: &dyn Source<L::Queue>,
        events: Events,
        user_data: u64,
    ) -> Result<Handle, SubmitError> {
        let this = self.get_ref();
        let unknown = events.unknown_bits();
        if unknown != 0 {
            return Err(SubmitError::UnknownEvents {
                unknown: u32::from(unknown),
            });
        }
        let events = events | Events::ALWAYS;
        // SAFETY: the caller promises `source` outlives its request; the slot
        // drops the reference when the request is reaped or the context goes.
        let source: &'s dyn Source<L::Queue> = unsafe { core::mem::transmute(source) };

        let locked = Locked::lock(&this.lock);
        // T1 submit: Free → Polling.
        let slot = this
            .with_state(&locked, |state| {
                let slot = state.allocate()?;
                let record = &mut state.slots[slot];
                record.phase = Phase::Polling;
                record.user_data = user_data;
                record.events = events;
                record.source = Some(source);
                Some(slot)
            })
            .ok_or(SubmitError::Busy)?;
        transition!("T1 submit", slot);
        debug_assert_eq!(this.words[slot].load(Ordering::Relaxed), 0);

        // If `poll` unwinds, T4 undoes everything before the lock is released.
        let mut unwind = UndoSubmit {
            context: this,
            locked: &locked,
            slot,
            armed: true,
        };
        let mut registration = Registration {
            context: this,
            slot: slot as u16,
            events,
            queues: [core::ptr::null_mut(); W],
            registered: 0,
            overflow: false,
            closed: false,
        };
        let ready = source.poll(&mut PollTable::registering(&mut registration, events)) & events;
        unwind.armed = false;
        let Registration {
            registered,
            overflow,
            closed,
            ..
        } = registration;

        this.with_state(&locked, |state| {
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
                state.release(slot);
                return Err(SubmitError::NotPollable);
            } else {
                None
            };
            let generation = state.slots[slot].generation;
            let context = state.id();
            state.stats.submitted = state.stats.submitted.wrapping_add(1);
            match outcome {
                Some(outcome) => {
                    // T3 submit completes ("steals" the request back).
                    transition!("T3 submit completes", slot);
                    state.stats.completed_at_submit =
                        state.stats.completed_at_submit.wrapping_add(1);
                    this.complete(state, slot, outcome);
                }
                None => {
                    // T2 submit arms. If a wakeup during `poll` set
                    // PENDING, its deferred work owns the follow-up.
                    transition!("T2 submit arms", slot);
                    state.slots[slot].phase = Phase::Armed;
                }
            }
            Ok(Handle {
                context,
                slot: slot as u16,
                generation,
            })
        })
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
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| {
            if handle.context != state.id {
                return Err(CancelError::NotFound);
            }
            let record = &state.slots[slot];
            if record.generation != handle.generation || record.phase != Phase::Armed {
                return Err(CancelError::NotFound);
            }
            Ok(())
        })?;
        // A wakeup that reached the request before this cancel took the lock
        // but had to defer wins: run its work now (T7 or T8), so the outcome
        // does not depend on when the deferred work would have run.
        if self.run_deferred_slot(&locked, slot) {
            return Err(CancelError::NotFound);
        }
        self.with_state(&locked, |state| {
            // T9 cancel.
            transition!("T9 cancel", slot);
            state.stats.cancelled = state.stats.cancelled.wrapping_add(1);
            self.complete(state, slot, Outcome::Cancelled);
            Ok(InProgress)
        })
    }

    /// Moves up to `out.len()` completions, oldest first, into `out`, and
    /// returns how many. Never blocks on anything but the context lock.
    /// Runs pending deferred work first, so completions that a wakeup had to
    /// defer are never stranded while someone reaps.
    pub fn reap(&self, out: &mut [Completion]) -> usize {
        let locked = Locked::lock(&self.lock);
        self.run_deferred_locked(&locked);
        self.with_state(&locked, |state| {
            let mut count = 0;
            for place in out.iter_mut() {
                let Some(slot) = state.completed.pop_front() else {
                    break;
                };
                let slot = usize::from(slot);
                let record = &state.slots[slot];
                debug_assert_eq!(record.phase, Phase::Completed);
                *place = Completion {
                    user_data: record.user_data,
                    outcome: record.outcome,
                };
                // T11 reap: Completed → Free.
                transition!("T11 reap", slot);
                state.release(slot);
                count += 1;
            }
            state.stats.reaped = state.stats.reaped.wrapping_add(count as u32);
            count
        })
    }

    /// How many completions wait to be reaped.
    pub fn completions(&self) -> usize {
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| state.completed.len())
    }

    /// How many slots are in use: pending requests plus unreaped completions.
    pub fn in_use(&self) -> usize {
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| {
            usize::from(state.never_used) - state.free.len()
        })
    }

    /// Whether deferred work is pending (a cheap atomic load).
    pub fn has_deferred_work(&self) -> bool {
        self.deferred.load(Ordering::Acquire)
    }

    /// What this context has done so far.
    pub fn stats(&self) -> Stats {
        let locked = Locked::lock(&self.lock);
        let mut stats = self.with_state(&locked, |state| state.stats);
        stats.deferrals = self.deferrals.load(Ordering::Relaxed);
        stats
    }

    /// Runs the deferred work that wakeups handed over: re-polls each
    /// request they woke and completes it (T7), or leaves it armed (T8).
    /// Returns how many requests it completed. The adapter calls this from
    /// wherever [`Notify::deferred_work`] points it (a pended low-priority
    /// interrupt, a worker thread); [`reap`](Self::reap) calls it too.
    pub fn run_deferred(&self) -> usize {
        if !self.deferred.load(Ordering::Acquire) {
            return 0;
        }
        let locked = Locked::lock(&self.lock);
        self.run_deferred_locked(&locked)
    }

    /// One pass of deferred work, under the context lock.
    fn run_deferred_locked(&self, locked: &Locked<'_, L::Context>) -> usize {
        // A plain load first: reaping without deferred work (the common
        // case) costs no read-modify-write.
        if !self.deferred.load(Ordering::Acquire) || !self.deferred.swap(false, Ordering::AcqRel) {
            return 0;
        }
        // If a source's `poll` unwinds, the slots not yet visited must not
        // be stranded: raise the flag again on the way out.
        let mut unwind = RaiseDeferredOnUnwind {
            deferred: &self.deferred,
            armed: true,
        };
        let mut completed = 0;
        for slot in 0..N {
            if self.run_deferred_slot(locked, slot) {
                completed += 1;
            }
        }
        unwind.armed = false;
        completed
    }

    /// The deferred work of one slot, under the context lock: if a wakeup
    /// handed the request over (`PENDING`), either complete it (T7) or leave
    /// it armed (T8). Returns whether it completed the request.
    ///
    /// If the source's `poll` unwinds, the wakeup is not lost: `PENDING` is
    /// set again (and the caller's guard raises the deferred flag).
    fn run_deferred_slot(&self, locked: &Locked<'_, L::Context>, slot: usize) -> bool {
        if self.words[slot].load(Ordering::Relaxed) & PENDING == 0 {
            return false;
        }
        // Swap *before* re-polling: a wakeup from here on sets PENDING
        // again and is handled by the next run.
        let word = self.words[slot].swap(0, Ordering::AcqRel);
        if word & PENDING == 0 {
            return false;
        }
        let armed = self.with_state(locked, |state| {
            let record = &state.slots[slot];
            // Completed by cancel, an inline wakeup or submit since:
            // nothing left to do.
            (record.phase == Phase::Armed).then_some((record.source, record.events))
        });
        let Some((source, events)) = armed else {
            return false;
        };
        let outcome = if word & GONE != 0 {
            Some(Outcome::SourceGone)
        } else {
            let mut unwind = RestoreWordOnUnwind {
                word: &self.words[slot],
                bits: word,
                armed: true,
            };
            let ready = source.map_or(Events::empty(), |source| {
                source.poll(&mut PollTable::rechecking(events))
            }) & events;
            unwind.armed = false;
            (!ready.is_empty()).then_some(Outcome::Ready(ready))
        };
        self.with_state(locked, |state| match outcome {
            Some(outcome) => {
                // T7 deferred work completes.
                transition!("T7 deferred work completes", slot);
                state.stats.completed_by_deferred_work =
                    state.stats.completed_by_deferred_work.wrapping_add(1);
                self.complete(state, slot, outcome);
                true
            }
            None => {
                // T8 deferred work re-arms: the request never left its
                // queues.
                transition!("T8 deferred work re-arms", slot);
                state.stats.spurious = state.stats.spurious.wrapping_add(1);
                false
            }
        })
    }

    /// Takes every wait entry of `slot` off its queue, one queue lock at a
    /// time. The caller holds the context lock.
    fn detach_all(&self, slot: usize) {
        for entry in &self.entries[slot] {
            let queue = entry.queue();
            if !queue.is_null() {
                // SAFETY: a non-null queue pointer was set by `attach` from a
                // `&'s WaitQueue<L::Queue>` (or under `submit_unchecked`'s
                // contract), so the queue is alive; `detach` re-checks under
                // the queue lock that the entry is still linked there. We
                // hold the context lock, which owns the entry.
                unsafe { (*(queue as *const WaitQueue<L::Queue>)).detach(entry) };
            }
        }
    }

    /// Completes `slot` with `outcome`: every entry leaves its queue, the
    /// wake word is reset, and the completion is queued. The caller holds
    /// the context lock and has checked the phase (`Polling` or `Armed`).
    fn complete(&self, state: &mut State<'s, L::Queue, N>, slot: usize, outcome: Outcome) {
        self.detach_all(slot);
        // No entry is linked any more, so no waker can reach this word.
        self.words[slot].store(0, Ordering::Relaxed);
        self.finish(state, slot, outcome);
    }

    /// The bookkeeping of a completion whose entries are all off their
    /// queues already.
    fn finish(&self, state: &mut State<'s, L::Queue, N>, slot: usize, outcome: Outcome) {
        let record = &mut state.slots[slot];
        record.phase = Phase::Completed;
        record.outcome = outcome;
        record.source = None;
        // Cannot fail: the queue has one place per slot.
        let pushed = state.completed.push_back(slot as u16);
        debug_assert!(pushed.is_ok());
        self.hooks.completed();
    }

    /// T6 deferral: hand the request to deferred work. Called by a waker
    /// holding a queue lock on which the request is linked.
    fn defer(&self, slot: usize, extra: u32) {
        transition!("T6 deferral", slot);
        let previous = self.words[slot].fetch_or(PENDING | extra, Ordering::AcqRel);
        self.deferrals.fetch_add(1, Ordering::Relaxed);
        if previous & PENDING == 0 {
            // A read-modify-write, like the runner's swap: loom 0.7 lets a
            // plain store be lost against a concurrent swap (see the
            // `loom_store_vs_swap` note in tests/loom.rs).
            self.deferred.swap(true, Ordering::AcqRel);
            self.hooks.deferred_work();
        }
    }

    /// Whether `entry` is the only linked entry of `slot`. The caller holds
    /// the context lock (entries are only linked under it).
    fn sole_link(&self, slot: usize, entry: *const WaitEntry) -> bool {
        self.entries[slot]
            .iter()
            .all(|other| core::ptr::eq(other, entry) || other.queue().is_null())
    }

    /// The wake function of this context type (see [`WaitQueue`]'s module
    /// docs): decides what a wakeup does to one request.
    ///
    /// # Safety
    /// As [`crate::wait_queue::WakeFn`]: `owner` is a live context of this
    /// type, `entry` is one of its entries, linked on `list`, whose queue
    /// lock the caller holds; `events` is the entry's recorded event mask.
    unsafe fn wake_entry(
        owner: *const ContextHeader,
        list: &mut List,
        entry: *const WaitEntry,
        slot: u16,
        wake: Wake,
    ) -> Verdict {
        // SAFETY: `owner` points at a live `Self` (the caller's contract):
        // a context unlinks all its entries before it goes.
        let this = unsafe { &*(owner as *const Self) };
        let slot = usize::from(slot);
        // SAFETY: the entry is linked and we hold its queue lock.
        let events = unsafe { WaitEntry::events(entry) };
        let outcome = match wake {
            // A keyed wakeup that misses the mask: stay queued (scenario 6).
            Wake::Key(key) if !key.intersects(events) => return Verdict::NotInterested,
            Wake::Key(key) => Outcome::Ready(key & events),
            Wake::Repoll => {
                // T6: only a re-poll can tell, and a waker may not poll.
                this.defer(slot, 0);
                return Verdict::Deferred;
            }
            Wake::SourceGone => Outcome::SourceGone,
        };
        if let Some(locked) = Locked::try_lock(&this.lock) {
            let completed = this.with_state(&locked, |state| {
                // A linked entry's slot is Polling or Armed; Polling only
                // while submit holds the lock, which we now hold.
                if state.slots[slot].phase != Phase::Armed || !this.sole_link(slot, entry) {
                    return false;
                }
                transition!("T5 inline wakeup", slot);
                // T5 inline wakeup (T10 inline for a closing queue):
                // the entry leaves the queue before the context lock is
                // released, so the slot is free of wakers once Completed.
                // SAFETY: `entry` is linked on `list`, whose lock we hold.
                unsafe { list.remove(entry) };
                this.words[slot].store(0, Ordering::Relaxed);
                state.stats.completed_by_wakeup = state.stats.completed_by_wakeup.wrapping_add(1);
                this.finish(state, slot, outcome);
                true
            });
            if completed {
                return Verdict::Completed;
            }
        }
        // T6 deferral (T10 deferred for a closing queue: set GONE, then
        // leave the queue for good, clearing the queue pointer last).
        if wake == Wake::SourceGone {
            this.defer(slot, GONE);
            // SAFETY: `entry` is linked on `list`, whose lock we hold.
            unsafe { list.remove(entry) };
        } else {
            this.defer(slot, 0);
        }
        Verdict::Deferred
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify> Drop for Context<'_, N, L, W, H> {
    fn drop(&mut self) {
        // `Context` is `!Unpin`, so this `&mut` does not assert that nobody
        // else looks: wakers may still reach the entries until they are
        // detached. Work through a shared reference and the lock, as every
        // other path does.
        let this = &*self;
        let locked = Locked::lock(&this.lock);
        for slot in 0..N {
            let linked = this.with_state(&locked, |state| {
                matches!(state.slots[slot].phase, Phase::Armed | Phase::Polling)
            });
            if linked {
                // T12 context drop: leave every queue.
                transition!("T12 context drop", slot);
                this.detach_all(slot);
            }
        }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify> core::fmt::Debug
    for Context<'_, N, L, W, H>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("capacity", &N)
            .field("queues_per_request", &W)
            .field("in_use", &self.in_use())
            .field("completions", &self.completions())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Registers the request being submitted on the queues its source names.
struct Registration<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify> {
    context: &'c Context<'s, N, L, W, H>,
    slot: u16,
    events: Events,
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

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify> Registrar<'s, L::Queue>
    for Registration<'_, 's, N, L, W, H>
{
    fn register(&mut self, queue: &'s WaitQueue<L::Queue>) {
        let erased = queue as *const WaitQueue<L::Queue> as *mut ();
        // Registering twice on one queue is once (io_uring's double poll
        // does the same).
        if self.queues[..self.registered].contains(&erased) {
            return;
        }
        let index = self.registered;
        let Some(entry) = self.context.entries[usize::from(self.slot)].get(index) else {
            self.overflow = true;
            return;
        };
        self.queues[index] = erased;
        self.registered += 1;
        // SAFETY: the entry is unused (each index is used once per submit,
        // and a Free slot has no linked entry); we hold the context lock; the
        // queue lives for `'s`, and the context detaches the entry before
        // either goes.
        let attached =
            unsafe { queue.attach(entry, self.context.header(), self.slot, self.events) };
        if !attached {
            self.closed = true;
        }
    }
}

/// T4 when a source's `poll` unwinds: the slot goes back, no entry stays.
struct UndoSubmit<'c, 's, const N: usize, L: Locks, const W: usize, H: Notify> {
    context: &'c Context<'s, N, L, W, H>,
    locked: &'c Locked<'c, L::Context>,
    slot: usize,
    armed: bool,
}

impl<const N: usize, L: Locks, const W: usize, H: Notify> Drop for UndoSubmit<'_, '_, N, L, W, H> {
    fn drop(&mut self) {
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

/// Keeps deferred work from being stranded if a source's `poll` unwinds.
struct RaiseDeferredOnUnwind<'a> {
    deferred: &'a AtomicBool,
    armed: bool,
}

impl Drop for RaiseDeferredOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.deferred.swap(true, Ordering::AcqRel);
        }
    }
}

/// Gives a slot's wake word back its bits if the source's `poll` unwinds
/// during deferred work, so the wakeup it stood for is handled by the next
/// run instead of being lost.
struct RestoreWordOnUnwind<'a> {
    word: &'a AtomicU32,
    bits: u32,
    armed: bool,
}

impl Drop for RestoreWordOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.word.fetch_or(self.bits, Ordering::AcqRel);
        }
    }
}

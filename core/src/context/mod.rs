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
//! | `Completed` | no | the completion queue, until reaped; for an awaited request, its [`Request`](crate::Request) future, until it takes the outcome |
//!
//! Each request also has a *delivery*, fixed at submit: `Queue` (its
//! completion goes into the completion queue that [`Context::reap`] drains)
//! or `Awaited` (submitted by a [`Request`](crate::Request) future: the
//! outcome stays in the slot, and the task waker kept in the slot is taken
//! out by whichever transition completes the request and called once no
//! aiopoll lock is held). Both share the slots and every transition below.
//!
//! The wake word, an atomic per slot, holds the events the request waits for
//! (written under the context lock at submit and update, read by wakers) and
//! two bits: `PENDING` (a wakeup could not complete the request itself and
//! handed it to deferred work) and `GONE` (one of its wait queues was
//! closed).
//!
//! ## Transitions
//!
//! Each transition's code names it.
//!
//! - **T1 submit**: `Free → Polling`. Under the context lock, take a free slot
//!   (none: `Busy`, nothing changed), record the events (requested ∪ ERR ∪
//!   HUP, in the slot's wake word, where wakers read them), the user data and
//!   the source, and call the source's `poll`, which links the slot's wait
//!   entries on its queues. (A context's first submit also sets the wake
//!   function its entries lead wakers to: a new context is all zeros.) A wakeup during `poll` fails
//!   its try-lock (we hold the lock) and only sets `PENDING` (T6).
//! - **T2 submit arms**: `Polling → Armed`, when nothing asked for is ready
//!   and the request is on at least one queue; the slot records how many
//!   queues (with one, a wakeup knows its entry is the only one: an armed
//!   request's entries leave their queues only by T10). If a wakeup already set
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
//!   do: it holds the queue lock the source's own wake path may hold), when
//!   the request sits on a second queue (two queue locks never nest), or when
//!   `PENDING` is set already: deferred work is coming and re-polls the
//!   source after this wakeup's change, so the wakeup joins it without trying
//!   the context lock (whose holder is often that work's runner, or a cancel
//!   about to run it; trying would only make the queue lock's hold longer).
//! - **T7 deferred work completes**: `Armed → Completed`, under the context
//!   lock: the work clears the wake word's two bits, then either finds `GONE`
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
//!   [`Context::cancel_user_data`] and [`Context::cancel_source`] run T9
//!   (after the same deferred work) for every armed request they match,
//!   a few slots per lock hold. ([`Context::submit_batch`] is T1 to T4 for
//!   each request in turn, stopping at the first T4.)
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
//! - **T15 deadline passes**: `Armed → Completed(TimedOut)`, under the
//!   context lock, in [`Context::expire`] for each armed request whose
//!   deadline is not after `now`, after the slot's own deferred work (a
//!   wakeup that came first wins, as for cancel). The adapter calls
//!   `expire` from thread mode, a timer thread or its deferred-work
//!   handler (never from an interrupt that may preempt the context lock's
//!   holder), as [`Notify::deadline_armed`] asks.
//! - **T16 multishot readiness**: `Armed → Armed`, for a request submitted
//!   with [`Context::submit_multishot`]: where T3, T5 or T7 would complete
//!   it with ready events, it *posts* them instead and stays armed and on
//!   its queues (an inline wakeup posts even when the request sits on two
//!   queues: no entry leaves). A post takes the slot's one place in the
//!   completion queue, or merges into the readiness already there and not
//!   reaped yet (events OR'd), so the queue never overflows. Reaping a post
//!   gives a completion with `more` set and leaves the request armed; its
//!   final completion (cancel, close, deadline) comes after any readiness
//!   still unreaped, and frees the slot when reaped (T11).
//! - **T13 awaited request taken**: `Completed → Free`, under the context
//!   lock, for an awaited request: its future reads the outcome when polled,
//!   or, when the future is dropped, T9 (after the slot's own deferred work,
//!   as for cancel) and then T13. The generation is bumped as at T11.
//! - **Waiting for a slot**: a future that finds every slot in use (where
//!   submit would say `Busy`) links a node of its own on the context's list
//!   of slot waiters, under the context lock; each slot freed by T11 or T13
//!   wakes the oldest waiter once the lock is released, and a woken future
//!   dropped before it could submit passes its turn on.
//! - **T14 update**: `Armed → Armed` (or `→ Completed`), under the context
//!   lock, for a queued request ([`Context::update`]): after the slot's own
//!   deferred work (a wakeup that came first wins, as for cancel), the user
//!   data and the event mask change; the mask (in the wake word, which
//!   every entry's wakeup reads) changes in one atomic step, each queue the
//!   request is on is locked and let go, then the source is re-polled with
//!   the new mask and the request completes if it is ready (a keyed wakeup
//!   for the new mask that read the old one under a queue lock before is
//!   seen by that re-poll; one after finds the new mask).
//!
//! ## Where each part lives
//!
//! This module doc is the one map of the states and transitions; the code
//! is split along the machine's seams, and each transition's code names it:
//! `slots` (slot records, and the free list and completion queue linked
//! through them), `submit` (T1 to T4, T9),
//! `wake` (the wake function: T5, T6, T10), `deferred` (T7, T8), `ring`
//! (completing a request and reaping it, T11), `teardown` (leaving the wait
//! queues, T12), `awaited` (the context's side of [`Request`](crate::Request)
//! futures, T13), `slot_waiters` (futures waiting for a slot), `update` (T14), `deadline` (T15); T16 is `ring::post`.
//!
//! ## Kinds
//!
//! A context's last type parameter, its [`Kinds`], says which kinds of
//! request it takes beyond queued one-shot ones. Where it leaves one out,
//! the transitions that only that kind makes never happen: no `Awaited`
//! delivery (so no T13, no waiting for a slot, no task wakers), no T16, no
//! T15. Their checks test the kind's constant first, so the compiler drops
//! their code; the other transitions are the same code for every kind.
//! Each armed request's deadline is kept beside the slots, in the context's
//! [`Kinds::Deadlines`] (nothing where deadlines are left out).
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
//! 1. Only T3, T5, T7, T9, T14 and T15 complete a request (T11 and T13
//!    only take the completion out), and each runs under the context lock
//!    and requires phase `Polling` (T3, the submitter's own) or `Armed` (the
//!    others); each sets `Completed` before releasing the lock. So at most
//!    one final completion per submit (a multishot request's T16 posts
//!    are readiness, not completions: it keeps its slot until the final one).
//! 2. Completing detaches every wait entry of the slot (each under its queue
//!    lock) before the phase changes, and wakers reach a slot only through a
//!    linked entry while holding that entry's queue lock: after completion no
//!    waker can touch the slot or its wake word, so a slot's word is reset
//!    safely and a stale wakeup never reaches a reused slot.
//! 3. A request never leaves a queue while `Armed`, except through `close`
//!    (T10), which sets `GONE` before it unlinks: so an `Armed` request is
//!    always either on a queue that will wake it, or has `PENDING` set.
//! 4. `PENDING` going from clear to set always raises the deferred flag and
//!    calls [`Notify::deferred_work`]; deferred work clears each word's bits
//!    *before* it re-polls, so a wakeup during the re-poll sets `PENDING`
//!    again and is seen by the next run. [`Context::reap`] runs pending
//!    deferred work too, so it is never stranded while someone reaps.
//! 5. A completion slot is reserved at submit: the completion queue is
//!    linked through the request slots themselves, each on it at most once,
//!    so pushing never fails.
//! 6. Handles carry the slot's generation, bumped at every reap, and the
//!    context's identity (unique in the program, even for a context made at
//!    a dropped one's address): a finished request's handle never reaches a
//!    reused slot, nor another context.

use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::task::Waker;

use crate::completion::{Completion, Handle, Outcome};
use crate::error::{CancelError, SubmitError};
use crate::kinds::{DeadlineStore, EveryKind, Kinds};
use crate::locks::{Locks, SpinLocks};
use crate::source::{AsDynSource, PollTable, Registrar, Source};
use crate::sync::{AtomicBool, AtomicU32, ContextInQueue, Locked, Ordering, Release, UnsafeCell};
use crate::wait_queue::{ContextHeader, List, Verdict, WaitEntry, WaitQueue, Wake, WakeBatch};
use crate::Events;

/// Marks a transition of the state machine; with the `trace` feature, logs
/// it through defmt (at trace level, so it costs nothing unless enabled).
macro_rules! transition {
    ($name:literal, $slot:expr) => {
        #[cfg(feature = "trace")]
        defmt::trace!("aiopoll {=str} slot={=usize}", $name, $slot);
    };
}

mod awaited;
mod deadline;
mod deferred;
mod ring;
mod slot_waiters;
mod slots;
mod submit;
mod teardown;
mod update;
mod wake;

pub(crate) use awaited::Awaiting;
use deferred::SlotWork;
pub(crate) use slot_waiters::SlotWaiter;
use slot_waiters::WaiterList;
use slots::{Delivery, Lists, Phase, Slot, State, NO_DEADLINE};
use submit::{checked_events, NewRequest, Submitted};
pub use submit::{BatchRefused, RequestOptions, Submission};
pub use update::{UpdateError, Updated};

/// Wake word bits: the events the request waits for (requested ∪ ERR ∪ HUP),
/// set at submit and by update under the context lock, read by wakers under
/// a queue lock; one copy per request, whatever queues its entries are on.
const EVENTS: u32 = 0xFFFF;
/// Wake word bit: a wakeup handed this request to deferred work.
const PENDING: u32 = 1 << 16;
/// Wake word bit: one of the request's wait queues was closed.
const GONE: u32 = 1 << 17;

/// The events in a wake word.
#[inline(always)]
fn word_events(word: u32) -> Events {
    Events::from_bits_retain(word as u16)
}

/// The task wakers one operation of a context collects ([`WakeBatch`]):
/// declared before the lock guard they serve, and called when dropped, once
/// the lock is released. Only awaited requests have task wakers, so for a
/// context whose [`Kinds`] leave them out the batch is never looked at: its
/// drop is empty, and the compiler drops the code that would call it.
pub(crate) struct TaskWakers<K: Kinds> {
    batch: core::mem::ManuallyDrop<WakeBatch>,
    _kinds: PhantomData<K>,
}

impl<K: Kinds> TaskWakers<K> {
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        TaskWakers {
            batch: core::mem::ManuallyDrop::new(WakeBatch::new()),
            _kinds: PhantomData,
        }
    }
}

impl<K: Kinds> core::ops::Deref for TaskWakers<K> {
    type Target = WakeBatch;

    #[inline(always)]
    fn deref(&self) -> &WakeBatch {
        &self.batch
    }
}

impl<K: Kinds> core::ops::DerefMut for TaskWakers<K> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut WakeBatch {
        &mut self.batch
    }
}

impl<K: Kinds> Drop for TaskWakers<K> {
    #[inline(always)]
    fn drop(&mut self) {
        // Without awaited requests the batch is empty (only an awaited
        // request's completion pushes a waker), and its wakers need no
        // drop (`WakeBatch` keeps them in a `ManuallyDrop` vector, called
        // or cleared by its methods): nothing to do.
        if K::AWAITED {
            // SAFETY: the batch is dropped here, in its wrapper's own drop,
            // once, and never used again.
            unsafe { core::mem::ManuallyDrop::drop(&mut self.batch) };
        } else {
            debug_assert!(
                self.batch.is_empty(),
                "a task waker without awaited requests"
            );
        }
    }
}

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

    /// A request with a deadline (in the adapter's clock ticks) is waiting:
    /// make sure [`Context::expire`] runs by then (program a timer for it if
    /// it is earlier than the one programmed). Called under the context lock.
    fn deadline_armed(&self, deadline: u64) {
        let _ = deadline;
    }
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
    /// Requests completed by deferred work (T7), wherever it ran: in the
    /// adapter's deferred-work handler ([`Context::run_deferred`]), or in
    /// [`Context::reap`], `cancel`, `update` or `expire`, which run pending
    /// deferred work before they act.
    pub completed_by_deferred_work: u32,
    /// Requests cancelled (T9).
    pub cancelled: u32,
    /// Wakeups handed to deferred work (T6): try-lock failures, unkeyed
    /// wakeups, requests on several queues, closes that could not
    /// complete inline, and wakeups of a request whose deferred work was
    /// already scheduled (they join it).
    pub deferrals: u32,
    /// Deferred re-polls that found nothing ready (T8).
    pub spurious: u32,
    /// Requests whose deadline passed (T15).
    pub timed_out: u32,
    /// Completions reaped.
    pub reaped: u32,
    /// Completions taken by the [`Request`](crate::Request) futures that
    /// awaited them (an awaited request never reaches the queue `reap`
    /// drains).
    pub awaited: u32,
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
/// - `K`: the [`Kinds`] of request it takes beyond queued one-shot ones
///   (multishot, awaited, deadlines): [`EveryKind`] unless said. A firmware
///   that only submits and reaps names
///   [`QueuedOneShot`](crate::QueuedOneShot) and pays for nothing else (see
///   [`kinds`](crate::kinds)).
///
/// A context is pinned while in use ([`submit`](Self::submit) takes
/// `Pin<&Self>`): wait queues point into it. Put it in a `static` (then
/// `Pin::static_ref`), in `core::pin::pin!`, or in `Arc::pin`.
#[repr(C)]
pub struct Context<
    's,
    const N: usize,
    L: Locks = SpinLocks,
    const W: usize = 2,
    H: Notify = (),
    K: Kinds = EveryKind,
> {
    /// Must stay first: wait entries reach the context's wake function
    /// through it.
    header: ContextHeader,
    lock: L::Context,
    state: UnsafeCell<State<'s, L::Queue, N>>,
    /// Each armed request's deadline, under the context lock (like
    /// `state`): a `u64` per slot, or nothing where the kinds leave
    /// deadlines out.
    deadlines: UnsafeCell<K::Deadlines<N>>,
    /// The wake word of each slot: its events (written under the context
    /// lock, read by wakers), and `PENDING` and `GONE` (written by wakers
    /// under a queue lock, consumed under the context lock).
    words: [AtomicU32; N],
    /// The wait entries of each slot, linked on the sources' queues.
    entries: [[WaitEntry; W]; N],
    /// Some wake word has `PENDING` set since deferred work last ran.
    deferred: AtomicBool,
    /// Count of T6 deferrals (kept apart: wakers hold no context lock).
    deferrals: AtomicU32,
    /// How many futures wait for a free slot (changed under the context
    /// lock; read without it, to skip the lock when nobody waits).
    waiting_for_slot: AtomicU32,
    hooks: H,
    _kinds: PhantomData<K>,
    _pinned: PhantomPinned,
}

// SAFETY: all shared state is behind the context lock (`state`), in atomics
// (`words`, `deferred`, `deferrals`), or in wait entries protected by their
// queue's lock. The sources it polls are `Sync` by the `Source` trait's bound.
// So sharing a context between threads is sound when its locks and hooks are.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Sync
    for Context<'_, N, L, W, H, K>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

// SAFETY: as above; nothing in a context is tied to the thread that made it.
unsafe impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Send
    for Context<'_, N, L, W, H, K>
where
    L::Context: Send + Sync,
    L::Queue: Send + Sync,
    H: Send + Sync,
{
}

impl<'s, const N: usize, L: Locks, const W: usize, K: Kinds> Context<'s, N, L, W, (), K> {
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

impl<const N: usize, L: Locks, const W: usize, K: Kinds> Default for Context<'_, N, L, W, (), K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
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
            header: ContextHeader::new(),
            lock: <L::Context as lock_api::RawMutex>::INIT,
            state: UnsafeCell::new(State {
                id: 0,
                slots: [const { Slot::FREE }; N],
                lists: Lists::EMPTY,
                slot_waiters: WaiterList::EMPTY,
                stats: Stats {
                    submitted: 0,
                    completed_at_submit: 0,
                    completed_by_wakeup: 0,
                    completed_by_deferred_work: 0,
                    cancelled: 0,
                    deferrals: 0,
                    spurious: 0,
                    timed_out: 0,
                    reaped: 0,
                    awaited: 0,
                },
            }),
            deadlines: UnsafeCell::new(<K::Deadlines<N> as DeadlineStore>::EMPTY),
            words: [const { AtomicU32::new(0) }; N],
            entries: [const { [const { WaitEntry::new() }; W] }; N],
            deferred: AtomicBool::new(false),
            deferrals: AtomicU32::new(0),
            waiting_for_slot: AtomicU32::new(0),
            hooks,
            _kinds: PhantomData,
            _pinned: PhantomPinned,
        }
    }

    /// Makes an empty context that notifies `hooks` at `place`, field by
    /// field, without building it on the stack first: for contexts too
    /// large for a stack (thousands of slots; see [`core::mem::size_of`]
    /// of the context type). With an
    /// allocator: `Box::new_uninit()`, this, `assume_init`, `Box::into_pin`.
    ///
    /// # Safety
    /// `place` is valid for writes of a `Self` and properly aligned. What
    /// was there is overwritten, not dropped. Afterwards `*place` is an
    /// initialised context, to be pinned before use like any other.
    #[cfg(not(loom))]
    pub unsafe fn init_in_place(place: *mut Self, hooks: H) {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_PARAMETERS;
        // SAFETY: `place` is valid for writes and aligned (the caller's
        // contract), so is every field reached with `addr_of_mut!`, and
        // every array element reached by `cast` plus an index below its
        // length. `UnsafeCell` (ours and core's) is `repr(transparent)`, so
        // a pointer to it is a pointer to its contents. Each field is
        // written exactly once; nothing is read.
        unsafe {
            core::ptr::addr_of_mut!((*place).header).write(ContextHeader::new());
            core::ptr::addr_of_mut!((*place).lock).write(<L::Context as lock_api::RawMutex>::INIT);
            let state = core::ptr::addr_of_mut!((*place).state) as *mut State<'s, L::Queue, N>;
            core::ptr::addr_of_mut!((*state).id).write(0);
            let slots = core::ptr::addr_of_mut!((*state).slots) as *mut Slot<'s, L::Queue>;
            for slot in 0..N {
                slots.add(slot).write(Slot::FREE);
            }
            core::ptr::addr_of_mut!((*state).lists).write(Lists::EMPTY);
            core::ptr::addr_of_mut!((*state).slot_waiters).write(WaiterList::EMPTY);
            core::ptr::addr_of_mut!((*state).stats).write(Stats::default());
            // Every deadline store is valid all zeros (`DeadlineStore`'s
            // contract), and zeroing writes no `[u64; N]` on the stack.
            let deadlines = core::ptr::addr_of_mut!((*place).deadlines) as *mut K::Deadlines<N>;
            deadlines.write_bytes(0, 1);
            let words = core::ptr::addr_of_mut!((*place).words) as *mut AtomicU32;
            for slot in 0..N {
                words.add(slot).write(AtomicU32::new(0));
            }
            let entries = core::ptr::addr_of_mut!((*place).entries) as *mut WaitEntry;
            for entry in 0..N * W {
                entries.add(entry).write(WaitEntry::new());
            }
            core::ptr::addr_of_mut!((*place).deferred).write(AtomicBool::new(false));
            core::ptr::addr_of_mut!((*place).deferrals).write(AtomicU32::new(0));
            core::ptr::addr_of_mut!((*place).waiting_for_slot).write(AtomicU32::new(0));
            core::ptr::addr_of_mut!((*place).hooks).write(hooks);
            core::ptr::addr_of_mut!((*place)._kinds).write(PhantomData);
            core::ptr::addr_of_mut!((*place)._pinned).write(PhantomPinned);
        }
    }

    /// An empty context that notifies `hooks`.
    #[cfg(loom)]
    pub fn with_hooks(hooks: H) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_PARAMETERS;
        Context {
            header: ContextHeader::new(),
            lock: <L::Context as lock_api::RawMutex>::INIT,
            state: UnsafeCell::new(State {
                id: 0,
                slots: [const { Slot::FREE }; N],
                lists: Lists::EMPTY,
                slot_waiters: WaiterList::EMPTY,
                stats: Stats::default(),
            }),
            deadlines: UnsafeCell::new(<K::Deadlines<N> as DeadlineStore>::EMPTY),
            words: core::array::from_fn(|_| AtomicU32::new(0)),
            entries: core::array::from_fn(|_| core::array::from_fn(|_| WaitEntry::new())),
            deferred: AtomicBool::new(false),
            deferrals: AtomicU32::new(0),
            waiting_for_slot: AtomicU32::new(0),
            hooks,
            _kinds: PhantomData,
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

    /// Where `record`'s completion goes: the queue, always, when the
    /// context's [`Kinds`] leave awaited requests out (a constant, so the
    /// compiler drops the awaited paths).
    #[inline(always)]
    fn delivery_of(record: &Slot<'s, L::Queue>) -> Delivery {
        if K::AWAITED {
            record.delivery()
        } else {
            Delivery::Queue
        }
    }

    /// Whether `record` is a multishot request's: `false`, a constant, when
    /// the context's [`Kinds`] leave multishot requests out.
    #[inline(always)]
    fn is_multishot(record: &Slot<'s, L::Queue>) -> bool {
        K::MULTISHOT && record.multishot
    }

    /// Runs `f` on the requests' deadlines, which the context lock
    /// protects; `locked` is the proof that the lock is held. May be called
    /// inside [`with_state`](Self::with_state)'s closure (another cell),
    /// never inside its own.
    #[inline(always)]
    fn with_deadlines<R, How: Release<L::Context>>(
        &self,
        locked: &Locked<'_, L::Context, How>,
        f: impl FnOnce(&mut K::Deadlines<N>) -> R,
    ) -> R {
        debug_assert!(locked.holds(&self.lock));
        // SAFETY: `locked` shows the context lock is held, so nothing else
        // touches the deadlines; `with_deadlines` is never nested.
        self.deadlines
            .with_mut(|deadlines| f(unsafe { &mut *deadlines }))
    }

    /// Runs `f` on the state the context lock protects; `locked` is the
    /// proof that the lock is held. `f` must not call `with_state` again, nor
    /// a source (whose `poll` may wake its own queues); it may call hooks.
    #[inline(always)]
    fn with_state<R, How: Release<L::Context>>(
        &self,
        locked: &Locked<'_, L::Context, How>,
        f: impl FnOnce(&mut State<'s, L::Queue, N>) -> R,
    ) -> R {
        debug_assert!(locked.holds(&self.lock));
        // SAFETY: `locked` shows the context lock is held, so nothing else
        // touches the state; `with_state` is never nested (every caller is
        // in this module and passes a closure that does not call it).
        self.state.with_mut(|state| f(unsafe { &mut *state }))
    }

    /// How many completions wait to be reaped.
    pub fn completions(&self) -> usize {
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| state.lists.queued())
    }

    /// How many slots are in use: pending requests plus unreaped completions.
    pub fn in_use(&self) -> usize {
        let locked = Locked::lock(&self.lock);
        self.with_state(&locked, |state| state.lists.in_use())
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
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> core::fmt::Debug
    for Context<'_, N, L, W, H, K>
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

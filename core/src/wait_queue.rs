//! [`WaitQueue`]: the list of requests waiting on one event source.
//!
//! A source owns one wait queue per condition it can signal (Linux's
//! `wait_queue_head`). Requests are linked on it by the source's
//! [`poll`](crate::Source::poll) through [`PollTable::wait`]; the source calls
//! [`WaitQueue::wake`] when its state changes, from any context, interrupt
//! handlers included.
//!
//! # Layout
//!
//! The list is intrusive: its nodes are the wait entries that live inside the
//! request slots of a [`Context`](crate::Context), so waiting needs no
//! allocation and a queue holds any number of requests from any number of
//! contexts. Each entry records the context that owns it through a pointer to
//! the context's `ContextHeader`, whose wake function is the only code that
//! decides what a wakeup does to a request (Linux's `wait_queue_entry::func`).
//!
//! # Locking
//!
//! The queue's lock (`Q`) protects the list and every linked entry's node.
//! An entry's `queue` pointer is written only under that lock; a context reads
//! it with `Acquire` before taking the lock and checks it again once it holds
//! the lock, because [`close`](WaitQueue::close) may have detached the entry in
//! between (the `POLLFREE` protocol). Lock order, everywhere: a context's lock
//! before a queue's lock, never two queue locks nested, and the wakeup side
//! (which holds the queue lock) only ever *tries* the context lock.
//!
//! [`PollTable::wait`]: crate::PollTable::wait

use core::marker::PhantomPinned;
use core::mem::ManuallyDrop;
use core::ptr;
use core::task::Waker;

use lock_api::RawMutex;

use crate::sync::{AtomicPtr, Locked, Ordering, QueueInContext, UnsafeCell};
use crate::{Events, Locks};

/// How a queue wakes its waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A keyed wakeup: these events became ready.
    Key(Events),
    /// An unkeyed wakeup: something changed, the owner must re-poll the source.
    Repoll,
    /// The queue is being closed (`POLLFREE`): every entry leaves it for good.
    SourceGone,
}

/// What a wake function did with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A keyed wakeup that missed the request's events: it stays queued.
    NotInterested,
    /// The completion was handed to the owner's deferred work; the request
    /// stays queued until that work decides.
    Deferred,
    /// The request completed inline and its entry left the list.
    Completed,
    /// A multishot request posted its readiness inline and stays queued.
    Posted,
}

/// How many task wakers one pass of a wakeup (or of deferred work) may
/// collect before it must let go of its lock to call them.
const WAKE_BATCH: usize = 4;

/// Task wakers taken out of requests that completed while a lock was held,
/// called once no aiopoll lock is held any more, so that no waker runs
/// inside aiopoll's locks and none can re-enter them (maitake-sync's
/// `WakeBatch` idea). Bounded: a wake function that finds the batch full
/// hands the request to deferred work instead of completing it.
///
/// Declare a batch *before* the lock guard it serves: locals drop in
/// reverse order, so the guard is released first and the batch's `Drop`
/// then calls what it holds (also when a source's `poll` unwinds).
pub(crate) struct WakeBatch {
    /// Emptied by the batch's `Drop` (which calls them), so the vector's
    /// own drop, a loop over nothing, is never run. (A waker that panics
    /// in that `Drop` leaks the ones not called yet; it drops none unsafely.)
    wakers: ManuallyDrop<heapless::Vec<Waker, WAKE_BATCH>>,
}

impl WakeBatch {
    pub(crate) const fn new() -> Self {
        WakeBatch {
            wakers: ManuallyDrop::new(heapless::Vec::new()),
        }
    }

    /// Whether one more waker fits.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        !self.wakers.is_full()
    }

    /// Whether it holds no waker.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.wakers.is_empty()
    }

    /// Keeps `waker` to be called later. The caller has checked
    /// [`has_room`](Self::has_room); a waker that does not fit is dropped,
    /// never called under a lock.
    #[inline]
    pub(crate) fn push(&mut self, waker: Waker) {
        let pushed = self.wakers.push(waker);
        debug_assert!(pushed.is_ok(), "a full wake batch was pushed to");
    }

    /// Drops the wakers without calling them (their task is going away).
    #[inline]
    pub(crate) fn forget(&mut self) {
        // Usually empty: one check, and the drops out of line.
        if !self.wakers.is_empty() {
            self.forget_held();
        }
    }

    #[cold]
    fn forget_held(&mut self) {
        self.wakers.clear();
    }

    /// Calls every waker held, emptying the batch.
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        // Most batches stay empty (queued requests have no waker), and
        // most others hold one awaited task: one check for the first, the
        // one waker called here, and the loop for more out of line.
        if let Some(waker) = self.wakers.pop() {
            if !self.wakers.is_empty() {
                self.wake_held();
            }
            waker.wake();
        }
    }

    #[cold]
    fn wake_held(&mut self) {
        while let Some(waker) = self.wakers.pop() {
            waker.wake();
        }
    }
}

impl Drop for WakeBatch {
    #[inline]
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// The wake function of a context type: called with the queue's lock held
/// for an entry `entry` linked on `list` (the entry's place in its context
/// tells the request: the context finds the slot from the entry's address).
/// A task waker of a request it completes goes into `batch`, to be called
/// after the queue's lock is released.
///
/// # Safety
/// `owner` points to a live context of the type this function was
/// monomorphised for, `entry` is linked on `list`, and the caller holds the
/// lock of the queue that `list` belongs to.
pub(crate) type WakeFn = unsafe fn(
    owner: *const ContextHeader,
    list: &mut List,
    entry: *const WaitEntry,
    wake: Wake,
    batch: &mut WakeBatch,
) -> Verdict;

/// The first field of every `Context` (which is `repr(C)`): lets a wait entry
/// reach the code of the context type that owns it without knowing the type.
///
/// The wake function is set by the context's first submit, under the context
/// lock and before any of its entries is linked, not when the context is
/// made: so a new context is all zeros, and a `static` one takes no flash for
/// its initial value (it goes to `.bss`). Wakers read it only through linked
/// entries, under the queue lock, so always after it was set.
#[repr(C)]
pub(crate) struct ContextHeader {
    wake: UnsafeCell<Option<WakeFn>>,
}

impl ContextHeader {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        ContextHeader {
            wake: UnsafeCell::new(None),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        ContextHeader {
            wake: UnsafeCell::new(None),
        }
    }

    /// Sets the wake function, if it is not set yet.
    ///
    /// # Safety
    /// The caller holds the lock of the context this header belongs to (so
    /// no other thread sets it), and `wake` is that context type's wake
    /// function. Until it is set no entry of the context is linked, so no
    /// waker reads it meanwhile.
    #[inline]
    pub(crate) unsafe fn install(&self, wake: WakeFn) {
        // SAFETY: the caller's contract: read and written under the context
        // lock; wakers read it only once an entry is linked, which happens
        // (under a queue lock) after this write.
        unsafe {
            if self.wake.with(|cell| (*cell).is_none()) {
                self.wake.with_mut(|cell| *cell = Some(wake));
            }
        }
    }

    /// The wake function.
    ///
    /// # Safety
    /// One of the context's entries is linked on a queue whose lock the
    /// caller holds: the context's first submit set it before linking.
    #[inline(always)]
    unsafe fn wake_fn(&self) -> WakeFn {
        // SAFETY: set before the entry was linked (the caller's contract),
        // and never written again; the queue lock orders that write before
        // this read.
        unsafe { self.wake.with(|cell| (*cell).unwrap_unchecked()) }
    }
}

/// One place where a request can wait: a node of a [`WaitQueue`]'s list.
pub(crate) struct WaitEntry {
    /// Protected by the lock of the queue this entry is linked on; while the
    /// entry is on no queue, by the owning context's lock.
    node: UnsafeCell<Node>,
    /// The queue this entry is linked on (an erased `*const WaitQueue<Q>`),
    /// or null. Written only under that queue's lock, set with `Release` when
    /// linked and cleared with `Release` as the last access of whoever unlinks
    /// it.
    queue: AtomicPtr<()>,
}

/// Linux's `wait_queue_entry` without `func` and `private`: the owner's
/// header gives the wake function, and the entry's own address gives the
/// request (its slot), as `container_of` does in Linux. The events it waits
/// for are its request's, kept once per request by the context.
struct Node {
    prev: *const WaitEntry,
    next: *const WaitEntry,
    owner: *const ContextHeader,
}

impl WaitEntry {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        WaitEntry {
            node: UnsafeCell::new(Node::UNLINKED),
            queue: AtomicPtr::new(ptr::null_mut()),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        WaitEntry {
            node: UnsafeCell::new(Node::UNLINKED),
            queue: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The queue this entry is linked on, or null.
    #[inline]
    pub(crate) fn queue(&self) -> *mut () {
        self.queue.load(Ordering::Acquire)
    }
}

impl Node {
    const UNLINKED: Node = Node {
        prev: ptr::null(),
        next: ptr::null(),
        owner: ptr::null(),
    };
}

/// The list of a [`WaitQueue`], protected by its lock.
pub(crate) struct List {
    head: *const WaitEntry,
    tail: *const WaitEntry,
    closed: bool,
}

impl List {
    /// Links `entry` at the tail.
    ///
    /// # Safety
    /// The caller holds the lock of the queue this list belongs to, and
    /// `entry` is on no list.
    unsafe fn push_back(&mut self, entry: *const WaitEntry) {
        let tail = self.tail;
        // SAFETY: `entry` is on no list, so nobody else reaches its node; the
        // caller keeps it alive while it is linked (the context unlinks every
        // entry before its memory goes).
        unsafe {
            (*entry).node.with_mut(|node| {
                (*node).prev = tail;
                (*node).next = ptr::null();
            });
        }
        if tail.is_null() {
            self.head = entry;
        } else {
            // SAFETY: `tail` is linked on this list, whose lock we hold.
            unsafe { (*tail).node.with_mut(|node| (*node).next = entry) };
        }
        self.tail = entry;
    }

    /// Unlinks `entry` and clears its `queue` pointer with `Release`: after
    /// this the entry belongs to its context alone, and the queue may go.
    ///
    /// # Safety
    /// The caller holds the lock of the queue this list belongs to, and
    /// `entry` is linked on this list.
    #[inline]
    pub(crate) unsafe fn remove(&mut self, entry: *const WaitEntry) {
        // SAFETY: `entry` is linked here and we hold the lock that protects
        // its node and its neighbours' nodes.
        unsafe {
            let (prev, next) = (*entry).node.with(|node| ((*node).prev, (*node).next));
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).node.with_mut(|node| (*node).next = next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).node.with_mut(|node| (*node).prev = prev);
            }
            (*entry).node.with_mut(|node| {
                (*node).prev = ptr::null();
                (*node).next = ptr::null();
            });
            // POLLFREE ordering: this store is the last access to the entry
            // made on the queue's behalf.
            (*entry).queue.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

/// A queue of poll requests waiting for one condition of a source.
///
/// `Q` is the lock that protects the queue. It must exclude every context
/// that calls [`wake`](Self::wake) or [`close`](Self::close) on this queue: on
/// a single core, a lock that masks the interrupts that wake it (the
/// Cortex-M adapter's locks enforce this by type).
///
/// A queue may be woken from any context, including an interrupt handler
/// that preempted a submit or a cancel on this very queue: the wakeup never
/// blocks on a context, it only tries the context's lock and defers the
/// completion when that fails.
pub struct WaitQueue<Q: RawMutex = crate::SpinLock> {
    lock: Q,
    list: UnsafeCell<List>,
    _pinned: PhantomPinned,
}

// SAFETY: the raw pointers in the list are only followed under `lock`, and
// the entries they reach belong to contexts that are themselves `Sync`
// (a context's wake function only touches its own state through its locks and
// atomics). `Q: Sync + Send` makes the lock itself shareable.
unsafe impl<Q: RawMutex + Send + Sync> Sync for WaitQueue<Q> {}
// SAFETY: as above; moving a queue to another thread moves nothing that is
// tied to the thread (and a queue with entries cannot move at all: every
// context borrows it for as long as its entries may be linked).
unsafe impl<Q: RawMutex + Send + Sync> Send for WaitQueue<Q> {}

impl<Q: RawMutex> WaitQueue<Q> {
    /// An empty, open wait queue.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        WaitQueue {
            lock: Q::INIT,
            list: UnsafeCell::new(List {
                head: ptr::null(),
                tail: ptr::null(),
                closed: false,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// An empty, open wait queue.
    #[cfg(loom)]
    pub fn new() -> Self {
        WaitQueue {
            lock: Q::INIT,
            list: UnsafeCell::new(List {
                head: ptr::null(),
                tail: ptr::null(),
                closed: false,
            }),
            _pinned: PhantomPinned,
        }
    }

    fn as_erased(&self) -> *mut () {
        self as *const Self as *mut ()
    }

    /// Wakes the requests waiting for any of `key`, or, with an empty key,
    /// asks every waiting request to re-poll its source (Linux's unkeyed
    /// wakeup).
    ///
    /// Safe from any context, interrupt handlers included: it takes this
    /// queue's lock, only *tries* each waiter's context lock, never allocates,
    /// and its work is bounded by the number of waiters on this queue.
    /// A request whose events miss `key` stays queued. Returns how many
    /// requests were woken (completed now or handed to deferred work).
    pub fn wake(&self, key: Events) -> usize {
        self.wake_all(Self::wake_for(key), false)
    }

    /// [`wake`](Self::wake) with a key that `key` computes under this
    /// queue's lock (`None`: wake nobody).
    ///
    /// For a source whose readiness comes from somewhere else than the
    /// operation that changed it (an OS poller's report, read a moment
    /// before the wakeup): a request that registers while `key` runs, or
    /// after, is not on the queue for this wakeup, and every request that
    /// is, registered before `key` ran. So a key computed from a fresh look
    /// at the source inside `key` is readiness every woken request saw
    /// while it waited, never readiness that was gone before it registered.
    ///
    /// `key` runs once, whether or not anybody waits (a source may record
    /// there what it learned, or make the change it wakes for), with the
    /// queue's lock held. It must not touch this queue, nor take a lock
    /// that is held anywhere while this queue's lock is taken (a lock a
    /// source's `poll` holds while it registers, say; a try-lock is fine).
    /// A lock that is always taken last may be: a source can change its
    /// state under its own lock inside `key`, so that the key describes
    /// the state it was sent for and the tasks it wakes are called once
    /// both locks are released (aiopoll-std's `EventCounter` does so).
    /// Called from an interrupt handler, `key` must not block.
    pub fn wake_with(&self, key: impl FnOnce() -> Option<Events>) -> usize {
        // Before the guard, as in `wake_all`.
        let mut batch = WakeBatch::new();
        let _locked = Locked::lock(&self.lock);
        match key() {
            // SAFETY: we hold the queue lock.
            Some(key) => unsafe { self.wake_locked(Self::wake_for(key), false, &mut batch) },
            None => 0,
        }
    }

    /// The wakeup a key asks for: an empty key asks for a re-poll.
    fn wake_for(key: Events) -> Wake {
        if key.is_empty() {
            Wake::Repoll
        } else {
            Wake::Key(key)
        }
    }

    /// Closes the queue for good: every request on it completes exactly once
    /// with [`Outcome::SourceGone`](crate::Outcome::SourceGone), and a request
    /// that registers on it later completes the same way at submit (Linux's
    /// `POLLFREE`). Returns how many requests were on the queue.
    ///
    /// Safe from any context; after it returns no context touches the
    /// queue's list again, so the queue's memory may be reused.
    pub fn close(&self) -> usize {
        self.wake_all(Wake::SourceGone, true)
    }

    /// Opens a closed queue again, for a source that lives in a `static` and
    /// comes back after a teardown (a peripheral reset, a link that
    /// reconnects): requests submitted from now on wait on it as on a new
    /// queue. Requests completed by the close stay completed
    /// ([`Outcome::SourceGone`](crate::Outcome::SourceGone)); nothing they
    /// left behind is linked. Returns whether the queue was closed.
    pub fn reopen(&self) -> bool {
        let _locked = Locked::lock(&self.lock);
        // SAFETY: we hold the queue lock, which protects the list.
        self.list.with_mut(|list| unsafe {
            let was_closed = (*list).closed;
            (*list).closed = false;
            was_closed
        })
    }

    /// Whether [`close`](Self::close) has been called (and
    /// [`reopen`](Self::reopen) not since).
    pub fn is_closed(&self) -> bool {
        let _locked = Locked::lock(&self.lock);
        // SAFETY: we hold the queue lock, which protects the list.
        self.list.with(|list| unsafe { (*list).closed })
    }

    /// How many requests are linked on the queue now (a snapshot).
    pub fn len(&self) -> usize {
        let _locked = Locked::lock(&self.lock);
        let mut count = 0;
        // SAFETY: we hold the queue lock, which protects the list and the
        // nodes of every linked entry.
        unsafe {
            let mut cursor = self.list.with(|list| (*list).head);
            while !cursor.is_null() {
                count += 1;
                cursor = (*cursor).node.with(|node| (*node).next);
            }
        }
        count
    }

    /// Whether no request is linked on the queue now (a snapshot).
    pub fn is_empty(&self) -> bool {
        let _locked = Locked::lock(&self.lock);
        // SAFETY: we hold the queue lock.
        self.list.with(|list| unsafe { (*list).head.is_null() })
    }

    /// Runs the wake function of every linked entry with `wake`, closing
    /// the queue first if `close`.
    fn wake_all(&self, wake: Wake, close: bool) -> usize {
        // Before the guard: the tasks of requests completed here are woken
        // once the queue lock is released.
        let mut batch = WakeBatch::new();
        let _locked = Locked::lock(&self.lock);
        // SAFETY: we hold the queue lock.
        unsafe { self.wake_locked(wake, close, &mut batch) }
    }

    /// The body of a wakeup: runs the wake function of every linked entry
    /// with `wake`, closing the queue first if `close`.
    ///
    /// # Safety
    /// The caller holds the queue lock (and declared `batch` before its
    /// guard).
    #[inline(always)]
    unsafe fn wake_locked(&self, wake: Wake, close: bool, batch: &mut WakeBatch) -> usize {
        let mut woken = 0;
        self.list.with_mut(|list| {
            // SAFETY: the caller holds the queue lock, which protects the
            // list and every linked entry's node. Each linked entry's owner
            // is a live context: a context unlinks all its entries, under
            // this lock, before its memory goes. The wake function removes
            // at most the entry it was given (never another), so `next`,
            // read before the call, is still linked afterwards.
            unsafe {
                let list = &mut *list;
                if close {
                    list.closed = true;
                }
                let mut cursor = list.head;
                while !cursor.is_null() {
                    let (next, owner) = (*cursor).node.with(|node| ((*node).next, (*node).owner));
                    let wake_fn = (*owner).wake_fn();
                    let verdict = wake_fn(owner, list, cursor, wake, batch);
                    if verdict != Verdict::NotInterested {
                        woken += 1;
                    }
                    cursor = next;
                }
            }
        });
        woken
    }

    /// Links `entry`, an entry of the context behind `owner`. Returns
    /// `false`, linking nothing, when the queue is closed.
    ///
    /// # Safety
    /// `entry` is on no queue and belongs to the context behind `owner`,
    /// whose lock (of the pair `L`) the caller holds; that context unlinks
    /// the entry (through [`detach`](Self::detach)) before either of them
    /// goes away.
    pub(crate) unsafe fn attach<L: Locks<Queue = Q>>(
        &self,
        entry: *const WaitEntry,
        owner: *const ContextHeader,
    ) -> bool {
        let _locked = Locked::<_, QueueInContext<L>>::in_context(&self.lock);
        self.list.with_mut(|list| {
            // SAFETY: we hold the queue lock; `entry` is unlinked and owned by
            // the caller's context, whose lock the caller holds.
            unsafe {
                let list = &mut *list;
                if list.closed {
                    return false;
                }
                (*entry).node.with_mut(|node| (*node).owner = owner);
                list.push_back(entry);
                (*entry).queue.store(self.as_erased(), Ordering::Release);
                true
            }
        })
    }

    /// Takes this queue's lock and lets it go, while the caller holds the
    /// lock of a context (of the pair `L`) whose request is linked here: a
    /// wakeup that held the lock before is ordered before what the caller
    /// does next (it re-polls the source, which that wakeup's source
    /// changed first), and one after sees what the caller wrote before (a
    /// request's new event mask).
    ///
    /// # Safety
    /// As [`detach`](Self::detach).
    pub(crate) unsafe fn handshake<L: Locks<Queue = Q>>(&self) {
        let _locked = Locked::<_, QueueInContext<L>>::in_context(&self.lock);
    }

    /// Unlinks `entry` if it is still linked on this queue (a concurrent
    /// [`close`](Self::close) may have detached it first).
    ///
    /// # Safety
    /// `entry` belongs to a context whose lock (of the pair `L`) the caller
    /// holds, and was linked on this queue when the caller last read its
    /// `queue` pointer.
    pub(crate) unsafe fn detach<L: Locks<Queue = Q>>(&self, entry: *const WaitEntry) {
        let _locked = Locked::<_, QueueInContext<L>>::in_context(&self.lock);
        // SAFETY: we hold the queue lock; re-checking `queue` under it tells
        // whether the entry is still on this list.
        unsafe {
            if (*entry).queue.load(Ordering::Relaxed) == self.as_erased() {
                self.list.with_mut(|list| (*list).remove(entry));
            }
        }
    }
}

impl<Q: RawMutex> Default for WaitQueue<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q: RawMutex> Drop for WaitQueue<Q> {
    /// Dropping a queue closes it: any request still on it completes with
    /// [`Outcome::SourceGone`](crate::Outcome::SourceGone).
    fn drop(&mut self) {
        self.close();
    }
}

impl<Q: RawMutex> core::fmt::Debug for WaitQueue<Q> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiters", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

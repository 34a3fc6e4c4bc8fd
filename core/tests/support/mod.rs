//! Sources and locks shared by the core's host tests.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use aiopoll::lock_api::{GuardSend, RawMutex};
use aiopoll::{Events, PollTable, Source, SpinLock, WaitQueue};

/// A device with readiness bits and up to three wait queues; `poll`
/// registers on the first `queues_used` of them.
pub struct Device<Q: RawMutex = SpinLock> {
    pub ready: AtomicU16,
    pub queues: [WaitQueue<Q>; 3],
    pub queues_used: usize,
    /// Hostile: wake queue 0 with this key from inside `poll`, after
    /// registering.
    pub wakes_itself: Option<Events>,
    /// Hostile: register on every queue twice.
    pub registers_twice: bool,
    /// Hostile: report bits that are not poll events.
    pub unknown_bits: bool,
    /// Hostile: panic (with [`HOSTILE_PANIC`]) in every registering `poll`,
    /// after registering.
    pub panics: bool,
    /// Hostile: panic (with [`HOSTILE_PANIC`]) in every re-checking `poll`
    /// while set.
    pub panics_rechecking: AtomicBool,
}

/// What a hostile [`Device`] panics with.
pub const HOSTILE_PANIC: &str = "hostile source panics in poll";

/// Keeps the expected panics of hostile sources off standard error; any
/// other panic is reported as usual.
pub fn quiet_hostile_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&HOSTILE_PANIC) {
                report(info);
            }
        }));
    });
}

impl<Q: RawMutex> Device<Q> {
    pub fn new(queues_used: usize) -> Self {
        Device {
            ready: AtomicU16::new(0),
            queues: [WaitQueue::new(), WaitQueue::new(), WaitQueue::new()],
            queues_used,
            wakes_itself: None,
            registers_twice: false,
            unknown_bits: false,
            panics: false,
            panics_rechecking: AtomicBool::new(false),
        }
    }

    pub fn set_ready(&self, events: Events) {
        self.ready.store(events.bits(), Ordering::Release);
    }

    /// State change, then keyed wakeup on queue 0 (the right order).
    pub fn raise(&self, events: Events) -> usize {
        self.ready.fetch_or(events.bits(), Ordering::Release);
        self.queues[0].wake(events)
    }
}

impl<Q: RawMutex + Send + Sync> Source<Q> for Device<Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        for queue in &self.queues[..self.queues_used] {
            table.wait(queue);
            if self.registers_twice {
                table.wait(queue);
            }
        }
        if let (Some(key), true) = (self.wakes_itself, table.is_registering()) {
            self.queues[0].wake(key);
        }
        if self.panics && table.is_registering() {
            std::panic::panic_any(HOSTILE_PANIC);
        }
        if !table.is_registering() && self.panics_rechecking.load(Ordering::Relaxed) {
            std::panic::panic_any(HOSTILE_PANIC);
        }
        let ready = self.ready.load(Ordering::Acquire);
        if self.unknown_bits {
            Events::from_bits_retain(ready | 0x8000)
        } else {
            Events::from_bits_truncate(ready)
        }
    }
}

pub mod model;

/// Sequences per property-test run: `PROPTEST_CASES` if set, else
/// `default`, or 16 under Miri (which checks the unsafe code on every path,
/// slowly).
pub fn proptest_cases(default: u32) -> u32 {
    let default = if cfg!(miri) { 16 } else { default };
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

thread_local! {
    /// How many of this thread's next `FaultLock::try_lock` calls fail.
    static FAIL_TRY_LOCKS: Cell<u32> = const { Cell::new(0) };
}

/// Makes the next `count` `try_lock` calls of a [`FaultLock`] on this thread
/// fail, so the deferred paths run deterministically.
pub fn fail_next_try_locks(count: u32) {
    FAIL_TRY_LOCKS.with(|fails| fails.set(count));
}

/// How many scheduled failures are left.
pub fn try_lock_failures_left() -> u32 {
    FAIL_TRY_LOCKS.with(Cell::get)
}

/// A spin lock whose `try_lock` fails on a schedule the test controls
/// (fault injection: every deferred path, on demand).
pub struct FaultLock(AtomicBool);

// SAFETY: a test-and-set lock: `lock` returns only after it set the flag
// from false, `unlock` clears it; `try_lock` fails spuriously only when the
// schedule says so, which the contract allows (it may fail at any time).
unsafe impl RawMutex for FaultLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = FaultLock(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    fn lock(&self) {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    fn try_lock(&self) -> bool {
        let fail = FAIL_TRY_LOCKS.with(|fails| {
            let left = fails.get();
            if left > 0 {
                fails.set(left - 1);
            }
            left > 0
        });
        !fail
            && self
                .0
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A lock that panics when the thread holding it takes it again: in a
/// single-threaded test, it turns a re-entry into aiopoll from inside its
/// own locks (a waker called under a lock, say) into a failure instead of a
/// deadlock.
pub struct ReentryCheckLock(AtomicBool);

/// What a [`ReentryCheckLock`] panics with.
pub const REENTERED: &str = "an aiopoll lock was taken again by the thread holding it";

// SAFETY: single-threaded use only (the tests that use it never share it
// across threads): `lock` takes it if free and panics otherwise, so it never
// hands out a second guard; `try_lock` sets it only if it was clear.
unsafe impl RawMutex for ReentryCheckLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = ReentryCheckLock(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    fn lock(&self) {
        assert!(!self.0.swap(true, Ordering::Acquire), "{REENTERED}");
    }

    fn try_lock(&self) -> bool {
        !self.0.swap(true, Ordering::Acquire)
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

//! `CriticalSectionLock` on the host, through `lock_api` and as a context's
//! lock.
//!
//! On the host the critical section is critical-section's `std`
//! implementation: one global mutex, reentrant per thread. So, as on
//! hardware, the lock's "held" flag only ever fails a `try_lock` for the
//! execution context that holds it already (a wakeup from inside a source's
//! `poll`, or from a hook): that is the path the context defers on, and it
//! is tested single-threaded below. Another thread that wakes a queue while
//! the first holds the context lock does not defer: it waits for the whole
//! critical section, as an interrupt cannot even preempt a critical section
//! on one core and as the other core waits where the critical section spans
//! cores. `a_wakeup_from_another_thread_waits_for_the_critical_section`
//! pins that down. (The cross-thread deferral belongs to `CeilingLock`,
//! whose claim does not mask the waker: see the unit tests in `src/lock.rs`.)
//!
//! If a test here leaked the critical section, every later critical section
//! on another thread would wait for ever: a leak shows as a hung test.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Mutex as StdMutex;
use std::thread::{self, JoinHandle};

use aiopoll_cortex_m::aiopoll::lock_api::{Mutex, RawMutex};
use aiopoll_cortex_m::aiopoll::{
    Completion, Context, Events, Outcome, PollTable, Source, WaitQueue,
};
use aiopoll_cortex_m::{CortexMLocks, CriticalSectionLock, IrqEvent};
use support::{reap_all, Counting};

type Lock<T> = Mutex<CriticalSectionLock, T>;

/// Enters the critical section from another thread and comes back: hangs
/// if this thread still holds it.
fn critical_section_is_free_for_other_threads() {
    thread::spawn(|| critical_section::with(|_| ()))
        .join()
        .unwrap();
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after_unlock() {
    let lock = Lock::new(5u32);
    assert!(!lock.is_locked());
    {
        let mut guard = lock.lock();
        *guard += 1;
        assert!(lock.is_locked());
        assert!(lock.try_lock().is_none());
        // Still held after the failed try.
        assert!(lock.is_locked());
        assert!(lock.try_lock().is_none());
    }
    assert!(!lock.is_locked());
    let guard = lock.try_lock().expect("free again after unlock");
    assert_eq!(*guard, 6);
    assert!(lock.try_lock().is_none());
    drop(guard);
    assert!(!lock.is_locked());
    critical_section_is_free_for_other_threads();
}

#[test]
fn raw_lock_and_unlock() {
    let lock = CriticalSectionLock::INIT;
    assert!(lock.try_lock());
    assert!(!lock.try_lock());
    assert!(lock.is_locked());
    // SAFETY: this thread took it with the `try_lock` above.
    unsafe { lock.unlock() };
    assert!(!lock.is_locked());
    lock.lock();
    assert!(!lock.try_lock());
    // SAFETY: taken by the `lock` above.
    unsafe { lock.unlock() };
    assert!(lock.try_lock());
    // SAFETY: taken by the `try_lock` above.
    unsafe { lock.unlock() };
    critical_section_is_free_for_other_threads();
}

#[test]
fn two_locks_nest_and_release_in_reverse_order() {
    let outer = Lock::new(());
    let inner = Lock::new(());
    {
        let _outer = outer.lock();
        let _inner = inner.try_lock().expect("another lock is free");
        assert!(outer.try_lock().is_none());
        assert!(inner.try_lock().is_none());
    }
    assert!(outer.try_lock().is_some());
    assert!(inner.try_lock().is_some());
    critical_section_is_free_for_other_threads();
}

#[test]
fn relocking_by_the_holder_panics_instead_of_hanging_and_releases() {
    let lock = Lock::new(());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _held = lock.lock();
        let _again = lock.lock();
    }));
    let message = result.expect_err("taking a held lock again must panic");
    let message = message
        .downcast_ref::<&str>()
        .map(|message| message.to_string())
        .or_else(|| message.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        message.contains("taken again by its own holder"),
        "{message}"
    );
    // Unwinding dropped the first guard: the lock and the critical section
    // are free.
    assert!(!lock.is_locked());
    assert!(lock.try_lock().is_some());
    critical_section_is_free_for_other_threads();
}

/// A source on a queue of its own whose `poll` raises another source: a
/// wakeup from inside `poll`, while submit holds the context lock.
struct RaisesInPoll<'a> {
    queue: WaitQueue<CriticalSectionLock>,
    raise: &'a IrqEvent,
}

impl Source<CriticalSectionLock> for RaisesInPoll<'_> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, CriticalSectionLock>) -> Events {
        table.wait(&self.queue);
        if table.is_registering() {
            self.raise.raise(Events::IN);
        }
        Events::empty()
    }
}

#[test]
fn a_wakeup_while_the_context_lock_is_held_defers() {
    let event = IrqEvent::new();
    let nested = RaisesInPoll {
        queue: WaitQueue::new(),
        raise: &event,
    };
    let context = pin!(Context::<'_, 4, CortexMLocks, 1, Counting>::with_hooks(
        Counting::new()
    ));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();

    // The raise inside `poll` meets the context lock held by this very
    // submit: its try-lock fails, and the completion is handed to deferred
    // work instead of taken (or deadlocked on).
    context.as_ref().submit(&nested, Events::IN, 2).unwrap();
    assert_eq!(context.completions(), 0);
    assert!(context.has_deferred_work());
    assert_eq!(context.hooks().deferred_work(), 1);
    assert_eq!(context.stats().deferrals, 1);
    assert_eq!(context.stats().completed_by_wakeup, 0);

    assert_eq!(context.run_deferred(), 1);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    // The request whose poll raised is still waiting on its own queue.
    assert_eq!(nested.queue.len(), 1);
    assert_eq!(context.in_use(), 1);
}

type StaticContext = Context<'static, 4, CortexMLocks, 1, Counting>;

static EVENT: IrqEvent = IrqEvent::new();
static CONTEXT: StaticContext = Context::with_hooks(Counting::new());
static WAKER: StdMutex<Option<JoinHandle<usize>>> = StdMutex::new(None);

/// A source whose `poll` starts a thread that raises `EVENT`, while submit
/// holds the context lock.
struct StartsWaker {
    queue: WaitQueue<CriticalSectionLock>,
}

impl Source<CriticalSectionLock> for StartsWaker {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, CriticalSectionLock>) -> Events {
        table.wait(&self.queue);
        if table.is_registering() {
            let waker = thread::spawn(|| EVENT.raise(Events::IN));
            *WAKER.lock().unwrap() = Some(waker);
        }
        Events::empty()
    }
}

static STARTS_WAKER: StartsWaker = StartsWaker {
    queue: WaitQueue::new(),
};

#[test]
fn a_wakeup_from_another_thread_waits_for_the_critical_section() {
    let context = Pin::static_ref(&CONTEXT);
    context.submit(&EVENT, Events::IN, 1).unwrap();
    // The raising thread starts while this thread holds the context lock
    // (and so the critical section). Its raise cannot run until this submit
    // has left the critical section, and then the context lock is free: it
    // completes the request inline, and nothing is deferred.
    context.submit(&STARTS_WAKER, Events::IN, 2).unwrap();
    let waker = WAKER
        .lock()
        .unwrap()
        .take()
        .expect("poll started the waker");
    assert_eq!(waker.join().unwrap(), 1);
    assert_eq!(CONTEXT.stats().deferrals, 0);
    assert_eq!(CONTEXT.stats().completed_by_wakeup, 1);
    assert!(!CONTEXT.has_deferred_work());
    assert_eq!(
        reap_all(&CONTEXT),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    assert_eq!(STARTS_WAKER.queue.len(), 1);
}

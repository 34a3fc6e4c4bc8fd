//! Loom models of the races in the seed mail and in `kernel-poll.md`, one
//! named test per race. Each asserts exactly-once completion and that no slot
//! or wait entry leaks.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=8 cargo test -p aiopoll
//! --release --test loom` (what `cargo xtask test` does: about a minute on
//! a 2-core machine; a bound of 10 also passes, in about two and a half).
#![cfg(loom)]

use std::pin::Pin;
use std::sync::OnceLock;

use aiopoll::lock_api::{GuardSend, RawMutex};
use aiopoll::{
    CancelError, Completion, Context, Events, EveryKind, Kinds, Outcome, PollTable, QueuedOneShot,
    Source, WaitQueue,
};
use loom::sync::atomic::{AtomicU16, Ordering};
use loom::sync::{Condvar, Mutex};
use loom::thread;

/// A lock built from loom's mutex and condition variable, so loom sees every
/// acquire and release and a waiting thread blocks instead of spinning (a
/// spinning lock multiplies the interleavings of three-thread models beyond
/// reach). `RawMutex::INIT` must be a constant and loom's primitives are not,
/// so they are made on first use, inside the model.
struct LoomLock(OnceLock<(Mutex<bool>, Condvar)>);

impl LoomLock {
    fn parts(&self) -> &(Mutex<bool>, Condvar) {
        self.0.get_or_init(|| (Mutex::new(false), Condvar::new()))
    }
}

// SAFETY: the `bool` under loom's mutex is the lock's state: `lock` returns
// only after setting it from false, `unlock` clears it, `try_lock` sets it
// only if it was clear. Loom's mutex orders these like Acquire/Release.
unsafe impl RawMutex for LoomLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = LoomLock(OnceLock::new());
    type GuardMarker = GuardSend;

    fn lock(&self) {
        let (mutex, condvar) = self.parts();
        let mut held = mutex.lock().unwrap();
        while *held {
            held = condvar.wait(held).unwrap();
        }
        *held = true;
    }

    fn try_lock(&self) -> bool {
        let mut held = self.parts().0.lock().unwrap();
        !std::mem::replace(&mut *held, true)
    }

    unsafe fn unlock(&self) {
        let (mutex, condvar) = self.parts();
        *mutex.lock().unwrap() = false;
        condvar.notify_one();
    }
}

type Locks = (LoomLock, LoomLock);
/// The models' context, of kinds `K`: every kind unless a model says.
type Ctx<K = EveryKind> = Context<'static, 2, Locks, 2, (), K>;

struct Device {
    ready: AtomicU16,
    queues: [WaitQueue<LoomLock>; 2],
    queues_used: usize,
}

impl Device {
    fn new(queues_used: usize) -> &'static Device {
        let device = Box::leak(Box::new(Device {
            ready: AtomicU16::new(0),
            queues: [WaitQueue::new(), WaitQueue::new()],
            queues_used,
        }));
        // Make the locks' loom atomics now, before any thread is spawned.
        assert!(device.idle());
        device
    }

    /// The right order for a source: change the state, then wake.
    fn raise(&self, queue: usize, events: Events) {
        self.ready.fetch_or(events.bits(), Ordering::Release);
        self.queues[queue].wake(events);
    }

    fn set_ready(&self, events: Events) {
        self.ready.store(events.bits(), Ordering::Release);
    }

    fn idle(&self) -> bool {
        self.queues.iter().all(|queue| queue.is_empty())
    }
}

impl Source<LoomLock> for Device {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, LoomLock>) -> Events {
        for queue in &self.queues[..self.queues_used] {
            table.wait(queue);
        }
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }
}

/// `loom::model` with room for the spinning in the locks (the default
/// branch limit of 1,000 is too small for three threads that spin). The
/// preemption bound comes from `LOOM_MAX_PREEMPTIONS`.
fn model(f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let iterations = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = iterations.clone();
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(move || {
        counter.fetch_add(1, Relaxed);
        f()
    });
    println!("explored {} interleavings", iterations.load(Relaxed));
}

fn context() -> Pin<&'static Ctx> {
    context_of::<EveryKind>()
}

fn context_of<K: Kinds>() -> Pin<&'static Ctx<K>> {
    let context = Box::leak(Box::new(Ctx::<K>::new()));
    // Make the lock's loom atomic now, before any thread is spawned.
    assert_eq!(context.in_use(), 0);
    Pin::static_ref(context)
}

fn reap_all<K: Kinds>(context: &Ctx<K>) -> Vec<Completion> {
    let mut out = vec![Completion::EMPTY; 2];
    let count = context.reap(&mut out);
    out.truncate(count);
    out
}

/// Exactly one completion with user data 1, every slot free, nothing queued.
fn exactly_once<K: Kinds>(device: &Device, context: &Ctx<K>, mut seen: Vec<Completion>) -> Outcome {
    let deferred_before = context.has_deferred_work();
    seen.extend(reap_all(context));
    assert!(
        seen.len() == 1 || !deferred_before,
        "deferred work pending but nothing completed"
    );
    assert_eq!(
        seen.len(),
        1,
        "completions: {seen:?}, stats: {:?}, queued: {}, ready: {}, deferred: {}",
        context.stats(),
        device.queues[0].len(),
        device.ready.load(Ordering::Relaxed),
        context.has_deferred_work()
    );
    assert_eq!(seen[0].user_data, 1);
    assert_eq!(context.in_use(), 0, "a slot leaked");
    assert!(device.idle(), "a wait entry stayed queued");
    seen[0].outcome
}

/// Scenario 1: the wakeup fires while `poll` is still running.
#[test]
fn wakeup_fires_before_poll_returns() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        context.submit(device, Events::IN, 1).unwrap();
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        assert_eq!(outcome, Outcome::Ready(Events::IN));
    });
}

/// Scenarios 2 and 3: a wakeup on queue A while `poll` registers on queue B.
#[test]
fn wakeup_on_queue_a_while_registering_on_queue_b() {
    model(|| {
        let device = Device::new(2);
        let context = context();
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        context.submit(device, Events::IN, 1).unwrap();
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        assert_eq!(outcome, Outcome::Ready(Events::IN));
    });
}

/// Scenario 4: cancel and wakeup at the same time.
#[test]
fn cancel_vs_wakeup() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        let cancelled = context.cancel(handle);
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        match cancelled {
            Ok(_) => assert_eq!(outcome, Outcome::Cancelled),
            Err(CancelError::NotFound) => assert_eq!(outcome, Outcome::Ready(Events::IN)),
        }
    });
}

/// Scenario 5: cancel while the deferred work of an earlier wakeup runs.
#[test]
fn cancel_while_deferred_work_runs() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        device.set_ready(Events::IN);
        device.queues[0].wake(Events::empty()); // unkeyed: deferred
        let worker = thread::spawn(move || context.run_deferred());
        let cancelled = context.cancel(handle);
        worker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        match cancelled {
            Ok(_) => assert_eq!(outcome, Outcome::Cancelled),
            Err(_) => assert_eq!(outcome, Outcome::Ready(Events::IN)),
        }
    });
}

/// Scenario 5: the wakeup's try-lock fails (a reaper holds the context
/// lock), then cancel arrives before the deferred work runs.
#[test]
fn try_lock_failure_then_cancel() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let reaper = thread::spawn(move || reap_all(&context));
        device.raise(0, Events::IN);
        let seen = reaper.join().unwrap();
        // The wakeup happened before the cancel, whether it completed
        // inline or deferred: it wins (issue 10, item 1).
        let cancelled = context.cancel(handle);
        assert_eq!(cancelled, Err(CancelError::NotFound));
        let outcome = exactly_once(device, &context, seen);
        assert_eq!(outcome, Outcome::Ready(Events::IN));
    });
}

/// Issue 10, item 1: a wakeup that had to defer (its request sits on two
/// queues) and is ordered before a cancel wins, whoever runs its deferred
/// work: a worker racing the cancel, or the cancel itself.
#[test]
fn deferred_wakeup_ordered_before_cancel_wins() {
    model(|| {
        let device = Device::new(2);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let waker = thread::spawn(move || device.raise(1, Events::IN));
        waker.join().unwrap();
        let worker = thread::spawn(move || context.run_deferred());
        let cancelled = context.cancel(handle);
        worker.join().unwrap();
        assert_eq!(cancelled, Err(CancelError::NotFound));
        assert_eq!(
            exactly_once(device, &context, Vec::new()),
            Outcome::Ready(Events::IN)
        );
    });
}

/// Scenario 4 and issue 10's item 1 on a context whose kinds take queued
/// one-shot requests only (`QueuedOneShot`: the checks of the other kinds
/// are constants there): a wakeup on the second of two queues (which
/// defers) races a cancel and the deferred work.
#[test]
fn queued_one_shot_deferred_wakeup_vs_cancel() {
    model(|| {
        let device = Device::new(2);
        let context = context_of::<QueuedOneShot>();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let waker = thread::spawn(move || device.raise(1, Events::IN));
        let worker = thread::spawn(move || context.run_deferred());
        let cancelled = context.cancel(handle);
        waker.join().unwrap();
        worker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        match cancelled {
            Ok(_) => assert_eq!(outcome, Outcome::Cancelled),
            Err(CancelError::NotFound) => assert_eq!(outcome, Outcome::Ready(Events::IN)),
        }
    });
}

/// Scenario 1 on a `QueuedOneShot` context: the wakeup fires while `poll`
/// is still running.
#[test]
fn queued_one_shot_wakeup_fires_before_poll_returns() {
    model(|| {
        let device = Device::new(1);
        let context = context_of::<QueuedOneShot>();
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        context.submit(device, Events::IN, 1).unwrap();
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        assert_eq!(outcome, Outcome::Ready(Events::IN));
    });
}

/// Scenario 8: the queue is torn down while a wakeup and a cancel race.
#[test]
fn teardown_vs_wakeup_vs_cancel() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let closer = thread::spawn(move || device.queues[0].close());
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        let cancelled = context.cancel(handle);
        closer.join().unwrap();
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        match cancelled {
            Ok(_) => assert_eq!(outcome, Outcome::Cancelled),
            Err(_) => assert!(matches!(
                outcome,
                Outcome::Ready(Events::IN) | Outcome::SourceGone
            )),
        }
    });
}

/// Scenario 8: the queue closes while deferred work re-polls.
#[test]
fn close_during_deferred_work() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        context.submit(device, Events::IN, 1).unwrap();
        device.queues[0].wake(Events::empty());
        let worker = thread::spawn(move || context.run_deferred());
        device.queues[0].close();
        worker.join().unwrap();
        assert_eq!(
            exactly_once(device, &context, Vec::new()),
            Outcome::SourceGone
        );
    });
}

/// Scenario 11 (Linux bug 2): a wakeup between the deferred re-poll that
/// finds nothing and the decision to stay armed must not be lost. Also the
/// keyed wakeup that finds `PENDING` still set and joins the deferred work
/// (T6): its read-modify-write of the wake word is what orders the raise
/// before the runner's re-poll (a join that only returned fails here).
#[test]
fn wakeup_between_repoll_and_rearm() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        context.submit(device, Events::IN, 1).unwrap();
        device.queues[0].wake(Events::empty()); // spurious so far
        let worker = thread::spawn(move || context.run_deferred());
        device.raise(0, Events::IN);
        worker.join().unwrap();
        assert_eq!(
            exactly_once(device, &context, Vec::new()),
            Outcome::Ready(Events::IN)
        );
    });
}

/// Submit, wake and reap on three threads.
#[test]
fn submit_wake_and_reap_on_three_threads() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let submitter = thread::spawn(move || context.submit(device, Events::IN, 1).unwrap());
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        let seen = reap_all(&context);
        submitter.join().unwrap();
        waker.join().unwrap();
        assert_eq!(
            exactly_once(device, &context, seen),
            Outcome::Ready(Events::IN)
        );
    });
}

/// Scenario 9: the context goes while a wakeup runs on its queue.
#[test]
fn context_drop_vs_wakeup() {
    model(|| {
        let device = Device::new(1);
        let context = Box::pin(<Ctx>::new());
        assert_eq!(context.in_use(), 0);
        context.as_ref().submit(device, Events::IN, 1).unwrap();
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        drop(context);
        waker.join().unwrap();
        assert!(device.idle());
    });
}

// `loom_store_vs_swap`: with a plain `store(true)` racing a `swap(false)`,
// loom 0.7 explores an execution where the swap reads the old `false` and
// the store is nonetheless overwritten, which C11 forbids (the store and the
// swap are totally ordered in the flag's modification order). Seen here as
// `submit_wake_and_reap_on_three_threads` losing the deferred flag. The core
// sets the flag with a swap, which loom models exactly.

// --- Awaited requests (issue 11): the `Request` future's races. ---

/// A task waker that counts its wakeups (in a loom atomic).
#[derive(Default)]
struct CountingWaker(loom::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn task() -> (std::sync::Arc<CountingWaker>, std::task::Waker) {
    let count = std::sync::Arc::new(CountingWaker::default());
    (count.clone(), std::task::Waker::from(count))
}

fn poll_with<F: std::future::Future>(
    future: Pin<&mut F>,
    waker: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(waker))
}

/// The task re-registers its waker (a new one) while a wakeup completes the
/// request on another thread: either that poll sees the completion, or the
/// new waker is woken (inline, or by the deferred work the wakeup asked
/// for). No lost wakeup.
#[test]
fn awaited_waker_registration_vs_completion() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let (_, first) = task();
        let (second_count, second) = task();
        let mut request = Box::pin(context.request(device, Events::IN));
        assert!(poll_with(request.as_mut(), &first).is_pending());
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        let resolved = poll_with(request.as_mut(), &second).is_ready();
        waker.join().unwrap();
        // A wakeup that found the context lock held (by that poll) deferred:
        // the adapter runs the deferred work its hook asks for.
        context.run_deferred();
        if !resolved {
            assert_eq!(second_count.0.load(Ordering::SeqCst), 1, "lost wakeup");
            assert_eq!(
                poll_with(request.as_mut(), &second),
                std::task::Poll::Ready(Ok(Outcome::Ready(Events::IN)))
            );
        }
        drop(request);
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(device.idle(), "a wait entry stayed queued");
        assert!(reap_all(&context).is_empty());
        assert_eq!(context.stats().awaited, 1);
    });
}

/// The future is dropped while a wakeup completes its request: either the
/// drop cancels it or consumes the completion; nothing is left behind.
#[test]
fn awaited_drop_vs_wakeup() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let (_, waker) = task();
        let mut request = Box::pin(context.request(device, Events::IN));
        assert!(poll_with(request.as_mut(), &waker).is_pending());
        let raiser = thread::spawn(move || device.raise(0, Events::IN));
        drop(request);
        raiser.join().unwrap();
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(device.idle(), "a wait entry stayed queued");
        assert!(reap_all(&context).is_empty());
        let stats = context.stats();
        assert_eq!(stats.awaited, 1);
        assert_eq!(
            stats.cancelled + stats.completed_by_wakeup + stats.completed_by_deferred_work,
            1
        );
    });
}

/// The future is dropped while deferred work runs for the wakeup that came
/// before the drop: the wakeup wins (no cancel), nothing is left behind.
#[test]
fn awaited_drop_vs_deferred_work() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let (count, waker) = task();
        let mut request = Box::pin(context.request(device, Events::IN));
        assert!(poll_with(request.as_mut(), &waker).is_pending());
        device.set_ready(Events::IN);
        device.queues[0].wake(Events::empty()); // deferred
        let worker = thread::spawn(move || context.run_deferred());
        drop(request);
        worker.join().unwrap();
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(device.idle(), "a wait entry stayed queued");
        let stats = context.stats();
        assert_eq!((stats.cancelled, stats.completed_by_deferred_work), (0, 1));
        // Woken at most by the worker, which may have run first.
        assert!(count.0.load(Ordering::SeqCst) <= 1);
    });
}

type OneSlot = Context<'static, 1, Locks, 2>;

fn one_slot_context() -> Pin<&'static OneSlot> {
    let context = Box::leak(Box::new(OneSlot::new()));
    // Make the lock's loom atomic now, before any thread is spawned.
    assert_eq!(context.in_use(), 0);
    Pin::static_ref(context)
}

/// A future finds the context full while a reaper frees the only slot: it
/// either gets the slot at once or is woken. No lost wakeup.
#[test]
fn waiting_for_a_slot_vs_release() {
    model(|| {
        let device = Device::new(1);
        let context = one_slot_context();
        context.submit(device, Events::IN, 1).unwrap();
        device.raise(0, Events::IN); // completes; the slot frees at reap
        let (count, waker) = task();
        let mut request = Box::pin(context.request(device, Events::OUT));
        let reaper = thread::spawn(move || {
            let mut out = [Completion::EMPTY; 1];
            context.reap(&mut out)
        });
        assert!(poll_with(request.as_mut(), &waker).is_pending());
        assert_eq!(reaper.join().unwrap(), 1);
        if context.in_use() == 0 {
            // It found the context full and waits: it must have been woken.
            assert_eq!(count.0.load(Ordering::SeqCst), 1, "lost wakeup");
            assert!(poll_with(request.as_mut(), &waker).is_pending());
        }
        assert_eq!(context.in_use(), 1, "the future holds the slot");
        drop(request);
        assert_eq!(context.in_use(), 0);
        assert!(device.idle());
    });
}

/// An awaited request completes from another thread while a second future
/// finds the only slot taken and starts waiting for it: when the first
/// future takes its outcome (T13, freeing the slot), the second is woken,
/// whichever came first. No lost wakeup, no slot lost.
#[test]
fn awaited_completion_vs_a_future_waiting_for_a_slot() {
    model(|| {
        let device = Device::new(1);
        let context = one_slot_context();
        let (_, first_waker) = task();
        let (second_count, second_waker) = task();
        let mut first = Box::pin(context.request(device, Events::IN));
        assert!(poll_with(first.as_mut(), &first_waker).is_pending());
        let raiser = thread::spawn(move || device.raise(0, Events::IN));
        let mut second = Box::pin(context.request(device, Events::OUT));
        let second_pending = poll_with(second.as_mut(), &second_waker).is_pending();
        raiser.join().unwrap();
        // A wakeup that found the context lock held (by that poll) deferred.
        context.run_deferred();
        assert_eq!(
            poll_with(first.as_mut(), &first_waker),
            std::task::Poll::Ready(Ok(Outcome::Ready(Events::IN)))
        );
        drop(first);
        if second_pending && context.in_use() == 0 {
            // It waits for the slot the first request held: the first
            // future, taking its outcome, must have woken it.
            assert_eq!(second_count.0.load(Ordering::SeqCst), 1, "lost wakeup");
            assert!(poll_with(second.as_mut(), &second_waker).is_pending());
        }
        assert_eq!(context.in_use(), 1, "the second future holds the slot");
        drop(second);
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(device.idle(), "a wait entry stayed queued");
        assert_eq!(context.stats().awaited, 2);
    });
}

/// Issue 10, item 6: an update of the mask races a wakeup for the new mask.
/// Whether the wakeup comes before the entry's mask changed (then the
/// update's re-poll sees the readiness) or after (then it matches), the
/// request completes once, with the new events.
#[test]
fn update_vs_wakeup() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context.submit(device, Events::IN, 1).unwrap();
        let waker = thread::spawn(move || device.raise(0, Events::OUT));
        let updated = context.update(handle, Some(Events::OUT), Some(1));
        waker.join().unwrap();
        assert!(updated.is_ok(), "{updated:?}");
        context.run_deferred();
        assert_eq!(
            exactly_once(device, &context, Vec::new()),
            Outcome::Ready(Events::OUT)
        );
    });
}

/// Issue 10, item 8: a deadline passes while a wakeup and a cancel race.
/// Exactly one of them ends the request.
#[test]
fn deadline_vs_wakeup_vs_cancel() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context
            .submit_with_deadline(device, Events::IN, 1, 10)
            .unwrap();
        let timer = thread::spawn(move || context.expire(10));
        let waker = thread::spawn(move || device.raise(0, Events::IN));
        let cancelled = context.cancel(handle);
        let expired = timer.join().unwrap();
        waker.join().unwrap();
        let outcome = exactly_once(device, &context, Vec::new());
        match (cancelled, expired) {
            (Ok(_), 0) => assert_eq!(outcome, Outcome::Cancelled),
            (Err(_), 1) => assert_eq!(outcome, Outcome::TimedOut),
            (Err(_), 0) => assert_eq!(outcome, Outcome::Ready(Events::IN)),
            other => panic!("cancel and expire both ended it: {other:?}"),
        }
    });
}

/// Issue 10, item 5: a multishot request's readiness is reaped while
/// another wakeup posts: the second readiness is merged into the first or
/// posted anew, never lost; the final completion comes once, last.
#[test]
fn multishot_reap_vs_wakeup() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        let handle = context
            .submit_multishot(device, Events::IN | Events::OUT, 1)
            .unwrap();
        device.raise(0, Events::IN);
        let waker = thread::spawn(move || device.raise(0, Events::OUT));
        let mut seen = reap_all(&context);
        waker.join().unwrap();
        context.run_deferred();
        seen.extend(reap_all(&context));
        let ready = seen.iter().fold(Events::empty(), |all, completion| {
            assert!(completion.more, "{completion:?}");
            assert_eq!(completion.handle, handle);
            match completion.outcome {
                Outcome::Ready(events) => all | events,
                other => panic!("{other:?} before the final completion"),
            }
        });
        assert_eq!(ready, Events::IN | Events::OUT, "a readiness was lost");
        assert!(context.cancel(handle).is_ok());
        let last = reap_all(&context);
        assert_eq!(last.len(), 1);
        assert!(!last[0].more);
        assert_eq!(last[0].outcome, Outcome::Cancelled);
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(device.idle(), "a wait entry stayed queued");
    });
}

/// Two reapers race for the same completions: each completion is reaped by
/// exactly one of them.
#[test]
fn two_reapers_claim_each_completion_once() {
    model(|| {
        let device = Device::new(1);
        let context = context();
        device.set_ready(Events::IN);
        context.submit(device, Events::IN, 1).unwrap();
        context.submit(device, Events::IN, 2).unwrap();
        let other = thread::spawn(move || reap_all(&context));
        let mut seen = reap_all(&context);
        seen.extend(other.join().unwrap());
        seen.extend(reap_all(&context));
        let mut data: Vec<u64> = seen.iter().map(|completion| completion.user_data).collect();
        data.sort_unstable();
        assert_eq!(data, [1, 2], "{seen:?}");
        assert_eq!(context.in_use(), 0, "a slot leaked");
    });
}

/// A reaper takes a completion while a submit wants the only slot: the
/// submit gets the slot only after the reaper is done with it (loom checks
/// the slot's accesses), and is `Busy` before; nothing completes twice.
#[test]
fn reap_vs_submit_reusing_the_slot() {
    model(|| {
        let device = Device::new(1);
        let context = one_slot_context();
        device.set_ready(Events::IN);
        context.submit(device, Events::IN, 1).unwrap();
        let submitter = thread::spawn(move || context.submit(device, Events::IN, 2));
        let mut out = [Completion::EMPTY; 1];
        let count = context.reap(&mut out);
        let first = out[0];
        let second = submitter.join().unwrap();
        assert_eq!(count, 1);
        assert_eq!(first.user_data, 1, "{first:?}");
        assert_eq!(first.outcome, Outcome::Ready(Events::IN));
        match second {
            Ok(handle) => {
                assert_ne!(handle, first.handle, "a reused slot's handle is new");
                let mut out = [Completion::EMPTY; 1];
                assert_eq!(context.reap(&mut out), 1);
                assert_eq!(out[0].user_data, 2);
            }
            Err(error) => assert_eq!(error, aiopoll::SubmitError::Busy),
        }
        assert_eq!(context.in_use(), 0, "a slot leaked");
    });
}

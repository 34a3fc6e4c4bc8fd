//! The `Request` future (issue 11): driven by wakers, cancelled by drop,
//! waiting for a slot on a full context, sharing a context with reaped
//! requests. Single-threaded: every step is an explicit poll, wakeup or
//! drop, so each test pins one ordering down (the loom models cover the
//! races).

mod support;

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use aiopoll::{Completion, Context, Events, Outcome, SubmitError};
use support::{fail_next_try_locks, Device, FaultLock};

/// A waker that counts its wakeups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Task {
    count: Arc<CountingWaker>,
    waker: Waker,
}

impl Task {
    fn new() -> Self {
        let count = Arc::new(CountingWaker::default());
        Task {
            waker: Waker::from(count.clone()),
            count,
        }
    }

    fn wakes(&self) -> usize {
        self.count.0.load(Ordering::SeqCst)
    }

    fn poll<F: Future>(&self, future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut TaskContext::from_waker(&self.waker))
    }
}

fn reap_all<const N: usize, L: aiopoll::Locks, const W: usize, H: aiopoll::Notify>(
    context: &Context<'_, N, L, W, H>,
) -> Vec<Completion> {
    let mut out = vec![Completion::EMPTY; N + 1];
    let count = context.reap(&mut out);
    out.truncate(count);
    out
}

#[test]
fn a_ready_source_resolves_at_the_first_poll() {
    let device = Device::new(1);
    device.set_ready(Events::IN);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
    assert!(request.is_resolved());
    assert_eq!(context.in_use(), 0);
    assert!(device.queues[0].is_empty());
    assert_eq!(context.stats().awaited, 1);
}

#[test]
fn an_inline_wakeup_wakes_the_task_once_and_the_next_poll_resolves() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(task.wakes(), 0);
    assert_eq!(device.raise(Events::IN | Events::OUT), 1);
    assert_eq!(task.wakes(), 1);
    // Its completion went to the future, not to the completion queue.
    assert_eq!(context.completions(), 0);
    assert!(reap_all(&context).is_empty());
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
    assert_eq!(context.in_use(), 0);
    let stats = context.stats();
    assert_eq!(
        (stats.completed_by_wakeup, stats.awaited, stats.reaped),
        (1, 1, 0)
    );
}

#[test]
fn deferred_work_completes_an_awaited_request_and_wakes_its_task() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    device.set_ready(Events::IN);
    device.queues[0].wake(Events::empty()); // unkeyed: deferred
    assert_eq!(task.wakes(), 0);
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
}

#[test]
fn a_failed_try_lock_defers_and_the_deferred_work_wakes_the_task() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(Context::<'_, 2, (FaultLock, FaultLock)>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    fail_next_try_locks(1);
    device.raise(Events::IN);
    assert_eq!(task.wakes(), 0);
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
}

#[test]
fn closing_the_queue_resolves_with_source_gone() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    device.queues[0].close();
    assert_eq!(task.wakes(), 1);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::SourceGone))
    );
}

#[test]
fn a_new_waker_replaces_the_old_one() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let (first, second) = (Task::new(), Task::new());
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(first.poll(request.as_mut()), Poll::Pending);
    // The future moved to another task (an executor may do that).
    assert_eq!(second.poll(request.as_mut()), Poll::Pending);
    device.raise(Events::IN);
    assert_eq!((first.wakes(), second.wakes()), (0, 1));
}

#[test]
fn dropping_a_pending_request_cancels_it_and_frees_everything() {
    let device = Device::new(2);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    {
        let mut request = pin!(context.as_ref().request(&device, Events::IN));
        assert_eq!(task.poll(request.as_mut()), Poll::Pending);
        assert_eq!(context.in_use(), 1);
    }
    assert_eq!(context.in_use(), 0);
    assert!(device.queues[0].is_empty() && device.queues[1].is_empty());
    assert!(reap_all(&context).is_empty());
    assert_eq!(context.stats().cancelled, 1);
    // A later wakeup finds nobody.
    assert_eq!(device.raise(Events::IN), 0);
    assert_eq!(task.wakes(), 0);
}

#[test]
fn dropping_a_completed_request_that_was_never_polled_again_consumes_it() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    {
        let mut request = pin!(context.as_ref().request(&device, Events::IN));
        assert_eq!(task.poll(request.as_mut()), Poll::Pending);
        device.raise(Events::IN);
    }
    assert_eq!(context.in_use(), 0);
    assert!(reap_all(&context).is_empty());
    let stats = context.stats();
    assert_eq!((stats.cancelled, stats.awaited), (0, 1));
}

#[test]
fn a_wakeup_that_deferred_before_the_drop_wins_and_nobody_is_woken() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    {
        let mut request = pin!(context.as_ref().request(&device, Events::IN));
        assert_eq!(task.poll(request.as_mut()), Poll::Pending);
        device.set_ready(Events::IN);
        device.queues[0].wake(Events::empty());
    }
    let stats = context.stats();
    assert_eq!((stats.cancelled, stats.completed_by_deferred_work), (0, 1));
    // The task is letting go of the future: it is not woken for it.
    assert_eq!(task.wakes(), 0);
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.run_deferred(), 0);
}

#[test]
fn polling_after_resolving_is_pending_and_never_panics() {
    let device = Device::new(1);
    device.set_ready(Events::IN);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert!(task.poll(request.as_mut()).is_ready());
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn refused_requests_resolve_with_the_typed_error_and_change_nothing() {
    let no_queue = Device::new(0);
    let too_many = Device::new(3);
    let context = pin!(Context::<'_, 2, aiopoll::SpinLocks, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&no_queue, Events::IN));
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Err(SubmitError::NotPollable))
    );
    let mut request = pin!(context.as_ref().request(&too_many, Events::IN));
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Err(SubmitError::TooManyQueues { limit: 2 }))
    );
    let unknown = Events::from_bits_retain(0x8000);
    let mut request = pin!(context.as_ref().request(&no_queue, unknown));
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Err(SubmitError::UnknownEvents { unknown: 0x8000 }))
    );
    assert_eq!(context.in_use(), 0);
    assert!(too_many.queues.iter().all(|queue| queue.is_empty()));
}

#[test]
fn awaited_and_reaped_requests_share_a_context() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let task = Task::new();
    context.as_ref().submit(&device, Events::IN, 7).unwrap();
    let mut request = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(device.raise(Events::IN), 2);
    // The queued one is reaped, the awaited one resolves its future.
    let reaped = reap_all(&context);
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].user_data, 7);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_full_context_makes_the_future_wait_until_a_reap_frees_a_slot() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 1>::new());
    let task = Task::new();
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    let mut request = pin!(context.as_ref().request(&device, Events::OUT));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(task.poll(request.as_mut()), Poll::Pending); // still full
    assert_eq!(task.wakes(), 0);
    device.raise(Events::IN);
    assert_eq!(task.wakes(), 0); // the slot is not free until reaped
    assert_eq!(reap_all(&context).len(), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(task.poll(request.as_mut()), Poll::Pending); // now submitted
    assert_eq!(device.queues[0].len(), 1);
    device.raise(Events::OUT);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::Ready(Events::OUT)))
    );
}

#[test]
fn slot_waiters_are_woken_oldest_first_and_a_dropped_one_passes_its_turn_on() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 1>::new());
    let (holder, first, second) = (Task::new(), Task::new(), Task::new());
    let mut held = pin!(context.as_ref().request(&device, Events::IN));
    assert_eq!(holder.poll(held.as_mut()), Poll::Pending);
    let mut waiting_second = pin!(context.as_ref().request(&device, Events::IN));
    {
        let mut waiting_first = pin!(context.as_ref().request(&device, Events::IN));
        assert_eq!(first.poll(waiting_first.as_mut()), Poll::Pending);
        assert_eq!(second.poll(waiting_second.as_mut()), Poll::Pending);
        // The holder resolves: its slot frees and the oldest waiter wakes.
        device.raise(Events::IN);
        assert!(holder.poll(held.as_mut()).is_ready());
        device.set_ready(Events::empty()); // consumed
        assert_eq!((first.wakes(), second.wakes()), (1, 0));
        // ... which goes away before it could submit.
    }
    assert_eq!(second.wakes(), 1);
    assert_eq!(second.poll(waiting_second.as_mut()), Poll::Pending);
    assert_eq!(context.in_use(), 1);
    device.raise(Events::IN);
    assert!(second.poll(waiting_second.as_mut()).is_ready());
    assert_eq!(context.in_use(), 0);
}

#[test]
fn more_awaited_requests_on_one_queue_than_a_wake_batch_all_complete_once() {
    const REQUESTS: usize = 11;
    let device = Device::new(1);
    let context = pin!(Context::<'_, REQUESTS>::new());
    let tasks: Vec<Task> = (0..REQUESTS).map(|_| Task::new()).collect();
    let mut requests: Vec<_> = (0..REQUESTS)
        .map(|_| Box::pin(context.as_ref().request(&device, Events::IN)))
        .collect();
    for (task, request) in tasks.iter().zip(&mut requests) {
        assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    }
    assert_eq!(device.raise(Events::IN), REQUESTS);
    // Those beyond the batch were handed to deferred work.
    context.run_deferred();
    for (task, request) in tasks.iter().zip(&mut requests) {
        assert_eq!(task.wakes(), 1);
        assert_eq!(
            task.poll(request.as_mut()),
            Poll::Ready(Ok(Outcome::Ready(Events::IN)))
        );
    }
    let stats = context.stats();
    assert_eq!(
        stats.completed_by_wakeup + stats.completed_by_deferred_work,
        REQUESTS as u32
    );
    assert!(stats.completed_by_deferred_work > 0);
    assert_eq!(context.in_use(), 0);
}

/// A forgotten future's memory, kept reachable from a static: Miri's leak
/// check then reads it as kept on purpose (which `mem::forget` of a
/// `Pin<Box<_>>` is), not as a leak of the test's.
struct Kept(#[allow(dead_code)] *const u8);

// SAFETY: never dereferenced; only kept so the memory stays reachable.
unsafe impl Send for Kept {}

static KEPT: std::sync::Mutex<Vec<Kept>> = std::sync::Mutex::new(Vec::new());

/// `mem::forget` of a pinned, boxed future: it is never dropped and its
/// memory is never freed.
fn forget<T>(future: Pin<Box<T>>) {
    // SAFETY: the box is turned into a raw pointer that is never used to
    // move, drop or free the value, so the pinning guarantee holds.
    let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(future) });
    KEPT.lock().unwrap().push(Kept(raw as *const u8));
}

#[test]
fn forgetting_futures_is_sound_and_only_leaks_their_slots() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 1>::new());
    let task = Task::new();
    let mut submitted = Box::pin(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(submitted.as_mut()), Poll::Pending);
    let mut waiting = Box::pin(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(waiting.as_mut()), Poll::Pending);
    forget(waiting);
    forget(submitted);
    // The forgotten request still completes (and wakes its task); its slot
    // stays in use, and nothing touches freed memory.
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(context.in_use(), 1);
    assert!(device.queues[0].is_empty());
}

#[test]
fn a_context_dropped_with_a_forgotten_future_pending_drops_its_task_waker() {
    let device = Device::new(1);
    let task = Task::new();
    let context = Box::pin(Context::<'_, 2>::new());
    let mut submitted = Box::pin(context.as_ref().request(&device, Events::IN));
    assert_eq!(task.poll(submitted.as_mut()), Poll::Pending);
    forget(submitted);
    // The slot keeps a clone of the task's waker while the request waits.
    assert_eq!(Arc::strong_count(&task.count), 3);
    drop(context);
    // Gone with the context, unwoken; the request left its queue.
    assert_eq!(Arc::strong_count(&task.count), 2);
    assert_eq!(task.wakes(), 0);
    assert!(device.queues[0].is_empty());
}

#[test]
fn a_waker_that_reenters_aiopoll_never_runs_under_its_locks() {
    use support::ReentryCheckLock;
    type Checked = (ReentryCheckLock, ReentryCheckLock);
    type CheckedContext = Context<'static, 8, Checked, 2>;

    /// A waker that calls back into the context and the queue it was woken
    /// from, as a careless executor's might.
    struct Reentering {
        context: Pin<&'static CheckedContext>,
        device: &'static Device<ReentryCheckLock>,
        wakes: AtomicUsize,
    }
    impl Wake for Reentering {
        fn wake(self: Arc<Self>) {
            // Each takes a lock the waking side might hold.
            let _ = self.context.in_use();
            let _ = self.device.queues[0].len();
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    // The waker must be `'static`, so these live for ever (kept reachable,
    // which Miri's leak check accepts).
    let device: &'static Device<ReentryCheckLock> = Box::leak(Box::new(Device::new(1)));
    let context: &'static CheckedContext = Box::leak(Box::new(CheckedContext::new()));
    KEPT.lock()
        .unwrap()
        .push(Kept(device as *const _ as *const u8));
    KEPT.lock()
        .unwrap()
        .push(Kept(context as *const _ as *const u8));
    let context = Pin::static_ref(context);
    let reentering = Arc::new(Reentering {
        context,
        device,
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(reentering.clone());
    let mut cx = TaskContext::from_waker(&waker);
    // Inline wakeups (more than one batch), deferred work, a close.
    let mut requests: Vec<_> = (0..6)
        .map(|_| Box::pin(context.request(device, Events::IN)))
        .collect();
    for request in &mut requests {
        assert!(request.as_mut().poll(&mut cx).is_pending());
    }
    device.raise(Events::IN);
    context.run_deferred();
    assert_eq!(reentering.wakes.load(Ordering::SeqCst), 6);
    for request in &mut requests {
        assert!(request.as_mut().poll(&mut cx).is_ready());
    }
    device.set_ready(Events::empty());
    let mut closing = Box::pin(context.request(device, Events::IN));
    assert!(closing.as_mut().poll(&mut cx).is_pending());
    device.queues[0].close();
    assert_eq!(reentering.wakes.load(Ordering::SeqCst), 7);
    assert_eq!(
        closing.as_mut().poll(&mut cx),
        Poll::Ready(Ok(Outcome::SourceGone))
    );
}

#[test]
fn a_waker_whose_clone_reenters_aiopoll_is_cloned_outside_its_locks() {
    use std::task::{RawWaker, RawWakerVTable};
    use support::ReentryCheckLock;
    type Checked = (ReentryCheckLock, ReentryCheckLock);
    type CheckedContext = Context<'static, 2, Checked, 2>;

    /// What the waker's data points to: the context its clone calls into,
    /// and how many clones and wakes it saw.
    struct Probe {
        context: Pin<&'static CheckedContext>,
        clones: AtomicUsize,
        wakes: AtomicUsize,
    }
    fn probe(data: *const ()) -> &'static Probe {
        // SAFETY: every waker of this vtable is made from a leaked
        // `&'static Probe` below.
        unsafe { &*data.cast::<Probe>() }
    }
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |data| {
            let probe = probe(data);
            // A clone that takes the context's lock, as a careless
            // executor's clone might (it would deadlock under it).
            let _ = probe.context.in_use();
            probe.clones.fetch_add(1, Ordering::SeqCst);
            RawWaker::new(data, &VTABLE)
        },
        |data| {
            probe(data).wakes.fetch_add(1, Ordering::SeqCst);
        },
        |data| {
            probe(data).wakes.fetch_add(1, Ordering::SeqCst);
        },
        |_| {},
    );
    fn waker(probe: &'static Probe) -> Waker {
        // SAFETY: the vtable's functions treat the data as the `'static`
        // probe it is, and every clone shares it.
        unsafe { Waker::from_raw(RawWaker::new((probe as *const Probe).cast(), &VTABLE)) }
    }

    let device: &'static Device<ReentryCheckLock> = Box::leak(Box::new(Device::new(1)));
    let context: &'static CheckedContext = Box::leak(Box::new(CheckedContext::new()));
    let context = Pin::static_ref(context);
    let probes: &'static [Probe; 2] = Box::leak(Box::new([0, 1].map(|_| Probe {
        context,
        clones: AtomicUsize::new(0),
        wakes: AtomicUsize::new(0),
    })));
    for kept in [
        device as *const _ as *const u8,
        context.get_ref() as *const _ as *const u8,
        probes as *const _ as *const u8,
    ] {
        KEPT.lock().unwrap().push(Kept(kept));
    }
    let (first, second) = (waker(&probes[0]), waker(&probes[1]));
    let mut request = pin!(context.request(device, Events::IN));
    // The submit clones the first task's waker; the next poll, from another
    // task, clones the second's: neither under a lock.
    let poll = |request: Pin<&mut _>, waker: &Waker| -> Poll<Result<Outcome, SubmitError>> {
        Future::poll(request, &mut TaskContext::from_waker(waker))
    };
    assert!(poll(request.as_mut(), &first).is_pending());
    assert!(poll(request.as_mut(), &second).is_pending());
    assert_eq!(probes[0].clones.load(Ordering::SeqCst), 1);
    assert_eq!(probes[1].clones.load(Ordering::SeqCst), 1);
    // The second task is the one woken, and its request resolves.
    device.raise(Events::IN);
    assert_eq!(probes[0].wakes.load(Ordering::SeqCst), 0);
    assert_eq!(probes[1].wakes.load(Ordering::SeqCst), 1);
    assert_eq!(
        poll(request.as_mut(), &second),
        Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
}

#[test]
fn an_awaited_request_with_a_deadline_times_out_and_wakes_its_task() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let task = Task::new();
    let mut request = pin!(context.as_ref().request(&device, Events::IN).deadline(5));
    assert_eq!(task.poll(request.as_mut()), Poll::Pending);
    assert_eq!(context.next_deadline(), Some(5));
    assert_eq!(context.expire(4), 0);
    assert_eq!(task.wakes(), 0);
    assert_eq!(context.expire(5), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::TimedOut))
    );
    assert_eq!(context.in_use(), 0);
    assert!(device.queues[0].is_empty());
}

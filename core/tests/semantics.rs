//! The contract of issue 2, one behaviour per test, single-threaded.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{
    CancelError, Completion, Context, Events, Notify, Outcome, PollTable, RequestOptions, Source,
    SpinLock, SubmitError,
};
use support::{fail_next_try_locks, try_lock_failures_left, Device, FaultLock};

/// Reaps everything there is, as user data and outcome.
fn reap_all<const N: usize, L: aiopoll::Locks, const W: usize, H: Notify>(
    context: &Context<'_, N, L, W, H>,
) -> Vec<Completion> {
    let mut out = vec![Completion::EMPTY; N + 1];
    let count = context.reap(&mut out);
    out.truncate(count);
    // Compared by user data and outcome: the handle and `more` are checked
    // by tests of their own (and by the core's reference-model harness).
    for completion in &mut out {
        completion.handle = Completion::EMPTY.handle;
        completion.more = false;
    }
    out
}

#[test]
fn ready_at_once_completes_at_submit() {
    let device = Device::new(1);
    device.set_ready(Events::IN | Events::OUT);
    let context = pin!(Context::<'_, 4>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 7).unwrap();
    // Off the queue at once, and the handle is already finished.
    assert!(device.queues[0].is_empty());
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 7,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    assert_eq!(context.stats().completed_at_submit, 1);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_source_is_taken_by_its_type_or_as_any_trait_object() {
    // `submit` and `request` take the source by its own type (`AsDynSource`),
    // so that their `poll` is a direct call, and keep it as `&dyn Source`
    // for re-polls: a concrete source and each trait object a caller may
    // hold work alike, at submit and when an unkeyed wakeup makes deferred
    // work re-poll through what the slot kept.
    let device = Device::new(1);
    let plain: &dyn Source = &device;
    let sending: &(dyn Source + Send) = &device;
    let sharing: &(dyn Source + Sync) = &device;
    let both: &(dyn Source + Send + Sync) = &device;
    let context = pin!(Context::<'_, 8>::new());
    let context = context.as_ref();
    context.submit(&device, Events::IN, 0).unwrap();
    context.submit(plain, Events::IN, 1).unwrap();
    context.submit(sending, Events::IN, 2).unwrap();
    context.submit(sharing, Events::IN, 3).unwrap();
    context.submit(both, Events::IN, 4).unwrap();
    let mut awaited = pin!(context.request(both, Events::IN));
    let waker = std::task::Waker::noop();
    let mut task = std::task::Context::from_waker(waker);
    assert!(awaited.as_mut().poll(&mut task).is_pending());
    assert_eq!(device.queues[0].len(), 6);
    // Unkeyed: every request re-polls its source (deferred work, which
    // `reap` runs first), and finds IN.
    device.set_ready(Events::IN);
    assert_eq!(device.queues[0].wake(Events::empty()), 6);
    let mut reaped: Vec<u64> = reap_all(&context)
        .iter()
        .map(|completion| {
            assert_eq!(completion.outcome, Outcome::Ready(Events::IN));
            completion.user_data
        })
        .collect();
    reaped.sort_unstable();
    assert_eq!(reaped, [0, 1, 2, 3, 4]);
    assert_eq!(
        awaited.as_mut().poll(&mut task),
        std::task::Poll::Ready(Ok(Outcome::Ready(Events::IN)))
    );
    assert_eq!(context.in_use(), 0);
}

#[test]
fn keyed_wakeup_completes_inline_with_key_and_requested() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(device.raise(Events::IN | Events::RDNORM | Events::OUT), 1);
    assert!(device.queues[0].is_empty());
    assert_eq!(context.completions(), 1);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    assert_eq!(context.stats().completed_by_wakeup, 1);
}

#[test]
fn a_wakeup_whose_key_is_computed_under_the_queue_lock() {
    // `wake_with` computes the key with the queue's lock held: a request
    // that registers at that moment cannot be on the queue yet (the lock is
    // taken), and `None` wakes nobody.
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    let mut ran = 0;
    assert_eq!(
        device.queues[0].wake_with(|| {
            ran += 1;
            None
        }),
        0
    );
    assert_eq!(ran, 1);
    assert_eq!(device.queues[0].len(), 1);
    assert!(reap_all(&context).is_empty());
    // An empty key asks for a re-poll, as `wake` does: nothing is ready.
    assert_eq!(device.queues[0].wake_with(|| Some(Events::empty())), 1);
    assert!(reap_all(&context).is_empty());
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(
        device.queues[0].wake_with(|| Some(Events::IN | Events::OUT)),
        1
    );
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    // The key is computed once whether or not anybody waits (a source may
    // record what it learns there).
    let mut ran = 0;
    assert_eq!(
        device.queues[0].wake_with(|| {
            ran += 1;
            Some(Events::IN)
        }),
        0
    );
    assert_eq!(ran, 1);
}

#[test]
fn keyed_wakeup_that_misses_leaves_the_request_waiting() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.raise(Events::OUT), 0);
    assert_eq!(device.queues[0].len(), 1);
    assert!(reap_all(&context).is_empty());
    device.raise(Events::IN);
    assert_eq!(reap_all(&context).len(), 1);
}

#[test]
fn err_and_hup_are_always_waited_for() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::PRI, 1).unwrap();
    device.raise(Events::HUP);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::HUP));
    // A zero mask waits for ERR and HUP only: HUP is still up, so it
    // completes at submit.
    context
        .as_ref()
        .submit(&device, Events::empty(), 2)
        .unwrap();
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::HUP));
    device.set_ready(Events::empty());
    context
        .as_ref()
        .submit(&device, Events::empty(), 2)
        .unwrap();
    device.raise(Events::IN);
    assert!(reap_all(&context).is_empty());
    device.raise(Events::ERR);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::ERR));
}

#[test]
fn unkeyed_wakeup_repolls_and_rearms_when_spurious() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.queues[0].wake(Events::empty()), 1);
    assert!(context.has_deferred_work());
    // Nothing ready: spurious, stays armed on its queue.
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(context.stats().spurious, 1);
    // Ready, unkeyed again: the deferred re-poll completes it.
    device.set_ready(Events::IN | Events::OUT);
    device.queues[0].wake(Events::empty());
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
    assert_eq!(context.stats().completed_by_deferred_work, 1);
}

#[test]
fn a_wakeup_of_a_request_already_deferred_joins_its_deferred_work() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(Context::<'_, 4, (FaultLock, FaultLock)>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    // The first wakeup finds the context lock taken: T6.
    fail_next_try_locks(1);
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(try_lock_failures_left(), 0);
    assert_eq!(context.stats().deferrals, 1);
    // The next ones join the deferred work already coming, without trying
    // the context lock (a try would use up the failure scheduled here), and
    // complete nothing themselves.
    fail_next_try_locks(1);
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(device.queues[0].wake(Events::empty()), 1);
    assert_eq!(try_lock_failures_left(), 1);
    fail_next_try_locks(0);
    assert_eq!(context.stats().deferrals, 3);
    assert_eq!(context.stats().completed_by_wakeup, 0);
    assert_eq!(device.queues[0].len(), 1);
    // The deferred work completes it once, from what the re-poll finds.
    assert_eq!(context.run_deferred(), 1);
    let completions = reap_all(&context);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].outcome, Outcome::Ready(Events::IN));
    assert_eq!(context.stats().completed_by_deferred_work, 1);
    assert!(device.queues[0].is_empty());
}

#[test]
fn unknown_event_bits_are_a_typed_error_and_change_nothing() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let error = context
        .as_ref()
        .submit(&device, Events::from_bits_retain(0x4001), 1)
        .unwrap_err();
    assert_eq!(error, SubmitError::UnknownEvents { unknown: 0x4000 });
    assert!(error.to_string().contains("unknown bits 0x4000"));
    assert!(device.queues[0].is_empty());
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_full_context_is_busy_and_changes_nothing() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    context.as_ref().submit(&device, Events::IN, 2).unwrap();
    assert_eq!(
        context.as_ref().submit(&device, Events::IN, 3),
        Err(SubmitError::Busy)
    );
    assert_eq!(device.queues[0].len(), 2);
    // Completed but unreaped still holds the slot: the completion has room.
    device.raise(Events::IN);
    assert_eq!(
        context.as_ref().submit(&device, Events::IN, 3),
        Err(SubmitError::Busy)
    );
    assert_eq!(reap_all(&context).len(), 2);
    context.as_ref().submit(&device, Events::IN, 3).unwrap();
}

#[test]
fn a_source_without_queues_completes_at_once_or_is_not_pollable() {
    let device = Device::new(0);
    let context = pin!(Context::<'_, 2>::new());
    assert_eq!(
        context.as_ref().submit(&device, Events::IN, 1),
        Err(SubmitError::NotPollable)
    );
    assert_eq!(context.in_use(), 0);
    device.set_ready(Events::IN);
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
    assert_eq!(
        context.as_ref().submit(&device, Events::PRI, 1),
        Err(SubmitError::NotPollable)
    );
}

#[test]
fn more_queues_than_the_limit_fails_and_leaves_nothing_queued() {
    let device = Device::new(3);
    let context = pin!(Context::<'_, 2>::new());
    assert_eq!(
        context.as_ref().submit(&device, Events::IN, 1),
        Err(SubmitError::TooManyQueues { limit: 2 })
    );
    assert!(device.queues.iter().all(|queue| queue.is_empty()));
    assert_eq!(context.in_use(), 0);
    // Even when ready: the registration error wins, as in aio.
    device.set_ready(Events::IN);
    assert!(context.as_ref().submit(&device, Events::IN, 1).is_err());
    assert!(reap_all(&context).is_empty());
}

#[test]
fn a_request_on_two_queues_completes_once_and_leaves_both() {
    let device = Device::new(2);
    let context = pin!(Context::<'_, 2>::new());
    context.as_ref().submit(&device, Events::IN, 9).unwrap();
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(device.queues[1].len(), 1);
    device.set_ready(Events::IN);
    // Two queue locks never nest: the wakeup defers ...
    device.queues[1].wake(Events::IN);
    device.queues[0].wake(Events::IN);
    // ... and the deferred work completes it once.
    let completions = reap_all(&context);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].outcome, Outcome::Ready(Events::IN));
    assert!(device.queues.iter().all(|queue| queue.is_empty()));
    device.queues[0].wake(Events::IN);
    assert!(reap_all(&context).is_empty());
}

/// Registers on the same queue twice.
struct Stutter(Device);

impl Source for Stutter {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        table.wait(&self.0.queues[0]);
        table.wait(&self.0.queues[0]);
        Events::empty()
    }
}

#[test]
fn registering_twice_on_one_queue_is_once() {
    let source = Stutter(Device::new(1));
    let context = pin!(Context::<'_, 2, aiopoll::SpinLocks, 1>::new());
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    assert_eq!(source.0.queues[0].len(), 1);
    source.0.queues[0].wake(Events::IN);
    assert_eq!(reap_all(&context).len(), 1);
}

#[test]
fn cancel_reports_in_progress_then_the_request_completes_cancelled() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 5).unwrap();
    assert_eq!(context.cancel(handle), Ok(aiopoll::InProgress));
    assert!(device.queues[0].is_empty());
    // Double cancel: not found.
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    device.raise(Events::IN);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 5,
            outcome: Outcome::Cancelled,
            ..Completion::EMPTY
        }]
    );
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
}

#[test]
fn a_stale_handle_never_reaches_a_reused_slot() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 1>::new());
    let old = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    device.raise(Events::IN);
    reap_all(&context);
    device.set_ready(Events::empty());
    let new = context.as_ref().submit(&device, Events::IN, 2).unwrap();
    assert_eq!(old.slot(), new.slot());
    assert_ne!(old.generation(), new.generation());
    assert_eq!(context.cancel(old), Err(CancelError::NotFound));
    assert_eq!(context.cancel(new), Ok(aiopoll::InProgress));
}

#[test]
fn a_handle_from_another_context_is_not_found() {
    let device = Device::new(1);
    let first = pin!(Context::<'_, 2>::new());
    let second = pin!(Context::<'_, 2>::new());
    let handle = first.as_ref().submit(&device, Events::IN, 1).unwrap();
    second.as_ref().submit(&device, Events::IN, 2).unwrap();
    assert_eq!(second.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(device.queues[0].len(), 2);
    // One wake, two contexts: each completes its own request once.
    device.raise(Events::IN);
    assert_eq!(reap_all(&first)[0].user_data, 1);
    assert_eq!(reap_all(&second)[0].user_data, 2);
}

#[test]
fn a_handle_whose_slot_is_beyond_this_context_is_not_found() {
    // The nearest thing to a forged handle the API allows (its fields are
    // private): one from a larger context, naming a slot this one lacks.
    let device = Device::new(1);
    let large = pin!(Context::<'_, 8>::new());
    let small = pin!(Context::<'_, 2>::new());
    let mut handle = None;
    for user_data in 0..8 {
        handle = Some(
            large
                .as_ref()
                .submit(&device, Events::IN, user_data)
                .unwrap(),
        );
    }
    let handle = handle.unwrap();
    assert_eq!(handle.slot(), 7);
    small.as_ref().submit(&device, Events::IN, 9).unwrap();
    assert_eq!(small.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(small.in_use(), 1);
    assert_eq!(large.cancel(handle), Ok(aiopoll::InProgress));
}

#[test]
fn completions_come_out_oldest_first_and_reap_takes_at_most_the_slice() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    device.set_ready(Events::IN);
    for user_data in 0..4 {
        context
            .as_ref()
            .submit(&device, Events::IN, user_data)
            .unwrap();
    }
    assert_eq!(context.reap(&mut []), 0);
    let mut two = [Completion::EMPTY; 2];
    assert_eq!(context.reap(&mut two), 2);
    assert_eq!([two[0].user_data, two[1].user_data], [0, 1]);
    assert_eq!(context.reap(&mut two), 2);
    assert_eq!([two[0].user_data, two[1].user_data], [2, 3]);
    assert_eq!(context.reap(&mut two), 0);
}

#[test]
fn fan_out_wakes_every_waiter() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 64>::new());
    for user_data in 0..64 {
        context
            .as_ref()
            .submit(&device, Events::IN, user_data)
            .unwrap();
    }
    assert_eq!(device.raise(Events::IN), 64);
    let mut seen: Vec<u64> = reap_all(&context).iter().map(|c| c.user_data).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..64).collect::<Vec<_>>());
}

#[test]
fn closing_a_queue_completes_its_requests_with_source_gone() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.queues[0].close(), 1);
    assert!(device.queues[0].is_closed());
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(reap_all(&context)[0].outcome, Outcome::SourceGone);
    // Closing twice is harmless; registering on a closed queue completes
    // at submit with SourceGone.
    assert_eq!(device.queues[0].close(), 0);
    context.as_ref().submit(&device, Events::IN, 2).unwrap();
    assert_eq!(reap_all(&context)[0].outcome, Outcome::SourceGone);
}

#[test]
fn a_reopened_queue_takes_requests_again_and_the_closed_ones_stay_completed() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.queues[0].close(), 1);
    // Reopening an open queue says so and changes nothing.
    assert!(device.queues[0].reopen());
    assert!(!device.queues[0].reopen());
    assert!(!device.queues[0].is_closed());
    // The request the close completed stays completed, exactly once.
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::SourceGone,
            ..Completion::EMPTY
        }]
    );
    // A new request waits on the reopened queue like on a new one.
    let handle = context.as_ref().submit(&device, Events::IN, 2).unwrap();
    assert_eq!(device.queues[0].len(), 1);
    assert!(reap_all(&context).is_empty());
    device.raise(Events::IN);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(context.in_use(), 0);
}

/// Records the events each `poll` was asked for.
struct Recorder {
    queue: aiopoll::WaitQueue,
    ready: AtomicU32,
    asked: std::sync::Mutex<Vec<(bool, Events)>>,
}

impl Source for Recorder {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        table.wait(&self.queue);
        self.asked
            .lock()
            .unwrap()
            .push((table.is_registering(), table.requested()));
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire) as u16)
    }
}

#[test]
fn poll_tables_carry_the_requested_events_like_poll_requested_events() {
    let source = Recorder {
        queue: aiopoll::WaitQueue::new(),
        ready: AtomicU32::new(0),
        asked: std::sync::Mutex::new(Vec::new()),
    };
    let context = pin!(Context::<'_, 4>::new());
    context
        .as_ref()
        .submit(&source, Events::PRI | Events::RDBAND, 1)
        .unwrap();
    // An unkeyed wakeup makes deferred work re-poll with the same request.
    source.queue.wake(Events::empty());
    assert!(reap_all(&context).is_empty());
    let wanted = Events::PRI | Events::RDBAND | Events::ERR | Events::HUP;
    assert_eq!(
        *source.asked.lock().unwrap(),
        [(true, wanted), (false, wanted)]
    );
    // Reading readiness without a request asks for everything.
    assert_eq!(
        PollTable::<SpinLock>::readiness_only().requested(),
        Events::all()
    );
}

#[test]
fn closing_one_of_two_queues_completes_once_with_source_gone() {
    let device = Device::new(2);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    device.queues[1].close();
    assert!(device.queues[0].is_empty() || context.has_deferred_work());
    let completions = reap_all(&context);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].outcome, Outcome::SourceGone);
    assert!(device.queues[0].is_empty());
}

#[test]
fn dropping_a_context_detaches_its_requests_from_their_queues() {
    let device = Device::new(2);
    {
        let context = pin!(Context::<'_, 4>::new());
        context.as_ref().submit(&device, Events::IN, 1).unwrap();
        context.as_ref().submit(&device, Events::OUT, 2).unwrap();
        assert_eq!(device.queues[0].len(), 2);
    }
    assert!(device.queues.iter().all(|queue| queue.is_empty()));
    assert_eq!(device.raise(Events::IN), 0);
}

#[test]
fn dropping_a_queue_with_requests_completes_them_with_source_gone() {
    // The safe API borrows every queue for the context's lifetime, so a
    // queue can only be dropped early under `submit_unchecked`'s contract.
    let context = pin!(Context::<'_, 2>::new());
    let device = Box::new(Device::new(1));
    // SAFETY: the device stays alive until its request is reaped below; its
    // queue is dropped first, and dropping a queue closes it.
    unsafe {
        context
            .as_ref()
            .submit_unchecked(&*device, Events::IN, 3)
            .unwrap()
    };
    let [queue, ..] = &device.queues;
    queue.close();
    drop(device);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 3,
            outcome: Outcome::SourceGone,
            ..Completion::EMPTY
        }]
    );
}

/// Counts the hooks' calls.
#[derive(Default)]
struct Counting {
    deferred: AtomicU32,
    completed: AtomicU32,
}

impl Notify for Counting {
    fn deferred_work(&self) {
        self.deferred.fetch_add(1, Ordering::Relaxed);
    }
    fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_failed_try_lock_defers_and_the_deferred_work_completes_exactly_once() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(
        Context::<'_, 2, (FaultLock, FaultLock), 2, Counting>::with_hooks(Counting::default())
    );
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    fail_next_try_locks(1);
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(try_lock_failures_left(), 0);
    assert_eq!(context.completions(), 0);
    assert_eq!(context.hooks().deferred.load(Ordering::Relaxed), 1);
    // A second wakeup before the work runs: scheduled once, completes once.
    fail_next_try_locks(1);
    device.raise(Events::IN);
    assert_eq!(context.hooks().deferred.load(Ordering::Relaxed), 1);
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(context.run_deferred(), 0);
    let stats = context.stats();
    assert_eq!((stats.deferrals, stats.completed_by_deferred_work), (2, 1));
    assert_eq!(context.hooks().completed.load(Ordering::Relaxed), 1);
    assert_eq!(reap_all(&context).len(), 1);
}

#[test]
fn a_wakeup_that_deferred_on_a_failed_try_lock_wins_against_a_later_cancel() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(Context::<'_, 2, (FaultLock, FaultLock)>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    fail_next_try_locks(1);
    device.raise(Events::IN);
    assert!(context.has_deferred_work());
    // The wakeup came first: cancel runs its deferred work and finds the
    // request complete (Linux's io_cancel: EINVAL).
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
    let stats = context.stats();
    assert_eq!((stats.cancelled, stats.completed_by_deferred_work), (0, 1));
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_close_that_deferred_wins_against_a_later_cancel() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(Context::<'_, 2, (FaultLock, FaultLock)>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    fail_next_try_locks(1);
    device.queues[0].close();
    // POLLFREE: the entry left the queue even though the completion waits.
    assert!(device.queues[0].is_empty());
    device.set_ready(Events::IN);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(reap_all(&context)[0].outcome, Outcome::SourceGone);
}

#[test]
fn an_unkeyed_wakeup_of_a_ready_source_wins_against_a_later_cancel() {
    // The scenario: the source becomes ready (a pipe's writer
    // closes: HUP), wakes unkeyed (which always defers), then cancel.
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    device.set_ready(Events::HUP);
    assert_eq!(device.queues[0].wake(Events::empty()), 1);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::HUP),
            ..Completion::EMPTY
        }]
    );
}

#[test]
fn a_spurious_unkeyed_wakeup_does_not_stop_a_later_cancel() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    // Nothing is ready: the re-poll that cancel runs re-arms (T8), then the
    // cancel goes ahead.
    assert_eq!(device.queues[0].wake(Events::empty()), 1);
    assert_eq!(context.cancel(handle), Ok(aiopoll::InProgress));
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Cancelled);
    let stats = context.stats();
    assert_eq!((stats.spurious, stats.cancelled), (1, 1));
    assert!(device.queues[0].is_empty());
}

#[test]
fn a_wakeup_of_a_request_on_two_queues_wins_against_a_later_cancel() {
    // A request on two queues always defers (two queue locks never nest).
    let device = Device::new(2);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(context.completions(), 0);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
    assert!(device.queues[0].is_empty() && device.queues[1].is_empty());
}

#[test]
fn a_poll_that_panics_in_the_cancel_s_deferred_work_loses_no_wakeup() {
    support::quiet_hostile_panics();
    let device = Device::new(1);
    device.panics_rechecking.store(true, Ordering::Relaxed);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    device.set_ready(Events::IN);
    device.queues[0].wake(Events::empty());
    let cancel = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| context.cancel(handle)));
    assert!(cancel.is_err());
    // The wakeup is still owed: it is still pending and the request still
    // armed, so once the source behaves, it completes with what is ready.
    assert!(context.has_deferred_work());
    device.panics_rechecking.store(false, Ordering::Relaxed);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
}

#[test]
fn reap_runs_the_deferred_work_so_nothing_is_stranded() {
    let device: Device<FaultLock> = Device::new(1);
    let context = pin!(Context::<'_, 2, (FaultLock, FaultLock)>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    fail_next_try_locks(1);
    device.raise(Events::IN);
    assert_eq!(reap_all(&context).len(), 1);
}

#[test]
fn a_batch_submits_in_order_and_stops_at_the_first_refused() {
    use aiopoll::{BatchRefused, Submission};
    let ready = Device::new(1);
    ready.set_ready(Events::IN);
    let waiting = Device::new(1);
    let no_queue = Device::new(0);
    let context = pin!(Context::<'_, 4>::new());
    let batch = [
        Submission {
            source: &waiting,
            events: Events::IN,
            user_data: 1,
        },
        Submission {
            source: &ready,
            events: Events::IN,
            user_data: 2,
        },
        Submission {
            source: &no_queue,
            events: Events::IN,
            user_data: 3,
        },
        Submission {
            source: &waiting,
            events: Events::IN,
            user_data: 4,
        },
    ];
    let mut handles = Vec::new();
    let result = context
        .as_ref()
        .submit_batch(&batch, |handle| handles.push(handle));
    assert_eq!(
        result,
        Err(BatchRefused {
            accepted: 2,
            error: SubmitError::NotPollable
        })
    );
    assert_eq!(handles.len(), 2);
    // The accepted ones stand; nothing of the refused one or after it.
    assert_eq!(context.in_use(), 2);
    assert_eq!(waiting.queues[0].len(), 1);
    assert_eq!(context.cancel(handles[0]), Ok(aiopoll::InProgress));
    let mut user_data: Vec<u64> = reap_all(&context).iter().map(|c| c.user_data).collect();
    user_data.sort_unstable();
    assert_eq!(user_data, [1, 2]);
    assert!(result.unwrap_err().to_string().contains("after 2 accepted"));
    // A batch that fits is accepted whole.
    assert_eq!(context.as_ref().submit_batch(&batch[..2], |_| {}), Ok(2));
}

#[test]
fn cancel_user_data_cancels_every_pending_match_once() {
    let device = Device::new(1);
    let other = Device::new(1);
    let deferred = Device::new(2);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 5).unwrap();
    context.as_ref().submit(&other, Events::IN, 5).unwrap();
    context.as_ref().submit(&device, Events::IN, 6).unwrap();
    // A matching request whose wakeup deferred first completes with it.
    context.as_ref().submit(&deferred, Events::IN, 5).unwrap();
    deferred.raise(Events::IN);
    assert_eq!(context.cancel_user_data(5), 2);
    assert_eq!(context.cancel_user_data(5), 0);
    let mut outcomes: Vec<(u64, Outcome)> = reap_all(&context)
        .iter()
        .map(|c| (c.user_data, c.outcome))
        .collect();
    outcomes.sort_by_key(|&(user_data, outcome)| (user_data, outcome == Outcome::Cancelled));
    assert_eq!(
        outcomes,
        [
            (5, Outcome::Ready(Events::IN)),
            (5, Outcome::Cancelled),
            (5, Outcome::Cancelled)
        ]
    );
    assert_eq!(context.in_use(), 1); // user data 6 still waits
    assert_eq!(context.stats().cancelled, 2);
}

#[test]
fn cancel_source_cancels_queued_and_awaited_requests_on_it() {
    use std::task::{Context as TaskContext, Poll, Waker};
    let device = Device::new(2);
    let other = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    context.as_ref().submit(&device, Events::IN, 1).unwrap();
    context.as_ref().submit(&other, Events::IN, 2).unwrap();
    let mut request = pin!(context.as_ref().request(&device, Events::OUT));
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(request.as_mut().poll(&mut cx).is_pending());
    assert_eq!(context.cancel_source(&device), 2);
    assert!(device.queues.iter().all(|queue| queue.is_empty()));
    assert_eq!(
        request.as_mut().poll(&mut cx),
        Poll::Ready(Ok(Outcome::Cancelled))
    );
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Cancelled,
            ..Completion::EMPTY
        }]
    );
    assert_eq!(other.queues[0].len(), 1);
    assert_eq!(context.cancel_source(&device), 0);
}

#[test]
fn update_changes_the_mask_and_user_data_of_a_pending_request() {
    use aiopoll::{UpdateError, Updated};
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    assert_eq!(
        context.update(handle, Some(Events::OUT), Some(9)),
        Ok(Updated::Waiting)
    );
    // The old mask no longer matches; the new one does.
    assert_eq!(device.raise(Events::IN), 0);
    assert_eq!(device.raise(Events::OUT), 1);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 9,
            outcome: Outcome::Ready(Events::OUT),
            ..Completion::EMPTY
        }]
    );
    assert_eq!(
        context.update(handle, None, Some(1)),
        Err(UpdateError::NotFound)
    );
}

#[test]
fn update_to_a_mask_that_is_ready_completes_at_once() {
    use aiopoll::Updated;
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    // OUT became ready while the request waited for IN only: its keyed
    // wakeup missed it. The update re-polls with the new mask.
    device.raise(Events::OUT);
    assert_eq!(
        context.update(handle, Some(Events::OUT), None),
        Ok(Updated::Completed)
    );
    assert!(device.queues[0].is_empty());
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::OUT));
}

#[test]
fn update_loses_to_a_wakeup_that_deferred_first_and_bad_masks_change_nothing() {
    use aiopoll::UpdateError;
    let device = Device::new(2);
    let context = pin!(Context::<'_, 4>::new());
    let handle = context.as_ref().submit(&device, Events::IN, 1).unwrap();
    let unknown = Events::from_bits_retain(0x8000);
    let refused = context.update(handle, Some(unknown), Some(5));
    assert_eq!(refused, Err(UpdateError::UnknownEvents { unknown: 0x8000 }));
    assert!(refused.unwrap_err().to_string().contains("unknown bits"));
    device.raise(Events::IN); // two queues: deferred
    assert_eq!(
        context.update(handle, Some(Events::OUT), Some(5)),
        Err(UpdateError::NotFound)
    );
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::IN),
            ..Completion::EMPTY
        }]
    );
}

/// Hooks that remember the deadlines they were told of.
#[derive(Default)]
struct Deadlines(std::sync::Mutex<Vec<u64>>);

impl Notify for Deadlines {
    fn deadline_armed(&self, deadline: u64) {
        self.0.lock().unwrap().push(deadline);
    }
}

#[test]
fn a_request_whose_deadline_passes_times_out_once() {
    let device = Device::new(1);
    let context =
        pin!(Context::<'_, 4, aiopoll::SpinLocks, 2, Deadlines>::with_hooks(Deadlines::default()));
    context
        .as_ref()
        .submit_with_deadline(&device, Events::IN, 1, 100)
        .unwrap();
    context
        .as_ref()
        .submit_with_deadline(&device, Events::IN, 2, 50)
        .unwrap();
    context.as_ref().submit(&device, Events::IN, 3).unwrap();
    assert_eq!(*context.hooks().0.lock().unwrap(), [100, 50]);
    assert_eq!(context.next_deadline(), Some(50));
    assert_eq!(context.expire(49), 0);
    assert_eq!(context.expire(50), 1);
    assert_eq!(context.next_deadline(), Some(100));
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 2,
            outcome: Outcome::TimedOut,
            ..Completion::EMPTY
        }]
    );
    assert_eq!(device.queues[0].len(), 2);
    // Readiness before the deadline wins; a later expire finds nothing.
    device.raise(Events::IN);
    assert_eq!(context.expire(1_000), 0);
    assert_eq!(context.next_deadline(), None);
    assert_eq!(reap_all(&context).len(), 2);
    assert_eq!(context.stats().timed_out, 1);
    assert_eq!(Outcome::TimedOut.to_linux(), -62);
}

#[test]
fn a_multishot_request_with_a_deadline_posts_readiness_until_it_times_out() {
    let device = Device::new(1);
    let context =
        pin!(Context::<'_, 2, aiopoll::SpinLocks, 2, Deadlines>::with_hooks(Deadlines::default()));
    let mut accepted = None;
    // SAFETY: `device` outlives the context.
    let handle = unsafe {
        context.as_ref().submit_unchecked_with(
            &device,
            Events::IN,
            5,
            RequestOptions::ONE_SHOT.multishot().deadline(40),
            |handle| accepted = Some(handle),
        )
    }
    .unwrap();
    assert_eq!(accepted, Some(handle));
    assert_eq!(*context.hooks().0.lock().unwrap(), [40]);
    device.raise(Events::IN);
    assert_eq!(context.expire(39), 0);
    device.raise(Events::IN);
    // Two readiness events before the first reap merge into one posting;
    // the deadline then ends the request, which is still armed.
    assert_eq!(context.expire(40), 1);
    let mut done = [Completion::EMPTY; 3];
    let count = context.reap(&mut done);
    assert_eq!(
        done[..count]
            .iter()
            .map(|completion| (completion.outcome, completion.more))
            .collect::<Vec<_>>(),
        [
            (Outcome::Ready(Events::IN), true),
            (Outcome::TimedOut, false)
        ]
    );
    assert_eq!(context.in_use(), 0);
    assert!(device.queues[0].is_empty());
    assert_eq!(context.next_deadline(), None);
}

#[test]
fn a_wakeup_that_deferred_before_the_deadline_wins() {
    let device = Device::new(2);
    let context = pin!(Context::<'_, 4>::new());
    context
        .as_ref()
        .submit_with_deadline(&device, Events::IN, 1, 10)
        .unwrap();
    device.raise(Events::IN); // two queues: deferred
    assert_eq!(context.expire(10), 0);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
}

#[test]
fn a_request_ready_at_submit_never_times_out_nor_arms_a_deadline() {
    let device = Device::new(1);
    device.set_ready(Events::IN);
    let context =
        pin!(Context::<'_, 4, aiopoll::SpinLocks, 2, Deadlines>::with_hooks(Deadlines::default()));
    context
        .as_ref()
        .submit_with_deadline(&device, Events::IN, 1, 0)
        .unwrap();
    assert!(context.hooks().0.lock().unwrap().is_empty());
    assert_eq!(context.expire(u64::MAX), 0);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
}

#[test]
fn completions_carry_their_request_s_handle() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 4>::new());
    let first = context.as_ref().submit(&device, Events::IN, 7).unwrap();
    let second = context.as_ref().submit(&device, Events::IN, 7).unwrap();
    device.raise(Events::IN);
    let mut out = [Completion::EMPTY; 4];
    assert_eq!(context.reap(&mut out), 2);
    let mut handles = [out[0].handle, out[1].handle];
    handles.sort_by_key(|handle| handle.slot());
    assert_eq!(handles, [first, second]);
    assert!(!out[0].more && !out[1].more);
    // A reused slot's handle differs from the old one.
    let third = context.as_ref().submit(&device, Events::OUT, 8).unwrap();
    assert!(third != first && third != second);
}

#[test]
fn a_multishot_request_posts_each_readiness_merges_unreaped_ones_and_ends_once() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let handle = context
        .as_ref()
        .submit_multishot(&device, Events::IN | Events::OUT, 3)
        .unwrap();
    let mut out = [Completion::EMPTY; 4];
    assert_eq!(device.raise(Events::IN), 1);
    assert_eq!(context.reap(&mut out), 1);
    assert_eq!(
        (out[0].outcome, out[0].more, out[0].handle),
        (Outcome::Ready(Events::IN), true, handle)
    );
    // Still armed, on its queue, holding its slot.
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(context.in_use(), 1);
    // Two readiness before a reap: one completion, events OR'd.
    device.set_ready(Events::empty());
    device.raise(Events::IN);
    device.raise(Events::OUT);
    assert_eq!(context.completions(), 1);
    // The final completion follows the readiness not reaped yet.
    assert_eq!(context.cancel(handle), Ok(aiopoll::InProgress));
    assert_eq!(context.reap(&mut out), 2);
    assert_eq!(
        (out[0].outcome, out[0].more),
        (Outcome::Ready(Events::IN | Events::OUT), true)
    );
    assert_eq!((out[1].outcome, out[1].more), (Outcome::Cancelled, false));
    assert_eq!(context.in_use(), 0);
    assert!(device.queues[0].is_empty());
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
}

#[test]
fn a_multishot_request_ready_at_submit_posts_and_stays_armed_until_its_queue_closes() {
    let device = Device::new(2);
    device.set_ready(Events::IN);
    let context = pin!(Context::<'_, 2>::new());
    context
        .as_ref()
        .submit_multishot(&device, Events::IN, 1)
        .unwrap();
    assert_eq!(device.queues[0].len(), 1);
    assert_eq!(context.completions(), 1);
    // On two queues its wakeups are posted inline all the same.
    device.raise(Events::IN);
    device.queues[1].close();
    let mut out = [Completion::EMPTY; 4];
    assert_eq!(context.reap(&mut out), 2);
    assert_eq!(
        (out[0].outcome, out[0].more),
        (Outcome::Ready(Events::IN), true)
    );
    assert_eq!((out[1].outcome, out[1].more), (Outcome::SourceGone, false));
    assert!(device.queues[0].is_empty());
    assert_eq!(context.in_use(), 0);
}

#[test]
fn submit_unchecked_with_and_reap_with_let_an_adapter_keep_something_per_request() {
    let device = Device::new(1);
    let context = pin!(Context::<'_, 2>::new());
    let mut kept = [None; 2];
    for user_data in [1, 2] {
        // SAFETY: `device` outlives the context.
        let handle = unsafe {
            context.as_ref().submit_unchecked_with(
                &device,
                Events::IN,
                user_data,
                if user_data == 2 {
                    RequestOptions::ONE_SHOT.multishot()
                } else {
                    RequestOptions::ONE_SHOT
                },
                |handle| {
                    kept[usize::from(handle.slot())] = Some(user_data);
                },
            )
        }
        .unwrap();
        assert_eq!(kept[usize::from(handle.slot())], Some(user_data));
    }
    // A refused submit calls nothing.
    // SAFETY: `device` outlives the context.
    let refused = unsafe {
        context.as_ref().submit_unchecked_with(
            &device,
            Events::IN,
            3,
            RequestOptions::ONE_SHOT,
            |_| panic!("refused"),
        )
    };
    assert_eq!(refused, Err(SubmitError::Busy));
    device.raise(Events::IN);
    let mut seen = Vec::new();
    let mut out = [Completion::EMPTY; 4];
    let count = context.reap_with(&mut out, |completion| {
        seen.push((completion.user_data, completion.more));
        if !completion.more {
            kept[usize::from(completion.handle.slot())] = None;
        }
    });
    assert_eq!(count, 2);
    seen.sort_unstable();
    // The one-shot request ends; the multishot one posts and stays.
    assert_eq!(seen, [(1, false), (2, true)]);
    assert_eq!(kept.iter().flatten().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn a_context_with_thousands_of_slots_is_made_in_place_on_a_small_stack() {
    const N: usize = if cfg!(miri) { 64 } else { 20_000 };
    type Big<'s> = Context<'s, N>;
    // Far bigger than the stack it is made on.
    assert!(cfg!(miri) || std::mem::size_of::<Big<'_>>() > 1 << 20);
    let device = Device::new(1);
    let made = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(scope, || {
                let mut place = Box::<Big<'_>>::new_uninit();
                // SAFETY: a fresh allocation for one `Big`, aligned for it.
                unsafe { Big::init_in_place(place.as_mut_ptr(), ()) };
                // SAFETY: `init_in_place` initialised every field.
                let context = Box::into_pin(unsafe { place.assume_init() });
                for user_data in 0..N as u64 {
                    context
                        .as_ref()
                        .submit(&device, Events::IN, user_data)
                        .unwrap();
                }
                assert_eq!(
                    context.as_ref().submit(&device, Events::IN, 0),
                    Err(SubmitError::Busy)
                );
                device.raise(Events::IN);
                let mut out = vec![Completion::EMPTY; N];
                let reaped = context.reap(&mut out);
                let mut seen: Vec<u64> =
                    out.iter().map(|completion| completion.user_data).collect();
                seen.sort_unstable();
                (
                    reaped,
                    seen == (0..N as u64).collect::<Vec<_>>(),
                    context.in_use(),
                )
            })
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(made, (N, true, 0));
}

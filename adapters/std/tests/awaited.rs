//! Awaited requests (`StdContext::request`) on futures-executor: woken from
//! other threads and by the context's own thread (deferred work,
//! deadlines), cancelled by dropping the future, waiting for a slot on a
//! full context, beside blocking `get_events`; nothing left behind. These
//! touch no OS facility and run under Miri too (the tokio tests are in
//! `tokio.rs`).

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use aiopoll_std::{pipe, EventCounter, Events, Outcome, StdContext, StdRequest, SubmitError};
use common::Flag;
use futures_executor::{block_on, ThreadPool};

/// How many tasks the pool runs (fewer under Miri, which interprets every
/// step).
const TASKS: u64 = if cfg!(miri) { 12 } else { 200 };

#[test]
fn an_awaited_request_is_woken_by_another_thread_s_write() {
    let context = StdContext::<4>::new();
    let counter = EventCounter::new();
    std::thread::scope(|scope| {
        let outcome = block_on(async {
            let request = context.request(&counter, Events::IN);
            scope.spawn(|| counter.write(1).unwrap());
            request.await
        });
        assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
    });
    // Awaited requests never reach the completion queue.
    assert_eq!(context.completions(), 0);
    assert_eq!(context.in_use(), 0);
    let stats = context.stats();
    assert_eq!((stats.awaited, stats.reaped), (1, 0));
}

#[test]
fn deferred_work_on_the_context_s_thread_wakes_the_task() {
    // Closing the write end wakes the reader unkeyed: only a re-poll, on
    // the context's thread (nobody reaps), can complete the request.
    let context = StdContext::<4>::new();
    let (reader, writer) = pipe();
    let mut request = pin!(context.request(&reader, Events::IN));
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(request.as_mut().poll(&mut cx).is_pending());
    std::thread::spawn(move || drop(writer));
    let outcome = block_on(request);
    assert_eq!(outcome, Ok(Outcome::Ready(Events::HUP)));
    assert_eq!(context.stats().completed_by_deferred_work, 1);
}

#[test]
fn dropping_the_future_cancels_the_request_and_lets_go_of_the_source() {
    let context = StdContext::<2>::new();
    let flag = Flag::new();
    let mut cx = TaskContext::from_waker(Waker::noop());
    {
        let mut request = pin!(context.request(&flag, Events::IN));
        assert!(request.as_mut().poll(&mut cx).is_pending());
        assert_eq!(context.in_use(), 1);
        assert_eq!(Arc::strong_count(&flag), 2);
        assert_eq!(flag.queue.len(), 1);
    }
    assert_eq!(context.in_use(), 0);
    assert_eq!(Arc::strong_count(&flag), 1);
    assert!(flag.queue.is_empty());
    assert_eq!(context.completions(), 0);
    // One that never was polled submitted nothing.
    drop(context.request(&flag, Events::IN));
    assert_eq!(Arc::strong_count(&flag), 1);
}

#[test]
fn a_deadline_resolves_the_future_with_timed_out() {
    let context = StdContext::<2>::new();
    let flag = Flag::new();
    let start = Instant::now();
    let outcome = block_on(
        context
            .request(&flag, Events::IN)
            .deadline(start + Duration::from_millis(2)),
    );
    assert_eq!(outcome, Ok(Outcome::TimedOut));
    assert!(start.elapsed() >= Duration::from_millis(2));
    // Readiness before the deadline wins.
    flag.raise(Events::IN);
    let outcome = block_on(
        context
            .request(&flag, Events::IN)
            .deadline(Instant::now() + Duration::from_secs(3600)),
    );
    assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
    assert_eq!(context.in_use(), 0);
}

#[test]
fn cancel_source_and_refused_requests_resolve_the_future() {
    let context = StdContext::<2>::new();
    let flag = Flag::new();
    let mut cx = TaskContext::from_waker(Waker::noop());
    let mut request = pin!(context.request(&flag, Events::IN));
    assert!(request.as_mut().poll(&mut cx).is_pending());
    assert_eq!(context.cancel_source(&flag), 1);
    assert_eq!(
        request.as_mut().poll(&mut cx),
        Poll::Ready(Ok(Outcome::Cancelled))
    );
    assert!(request.is_resolved());
    let unknown = Events::from_bits_retain(0x8000);
    assert_eq!(
        block_on(context.request(&flag, unknown)),
        Err(SubmitError::UnknownEvents { unknown: 0x8000 })
    );
    assert_eq!(context.in_use(), 0);
}

#[test]
fn awaited_requests_are_send() {
    fn send<T: Send + Sync>(_: &T) {}
    let context = StdContext::<2>::new();
    let request: StdRequest<'_, 2> = context.request(&EventCounter::new(), Events::IN);
    send(&request);
}

#[test]
fn many_tasks_on_a_thread_pool_share_a_small_context_with_a_blocking_reaper() {
    // More tasks than slots: futures wait for a slot. Each task awaits its
    // own counter, written from a plain thread; meanwhile submitted
    // requests on the same context are reaped by a thread blocked in
    // get_events. Every request completes once; nothing is left.
    let context = Arc::new(StdContext::<8>::new());
    let counters: Arc<Vec<EventCounter>> =
        Arc::new((0..TASKS).map(|_| EventCounter::new()).collect());
    let pool = ThreadPool::builder().pool_size(2).create().unwrap();
    let (done, results) = std::sync::mpsc::channel();
    for task in 0..TASKS {
        let (context, counters, done) = (context.clone(), counters.clone(), done.clone());
        pool.spawn_ok(async move {
            let outcome = context.request(&counters[task as usize], Events::IN).await;
            done.send((task, outcome)).unwrap();
        });
    }
    drop(done);
    let queued = EventCounter::new();
    std::thread::scope(|scope| {
        let reaper = scope.spawn(|| {
            let mut user_data = Vec::new();
            while user_data.len() < 4 {
                for completion in context.get_events(1, 4, None).unwrap() {
                    assert_eq!(completion.outcome, Outcome::Ready(Events::IN));
                    user_data.push(completion.user_data);
                }
            }
            user_data.sort_unstable();
            user_data
        });
        // The writes may come before the requests: a counter stays
        // readable, and its request then completes at submit.
        scope.spawn(|| {
            for counter in counters.iter() {
                counter.write(1).unwrap();
            }
            queued.write(1).unwrap();
        });
        for user_data in 0..4 {
            loop {
                match context.submit(&queued, Events::IN, user_data) {
                    Ok(_) => break,
                    // Every slot in use by the tasks: wait for a free one.
                    Err(SubmitError::Busy) => std::thread::yield_now(),
                    Err(error) => panic!("{error}"),
                }
            }
        }
        assert_eq!(reaper.join().unwrap(), [0, 1, 2, 3]);
    });
    let mut seen: Vec<u64> = results
        .iter()
        .map(|(task, outcome)| {
            assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
            task
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..TASKS).collect::<Vec<_>>());
    assert_eq!(context.in_use(), 0);
    let stats = context.stats();
    assert_eq!((stats.awaited, stats.reaped), (TASKS as u32, 4));
}

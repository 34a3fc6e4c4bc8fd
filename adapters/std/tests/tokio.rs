//! Awaited requests under tokio's current-thread and multi-thread
//! runtimes (many tasks, wakeups from other threads, timeouts made by
//! dropping the future, blocking `get_events` beside them), and the
//! completion descriptor under `AsyncFd`. Tokio's I/O driver and timers
//! need the OS: not under Miri; the descriptor is Linux's.
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiopoll_std::{EventCounter, Events, Outcome, StdContext};
use common::Flag;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const TASKS: u64 = 500;

/// Spawns `TASKS` tasks, each awaiting a request on its own counter (more
/// tasks than slots: futures wait for a slot), writes every counter from a
/// plain thread, and checks that each task got its readiness once and that
/// nothing is left.
async fn many_tasks_woken_from_another_thread() {
    let context = Arc::new(StdContext::<16>::new());
    let counters: Arc<Vec<EventCounter>> =
        Arc::new((0..TASKS).map(|_| EventCounter::new()).collect());
    let tasks: Vec<_> = (0..TASKS as usize)
        .map(|task| {
            let (context, counters) = (context.clone(), counters.clone());
            tokio::spawn(async move { context.request(&counters[task], Events::IN).await })
        })
        .collect();
    let writer = {
        let counters = counters.clone();
        std::thread::spawn(move || {
            for counter in counters.iter() {
                counter.write(1).unwrap();
            }
        })
    };
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(Outcome::Ready(Events::IN)));
    }
    writer.join().unwrap();
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().awaited, TASKS as u32);
}

#[tokio::test(flavor = "current_thread")]
async fn current_thread_tasks_are_woken_from_another_thread() {
    many_tasks_woken_from_another_thread().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_tasks_are_woken_from_another_thread() {
    many_tasks_woken_from_another_thread().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_wake_each_other_across_runtime_threads() {
    // A ring of tasks: each awaits its counter, then writes the next one's,
    // so every wakeup comes from another task, often on the other thread.
    const RING: usize = 64;
    const LAPS: usize = 20;
    let context = Arc::new(StdContext::<64>::new());
    let counters: Arc<Vec<EventCounter>> =
        Arc::new((0..RING).map(|_| EventCounter::new()).collect());
    let tasks: Vec<_> = (0..RING)
        .map(|task| {
            let (context, counters) = (context.clone(), counters.clone());
            tokio::spawn(async move {
                for _ in 0..LAPS {
                    let outcome = context.request(&counters[task], Events::IN).await;
                    assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
                    counters[task].read().unwrap();
                    counters[(task + 1) % RING].write(1).unwrap();
                }
            })
        })
        .collect();
    counters[0].write(1).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().awaited, (RING * LAPS) as u32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_drops_the_request_and_leaves_nothing() {
    let context = Arc::new(StdContext::<4>::new());
    let never = Flag::new();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (context, never) = (context.clone(), never.clone());
            tokio::spawn(async move {
                let request = context.request(&never, Events::IN);
                tokio::time::timeout(Duration::from_millis(1), request).await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err(), "the request timed out");
    }
    assert_eq!(context.in_use(), 0);
    assert_eq!(Arc::strong_count(&never), 1);
    assert!(never.queue.is_empty());
    assert_eq!(context.completions(), 0);
    // A request that wins against its timeout resolves as usual.
    let ready = EventCounter::with_count(1);
    let outcome = tokio::time::timeout(
        Duration::from_secs(3600),
        context.request(&ready, Events::IN),
    );
    assert_eq!(outcome.await, Ok(Ok(Outcome::Ready(Events::IN))));
}

#[tokio::test(flavor = "current_thread")]
async fn a_deadline_of_the_context_s_own_wakes_the_task() {
    let context = StdContext::<2>::new();
    let never = Flag::new();
    let deadline = Instant::now() + Duration::from_millis(2);
    let outcome = context.request(&never, Events::IN).deadline(deadline).await;
    assert_eq!(outcome, Ok(Outcome::TimedOut));
    assert!(Instant::now() >= deadline);
    assert_eq!(context.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_requests_and_a_blocking_get_events_share_a_context() {
    // A plain thread submits requests and reaps them blocking in
    // get_events; after each it writes one of the counters that tasks
    // await on the same context.
    const TASKS: usize = 16;
    const COUNT: u64 = 20;
    let context = Arc::new(StdContext::<32>::new());
    let counters: Arc<Vec<EventCounter>> =
        Arc::new((0..TASKS).map(|_| EventCounter::new()).collect());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (context, counters) = (context.clone(), counters.clone());
            tokio::spawn(async move {
                // Writes that come before a request merge: count them.
                let mut count = 0;
                while count < COUNT {
                    let outcome = context.request(&counters[task], Events::IN).await;
                    assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
                    count += counters[task].read().unwrap();
                }
            })
        })
        .collect();
    let queued = Flag::new();
    let reaper = {
        let (context, counters) = (context.clone(), counters.clone());
        std::thread::spawn(move || {
            for round in 0..COUNT * TASKS as u64 {
                context.submit(&queued, Events::PRI, round).unwrap();
                queued.raise(Events::PRI);
                let done = context.get_events(1, 1, None).unwrap();
                assert_eq!(
                    (done[0].user_data, done[0].outcome),
                    (round, Outcome::Ready(Events::PRI))
                );
                queued.raise(Events::empty());
                counters[round as usize % TASKS].write(1).unwrap();
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    tokio::task::spawn_blocking(move || reaper.join().unwrap())
        .await
        .unwrap();
    assert_eq!(context.in_use(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_completion_descriptor_wakes_an_async_fd_reaper() {
    const REQUESTS: u64 = 100;
    let context = Arc::new(StdContext::<128>::new());
    let counters: Arc<Vec<EventCounter>> =
        Arc::new((0..REQUESTS).map(|_| EventCounter::new()).collect());
    for (user_data, counter) in counters.iter().enumerate() {
        context
            .submit(counter, Events::IN, user_data as u64)
            .unwrap();
    }
    let fd = watch(&context);
    let writer = {
        let counters = counters.clone();
        std::thread::spawn(move || {
            for counter in counters.iter() {
                counter.write(1).unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while (seen.len() as u64) < REQUESTS {
        fd.readable().await.unwrap().clear_ready();
        for completion in context.get_events(0, 16, Some(Duration::ZERO)).unwrap() {
            assert_eq!(completion.outcome, Outcome::Ready(Events::IN));
            seen.push(completion.user_data);
        }
    }
    writer.join().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (0..REQUESTS).collect::<Vec<_>>());
    assert_eq!(context.in_use(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_completion_descriptor_is_readable_for_completions_that_wait_already() {
    let context = StdContext::<4>::new();
    let ready = EventCounter::with_count(1);
    context.submit(&ready, Events::IN, 1).unwrap();
    // Queued before the descriptor existed: readable at once.
    let fd = watch(&context);
    let mut guard = fd.readable().await.unwrap();
    guard.clear_ready();
    assert_eq!(context.reap(&mut [aiopoll_std::Completion::EMPTY; 4]), 1);
    // Drained by the reap: no longer readable.
    assert!(!is_readable(&context));
    // Multishot readiness makes it readable too.
    let handle = context.submit_multishot(&ready, Events::IN, 2).unwrap();
    assert!(is_readable(&context));
    // A reap that leaves completions waiting leaves it readable.
    context.cancel(handle).unwrap();
    context.submit(&ready, Events::IN, 3).unwrap();
    let mut one = [aiopoll_std::Completion::EMPTY; 1];
    for _ in 0..2 {
        assert_eq!(context.reap(&mut one), 1);
        assert!(is_readable(&context));
    }
    assert_eq!(context.reap(&mut one), 1);
    assert!(!is_readable(&context));
    assert_eq!(context.in_use(), 0);
}

/// The context's completion descriptor in tokio's reactor.
fn watch<const N: usize>(context: &StdContext<N>) -> AsyncFd<BorrowedFd<'_>> {
    let fd = context.completion_fd().unwrap();
    // SAFETY: a `BorrowedFd` is open for as long as it is borrowed, and the
    // `AsyncFd` holding it cannot outlive that borrow.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.unwrap()
}

/// Whether the completion descriptor is readable now, by poll(2).
fn is_readable<const N: usize>(context: &StdContext<N>) -> bool {
    use std::os::fd::AsRawFd;
    let mut pollfd = libc::pollfd {
        fd: context.completion_fd().unwrap().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    assert!(ready >= 0);
    pollfd.revents & libc::POLLIN != 0
}

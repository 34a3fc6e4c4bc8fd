//! The request semantics of issue 10 on std: completions that name their
//! request, batches, multishot requests, updates, cancel by user data or by
//! source, and deadlines on the context's clock; and that the context lets
//! go of every source it kept. These run under Miri too.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiopoll_std::{
    BatchRefused, CancelError, Completion, EventCounter, Events, InProgress, Outcome, StdContext,
    Submission, SubmitError, UpdateError, Updated,
};
use common::Flag;

const NOW: Option<Duration> = Some(Duration::ZERO);

fn reap_all<const N: usize>(context: &StdContext<N>) -> Vec<Completion> {
    context.get_events(0, N, NOW).unwrap()
}

/// User data and outcome of each completion, sorted.
fn sorted_pairs(completions: &[Completion]) -> Vec<(u64, Outcome)> {
    let mut pairs: Vec<(u64, Outcome)> = completions
        .iter()
        .map(|completion| (completion.user_data, completion.outcome))
        .collect();
    pairs.sort_by_key(|&(user_data, outcome)| (user_data, format!("{outcome:?}")));
    pairs
}

#[test]
fn completions_carry_the_user_data_given_and_their_request_s_handle() {
    let context = StdContext::<4>::new();
    let counter = EventCounter::new();
    let first = context.submit(&counter, Events::IN, u64::MAX).unwrap();
    let second = context.submit(&counter, Events::IN, u64::MAX).unwrap();
    counter.write(1).unwrap();
    let done = reap_all(&context);
    assert_eq!(done.len(), 2);
    let mut handles: Vec<_> = done.iter().map(|completion| completion.handle).collect();
    handles.sort_by_key(|handle| handle.slot());
    assert_eq!(handles, [first, second]);
    assert!(done
        .iter()
        .all(|completion| completion.user_data == u64::MAX
            && completion.outcome == Outcome::Ready(Events::IN)
            && !completion.more));
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_batch_submits_in_order_and_stops_at_the_first_refused() {
    let context = StdContext::<4>::new();
    let waiting = Flag::new();
    let ready = EventCounter::with_count(1);
    let refused = Flag::new();
    let unknown = Events::from_bits_retain(0x8000);
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
            source: &refused,
            events: unknown,
            user_data: 3,
        },
        Submission {
            source: &waiting,
            events: Events::IN,
            user_data: 4,
        },
    ];
    let mut handles = Vec::new();
    let result = context.submit_batch(batch, |handle| handles.push(handle));
    assert_eq!(
        result,
        Err(BatchRefused {
            accepted: 2,
            error: SubmitError::UnknownEvents { unknown: 0x8000 }
        })
    );
    assert_eq!(handles.len(), 2);
    // The accepted ones stand and keep their sources; the refused one's
    // source is not kept, and nothing after it was submitted.
    assert_eq!(context.in_use(), 2);
    assert_eq!(Arc::strong_count(&waiting), 2);
    assert_eq!(Arc::strong_count(&refused), 1);
    assert_eq!(context.cancel(handles[0]), Ok(InProgress));
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [(1, Outcome::Cancelled), (2, Outcome::Ready(Events::IN))]
    );
    assert_eq!(Arc::strong_count(&waiting), 1);
    // A batch that fits is accepted whole.
    let fits = [
        Submission {
            source: &waiting,
            events: Events::IN,
            user_data: 5,
        },
        Submission {
            source: &waiting,
            events: Events::OUT,
            user_data: 6,
        },
    ];
    assert_eq!(context.submit_batch(fits, |_| {}), Ok(2));
    assert_eq!(context.cancel_source(&waiting), 2);
    assert_eq!(reap_all(&context).len(), 2);
    assert_eq!(Arc::strong_count(&waiting), 1);
}

#[test]
fn a_multishot_request_posts_each_readiness_and_keeps_its_source_until_the_last() {
    let context = StdContext::<2>::new();
    let counter = EventCounter::new();
    let handle = context.submit_multishot(&counter, Events::IN, 3).unwrap();
    counter.write(1).unwrap();
    let done = reap_all(&context);
    assert_eq!(
        (
            done[0].user_data,
            done[0].outcome,
            done[0].more,
            done[0].handle
        ),
        (3, Outcome::Ready(Events::IN), true, handle)
    );
    // Still armed: each write posts again, and two before a reap merge.
    counter.read().unwrap();
    counter.write(1).unwrap();
    counter.write(1).unwrap();
    assert_eq!(context.completions(), 1);
    assert_eq!(context.in_use(), 1);
    // The final completion comes after the readiness not reaped yet.
    assert_eq!(context.cancel(handle), Ok(InProgress));
    let done = reap_all(&context);
    assert_eq!(
        done.iter()
            .map(|completion| (completion.outcome, completion.more))
            .collect::<Vec<_>>(),
        [
            (Outcome::Ready(Events::IN), true),
            (Outcome::Cancelled, false)
        ]
    );
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));

    // The source is kept through every readiness and let go at the last.
    let flag = Flag::new();
    context.submit_multishot(&flag, Events::PRI, 4).unwrap();
    for _ in 0..3 {
        flag.raise(Events::PRI);
        let done = reap_all(&context);
        assert_eq!(
            (done[0].outcome, done[0].more),
            (Outcome::Ready(Events::PRI), true)
        );
        assert_eq!(Arc::strong_count(&flag), 2);
    }
    flag.queue.close();
    let done = reap_all(&context);
    assert_eq!(
        (done[0].outcome, done[0].more),
        (Outcome::SourceGone, false)
    );
    assert_eq!(Arc::strong_count(&flag), 1);
}

#[test]
fn update_changes_the_mask_and_user_data_of_a_pending_request() {
    let context = StdContext::<4>::new();
    let flag = Flag::new();
    let handle = context.submit(&flag, Events::IN, 1).unwrap();
    assert_eq!(
        context.update(handle, Some(Events::OUT), Some(9)),
        Ok(Updated::Waiting)
    );
    // The old mask no longer matches; the new one does.
    flag.raise(Events::IN);
    assert!(reap_all(&context).is_empty());
    flag.raise(Events::OUT);
    let done = reap_all(&context);
    assert_eq!(
        (done[0].user_data, done[0].outcome, done[0].handle),
        (9, Outcome::Ready(Events::OUT), handle)
    );
    assert_eq!(
        context.update(handle, None, Some(1)),
        Err(UpdateError::NotFound)
    );
    // A new mask that is ready already completes at once, with the new
    // user data; an unknown bit changes nothing.
    let handle = context.submit(&flag, Events::IN, 2).unwrap();
    assert_eq!(
        context.update(handle, Some(Events::from_bits_retain(0x8000)), Some(7)),
        Err(UpdateError::UnknownEvents { unknown: 0x8000 })
    );
    assert_eq!(
        context.update(handle, Some(Events::OUT), Some(3)),
        Ok(Updated::Completed)
    );
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [(3, Outcome::Ready(Events::OUT))]
    );
    assert_eq!(Arc::strong_count(&flag), 1);
}

#[test]
fn cancel_by_user_data_and_by_source_cancel_every_pending_match_once() {
    let context = StdContext::<8>::new();
    let flag = Flag::new();
    let other = Flag::new();
    let counter = EventCounter::new();
    context.submit(&flag, Events::IN, 5).unwrap();
    context.submit(&other, Events::IN, 5).unwrap();
    context.submit(&flag, Events::IN, 6).unwrap();
    context.submit(&counter, Events::IN, 5).unwrap();
    // A matching request that completed first is not cancelled.
    counter.write(1).unwrap();
    assert_eq!(context.cancel_user_data(5), 2);
    assert_eq!(context.cancel_user_data(5), 0);
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [
            (5, Outcome::Cancelled),
            (5, Outcome::Cancelled),
            (5, Outcome::Ready(Events::IN))
        ]
    );
    assert_eq!(context.in_use(), 1); // user data 6 still waits
    assert_eq!(Arc::strong_count(&other), 1);
    // By source: every request on it, whatever its user data.
    context.submit(&flag, Events::OUT, 7).unwrap();
    context.submit(&other, Events::IN, 8).unwrap();
    assert_eq!(context.cancel_source(&flag), 2);
    assert_eq!(context.cancel_source(&flag), 0);
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [(6, Outcome::Cancelled), (7, Outcome::Cancelled)]
    );
    assert_eq!(Arc::strong_count(&flag), 1);
    assert_eq!(context.in_use(), 1);
    // This crate's sources are found by what they share with the context.
    context.submit(&counter, Events::PRI, 9).unwrap();
    assert_eq!(context.cancel_source(&counter), 1);
    assert_eq!(context.cancel_source(&other), 1);
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [(8, Outcome::Cancelled), (9, Outcome::Cancelled)]
    );
}

#[test]
fn a_request_whose_deadline_passes_times_out_once_on_the_context_s_thread() {
    let context = StdContext::<4>::new();
    let flag = Flag::new();
    let start = Instant::now();
    context
        .submit_with_deadline(&flag, Events::IN, 1, start + Duration::from_millis(2))
        .unwrap();
    context
        .submit_with_deadline(&flag, Events::IN, 2, start + Duration::from_secs(3600))
        .unwrap();
    context.submit(&flag, Events::IN, 3).unwrap();
    // Nothing wakes this reaper but the context's thread expiring the
    // request (its completion wakes it).
    let done = context.get_events(1, 4, None).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(2));
    assert_eq!(
        (done[0].user_data, done[0].outcome, done[0].more),
        (1, Outcome::TimedOut, false)
    );
    assert_eq!(Arc::strong_count(&flag), 3);
    // Readiness before the deadline wins.
    flag.raise(Events::IN);
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [
            (2, Outcome::Ready(Events::IN)),
            (3, Outcome::Ready(Events::IN))
        ]
    );
    assert_eq!(context.stats().timed_out, 1);
    assert_eq!(Arc::strong_count(&flag), 1);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_past_deadline_times_out_at_once_unless_the_source_is_ready() {
    let context = StdContext::<4>::new();
    let flag = Flag::new();
    let past = Instant::now();
    context
        .submit_with_deadline(&flag, Events::IN, 1, past)
        .unwrap();
    let done = context.get_events(1, 4, None).unwrap();
    assert_eq!(sorted_pairs(&done), [(1, Outcome::TimedOut)]);
    let ready = EventCounter::with_count(1);
    context
        .submit_with_deadline(&ready, Events::IN, 2, past)
        .unwrap();
    assert_eq!(
        sorted_pairs(&reap_all(&context)),
        [(2, Outcome::Ready(Events::IN))]
    );
    assert_eq!(Arc::strong_count(&flag), 1);
}

#[test]
fn a_deadline_request_can_be_cancelled_updated_and_outlived_by_its_context() {
    let context = StdContext::<4>::new();
    let flag = Flag::new();
    let later = Instant::now() + Duration::from_secs(3600);
    let handle = context
        .submit_with_deadline(&flag, Events::IN, 1, later)
        .unwrap();
    assert_eq!(context.update(handle, None, Some(2)), Ok(Updated::Waiting));
    assert_eq!(context.cancel(handle), Ok(InProgress));
    assert_eq!(sorted_pairs(&reap_all(&context)), [(2, Outcome::Cancelled)]);
    assert_eq!(Arc::strong_count(&flag), 1);
    context
        .submit_with_deadline(&flag, Events::IN, 3, later)
        .unwrap();
    assert_eq!(Arc::strong_count(&flag), 2);
    drop(context);
    assert_eq!(Arc::strong_count(&flag), 1);
    assert!(flag.queue.is_empty());
}

#[test]
fn sources_are_let_go_of_whoever_reaps_first() {
    // Requests with a deadline complete while their submitter is still
    // handing the source over (ready at submit, or past their deadline on
    // the context's thread), and other threads reap them: whichever comes
    // first, every source is let go of once, and nothing is left.
    let rounds: u64 = if cfg!(miri) { 30 } else { 5_000 };
    let context = StdContext::<8>::new();
    let flags: Vec<Arc<Flag>> = (0..4).map(|_| Flag::new()).collect();
    flags[0].raise(Events::IN);
    flags[1].raise(Events::IN);
    /// User data of the requests that are not counted.
    const OTHER: u64 = 1 << 63;
    let reaped = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for flag in &flags {
            let context = &context;
            scope.spawn(move || {
                for round in 0..rounds {
                    let past = Instant::now();
                    loop {
                        match context.submit_with_deadline(flag, Events::IN, round, past) {
                            Ok(_) => break,
                            Err(SubmitError::Busy) => std::thread::yield_now(),
                            Err(error) => panic!("{error}"),
                        }
                    }
                    if let Ok(handle) = context.submit(flag, Events::PRI, OTHER) {
                        let _ = context.cancel(handle);
                    }
                }
            });
        }
        for _ in 0..2 {
            scope.spawn(|| {
                while u64::from(reaped.load(Ordering::SeqCst)) < 4 * rounds {
                    let done = context
                        .get_events(1, 8, Some(Duration::from_millis(1)))
                        .unwrap();
                    let counted = done
                        .iter()
                        .filter(|completion| completion.user_data != OTHER)
                        .inspect(|completion| {
                            assert!(matches!(
                                completion.outcome,
                                Outcome::TimedOut | Outcome::Ready(Events::IN)
                            ))
                        })
                        .count();
                    reaped.fetch_add(counted as u32, Ordering::SeqCst);
                }
            });
        }
    });
    reap_all(&context);
    assert_eq!(context.in_use(), 0);
    for flag in &flags {
        assert_eq!(Arc::strong_count(flag), 1);
        assert!(flag.queue.is_empty());
    }
}

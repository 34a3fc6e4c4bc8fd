//! `IrqEvent` and a `CortexMLocks` context shared by threads: one thread
//! submits and reaps (thread mode), one raises, clears and raises unkeyed
//! (the interrupt handler), one runs the deferred work (the pended
//! interrupt). Every request completes exactly once, whatever the
//! interleaving.
//!
//! On the host the critical section is one global mutex (reentrant per
//! thread), so the threads take turns in it, as a second core does where
//! the critical section spans cores. Bounded: a fixed number of requests,
//! each waited for before the next; the other two threads stop when the
//! last one is reaped. No sleeps, no time limits.

mod support;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use aiopoll_cortex_m::aiopoll::{Context, Events, Outcome};
use aiopoll_cortex_m::{CortexMLocks, IrqEvent};
use support::{reap_all, Counting};

const REQUESTS: u64 = if cfg!(miri) { 60 } else { 5_000 };

#[test]
fn every_request_completes_once_under_a_concurrent_raiser_and_deferred_work() {
    let event = IrqEvent::new();
    let context = pin!(Context::<'_, 8, CortexMLocks, 1, Counting>::with_hooks(
        Counting::new()
    ));
    let context = context.as_ref();
    let done = AtomicBool::new(false);
    let mut seen = vec![0u32; REQUESTS as usize];
    let account = |seen: &mut Vec<u32>| {
        for completion in reap_all(&context) {
            assert!(
                matches!(completion.outcome, Outcome::Ready(events) if !events.is_empty()),
                "{completion:?}"
            );
            seen[completion.user_data as usize] += 1;
        }
    };

    thread::scope(|scope| {
        // The interrupt handler: raises until thread mode is done.
        scope.spawn(|| {
            let mut i = 0u64;
            while !done.load(Ordering::Acquire) {
                match i % 5 {
                    0 => event.raise(Events::IN),
                    1 => event.raise_unkeyed(Events::IN),
                    2 => {
                        event.clear(Events::IN | Events::OUT);
                        0
                    }
                    3 => event.raise_unkeyed(Events::OUT),
                    _ => event.raise(Events::OUT),
                };
                i += 1;
                thread::yield_now();
            }
        });
        // The pended interrupt: deferred work, until thread mode is done.
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                context.run_deferred();
                thread::yield_now();
            }
        });
        // Thread mode: takes what is raised (handles it), submits, and
        // waits for that request before the next; reaping also runs
        // deferred work.
        for user_data in 0..REQUESTS {
            let events = if user_data % 2 == 0 {
                Events::IN
            } else {
                Events::OUT
            };
            event.take();
            context.submit(&event, events, user_data).unwrap();
            while seen[user_data as usize] == 0 {
                account(&mut seen);
                thread::yield_now();
            }
        }
        done.store(true, Ordering::Release);
    });
    account(&mut seen);
    assert_eq!(context.in_use(), 0);
    assert!(event.queue().is_empty());
    let missing_or_twice: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, &count)| count != 1)
        .collect();
    assert!(missing_or_twice.is_empty(), "{missing_or_twice:?}");
    assert_eq!(context.hooks().completed() as u64, REQUESTS);
    let stats = context.stats();
    assert_eq!(u64::from(stats.submitted), REQUESTS);
    assert_eq!(u64::from(stats.reaped), REQUESTS);
    assert_eq!(
        u64::from(
            stats.completed_at_submit
                + stats.completed_by_wakeup
                + stats.completed_by_deferred_work
        ),
        REQUESTS
    );
}

//! `IrqEvent` driven by a core `Context` with the adapter's locks
//! (`CortexMLocks`), single-threaded: what an interrupt handler's `raise`
//! does to the requests waiting on it.
//!
//! `CeilingLocks` cannot take part here: its context lock reads and writes
//! BASEPRI, and cortex-m's register wrappers panic off a Cortex-M
//! core. Its claim logic is unit-tested against a model of the
//! register in `src/lock.rs`. The `PendInterrupt`/`PendSv` hooks touch the
//! NVIC/SCB and `SEV`, which do not exist here either: the tests count
//! notifications with `support::Counting` instead.

mod support;

use std::pin::pin;

use aiopoll_cortex_m::aiopoll::{CancelError, Completion, Context, Events, Outcome};
use aiopoll_cortex_m::{CortexMLocks, IrqEvent};
use support::{reap_all, Counting};

type IrqContext<'s, const N: usize> = Context<'s, N, CortexMLocks, 1, Counting>;

fn ready(user_data: u64, events: Events) -> Completion {
    Completion {
        user_data,
        outcome: Outcome::Ready(events),
        ..Completion::EMPTY
    }
}

fn gone(user_data: u64) -> Completion {
    Completion {
        user_data,
        outcome: Outcome::SourceGone,
        ..Completion::EMPTY
    }
}

#[test]
fn raise_wakes_a_matching_request_and_completes_it_inline() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 7).unwrap();
    assert_eq!(event.queue().len(), 1);
    assert_eq!(context.completions(), 0);

    assert_eq!(event.raise(Events::IN | Events::OUT), 1);
    // Completed by the raise itself: no deferred work, off the queue, the
    // result is the key ∩ what was asked for.
    assert_eq!(context.completions(), 1);
    assert!(!context.has_deferred_work());
    assert!(event.queue().is_empty());
    assert_eq!(context.hooks().deferred_work(), 0);
    assert_eq!(context.hooks().completed(), 1);
    assert_eq!(context.stats().completed_by_wakeup, 1);
    // The state is set as well as the wakeup sent.
    assert_eq!(event.events(), Events::IN | Events::OUT);
    assert_eq!(reap_all(&context), [ready(7, Events::IN)]);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn raise_that_misses_the_mask_leaves_the_request_waiting() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();

    assert_eq!(event.raise(Events::OUT), 0);
    assert_eq!(event.queue().len(), 1);
    assert!(!context.has_deferred_work());
    assert!(reap_all(&context).is_empty());
    assert_eq!(event.events(), Events::OUT);

    // Still waiting, and the next matching raise completes it.
    assert_eq!(event.raise(Events::IN), 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
}

#[test]
fn err_and_hup_wake_every_request() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    context.as_ref().submit(&event, Events::OUT, 2).unwrap();
    assert_eq!(event.raise(Events::ERR), 2);
    assert_eq!(
        reap_all(&context),
        [ready(1, Events::ERR), ready(2, Events::ERR)]
    );
}

#[test]
fn raise_wakes_only_the_requests_it_matches() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    context.as_ref().submit(&event, Events::OUT, 2).unwrap();
    context
        .as_ref()
        .submit(&event, Events::IN | Events::PRI, 3)
        .unwrap();

    assert_eq!(event.raise(Events::IN), 2);
    assert_eq!(
        reap_all(&context),
        [ready(1, Events::IN), ready(3, Events::IN)]
    );
    assert_eq!(event.queue().len(), 1);
    assert_eq!(event.raise(Events::OUT), 1);
    assert_eq!(reap_all(&context), [ready(2, Events::OUT)]);
}

#[test]
fn raised_events_complete_a_request_at_submit() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    event.raise(Events::IN);
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    assert!(event.queue().is_empty());
    assert_eq!(context.stats().completed_at_submit, 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);

    // Raised but not asked for: it waits.
    context.as_ref().submit(&event, Events::OUT, 2).unwrap();
    assert_eq!(event.queue().len(), 1);
    assert!(reap_all(&context).is_empty());
}

#[test]
fn raising_no_events_wakes_nobody() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    // An empty key must not turn into an unkeyed wakeup (a re-poll of every
    // waiter through deferred work).
    assert_eq!(event.raise(Events::empty()), 0);
    assert!(!context.has_deferred_work());
    assert_eq!(context.hooks().deferred_work(), 0);
    assert_eq!(context.stats().deferrals, 0);
    assert_eq!(event.queue().len(), 1);
}

#[test]
fn raise_unkeyed_goes_through_deferred_work() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();

    assert_eq!(event.raise_unkeyed(Events::IN), 1);
    // Not completed by the wakeup: handed to deferred work, which was asked
    // for once.
    assert_eq!(context.completions(), 0);
    assert!(context.has_deferred_work());
    assert_eq!(context.hooks().deferred_work(), 1);
    assert_eq!(event.events(), Events::IN);

    assert_eq!(context.run_deferred(), 1);
    assert!(!context.has_deferred_work());
    assert!(event.queue().is_empty());
    assert_eq!(context.stats().completed_by_deferred_work, 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
}

#[test]
fn a_deferred_interrupt_wakeup_wins_against_a_cancel_before_the_deferred_work_ran() {
    // Issue 10, item 1 on firmware: the handler's wakeup had to defer (here
    // unkeyed; a held context lock or a second queue do the same), and
    // thread mode cancels before the pended deferred-work interrupt ran.
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    let handle = context.as_ref().submit(&event, Events::IN, 1).unwrap();
    event.raise_unkeyed(Events::IN);
    assert_eq!(context.hooks().deferred_work(), 1);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    // The pended interrupt runs later and finds nothing left to do.
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
    assert_eq!(context.stats().cancelled, 0);
}

#[test]
fn reap_runs_the_deferred_work_of_raise_unkeyed() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    event.raise_unkeyed(Events::IN | Events::OUT);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
    assert!(!context.has_deferred_work());
}

#[test]
fn spurious_unkeyed_raise_rearms_the_request() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();

    // Raised, then handled before the deferred work ran: the re-poll finds
    // nothing and the request stays armed on the queue.
    event.raise_unkeyed(Events::IN);
    event.clear(Events::IN);
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(context.stats().spurious, 1);
    assert_eq!(event.queue().len(), 1);
    assert!(reap_all(&context).is_empty());

    // An unkeyed raise of something it did not ask for: re-polled, not
    // ready for it, re-armed.
    event.raise_unkeyed(Events::OUT);
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(context.stats().spurious, 2);
    assert_eq!(event.queue().len(), 1);

    // Re-armed means still woken: a keyed raise completes it inline.
    assert_eq!(event.raise(Events::IN), 1);
    assert_eq!(context.stats().completed_by_wakeup, 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
}

#[test]
fn clear_take_and_events() {
    let event: IrqEvent = IrqEvent::default();
    assert_eq!(event.events(), Events::empty());
    event.raise(Events::IN | Events::PRI);
    event.raise(Events::OUT);
    assert_eq!(event.events(), Events::IN | Events::PRI | Events::OUT);

    event.clear(Events::PRI);
    assert_eq!(event.events(), Events::IN | Events::OUT);
    // Clearing what is not raised changes nothing.
    event.clear(Events::HUP);
    assert_eq!(event.events(), Events::IN | Events::OUT);
    // `events` only reads.
    assert_eq!(event.events(), Events::IN | Events::OUT);

    assert_eq!(event.take(), Events::IN | Events::OUT);
    assert_eq!(event.events(), Events::empty());
    assert_eq!(event.take(), Events::empty());

    event.raise_unkeyed(Events::RDHUP);
    assert_eq!(event.take(), Events::RDHUP);
}

#[test]
fn a_cleared_event_no_longer_completes_new_requests() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    event.raise(Events::IN);
    assert_eq!(event.take(), Events::IN);
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    assert!(reap_all(&context).is_empty());
    assert_eq!(event.queue().len(), 1);
}

#[test]
fn cancel_and_a_later_raise_complete_the_request_once() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    let handle = context.as_ref().submit(&event, Events::IN, 1).unwrap();
    assert!(context.cancel(handle).is_ok());
    assert!(event.queue().is_empty());
    assert_eq!(event.raise(Events::IN), 0);
    event.raise_unkeyed(Events::IN);
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 1,
            outcome: Outcome::Cancelled,
            ..Completion::EMPTY
        }]
    );
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(context.hooks().completed(), 1);
}

#[test]
fn a_raise_after_an_unkeyed_raise_joins_its_deferred_work() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    let handle = context.as_ref().submit(&event, Events::IN, 1).unwrap();
    // Deferred first: the keyed raise after it joins that deferred work
    // (which re-polls after the raise) instead of completing it inline.
    event.raise_unkeyed(Events::IN);
    assert_eq!(event.raise(Events::IN), 1);
    assert_eq!(context.completions(), 0);
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(context.hooks().completed(), 1);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_close_after_an_unkeyed_raise_completes_the_request_once() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    let handle = context.as_ref().submit(&event, Events::IN, 1).unwrap();
    // Deferred first, then completed inline by the close (a pending
    // re-poll does not stop that): the deferred work must find it done and
    // leave it alone.
    event.raise_unkeyed(Events::IN);
    assert_eq!(event.queue().close(), 1);
    assert_eq!(context.completions(), 1);
    assert!(context.has_deferred_work());
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(reap_all(&context), [gone(1)]);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(context.hooks().completed(), 1);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn closing_the_queue_completes_waiters_once_with_source_gone() {
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<4>::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    context.as_ref().submit(&event, Events::OUT, 2).unwrap();
    assert_eq!(event.queue().close(), 2);
    assert_eq!(event.raise(Events::IN | Events::OUT), 0);
    assert_eq!(reap_all(&context), [gone(1), gone(2)]);

    // Closed for good: a new request finds it gone at submit (once nothing
    // it asks for is raised: ready events win over a closed queue).
    event.take();
    context.as_ref().submit(&event, Events::IN, 3).unwrap();
    assert_eq!(reap_all(&context), [gone(3)]);

    // Reopened (a peripheral back after a reset): requests wait again.
    assert!(event.queue().reopen());
    context.as_ref().submit(&event, Events::IN, 4).unwrap();
    assert!(reap_all(&context).is_empty());
    event.raise(Events::IN);
    assert_eq!(reap_all(&context), [ready(4, Events::IN)]);
    assert_eq!(context.hooks().completed(), 4);
}

#[test]
fn many_requests_each_complete_exactly_once() {
    const N: usize = 8;
    let event = IrqEvent::new();
    let context = pin!(IrqContext::<N>::with_hooks(Counting::new()));
    let mut seen = [0u32; 64];
    let mut next = 0u64;
    // Rounds of submit-until-full, then a mix of raises, unkeyed raises,
    // clears and cancels; every request is accounted for exactly once.
    for round in 0..8u64 {
        let mut handles = Vec::new();
        while context.in_use() < N {
            let events = if next.is_multiple_of(3) {
                Events::OUT
            } else {
                Events::IN
            };
            handles.push(context.as_ref().submit(&event, events, next).unwrap());
            next += 1;
        }
        match round % 4 {
            0 => {
                event.raise(Events::IN);
            }
            1 => {
                event.raise_unkeyed(Events::OUT);
            }
            2 => {
                event.raise_unkeyed(Events::IN);
                event.clear(Events::IN);
                context.run_deferred();
                for handle in handles.iter().step_by(2) {
                    let _ = context.cancel(*handle);
                }
            }
            _ => {
                event.raise(Events::HUP);
            }
        }
        for completion in reap_all(&context) {
            seen[completion.user_data as usize] += 1;
        }
        event.take();
    }
    // Whatever is left: one raise for everything.
    event.raise(Events::IN | Events::OUT);
    for completion in reap_all(&context) {
        seen[completion.user_data as usize] += 1;
    }
    assert_eq!(context.in_use(), 0);
    assert!(event.queue().is_empty());
    assert!(next > 8, "{next}");
    assert!(
        seen[..next as usize].iter().all(|&count| count == 1),
        "{seen:?}"
    );
    assert_eq!(context.hooks().completed(), next as usize);
    assert_eq!(context.stats().reaped as u64, next);
}

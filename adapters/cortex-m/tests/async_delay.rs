//! `AsyncDelay`: embedded-hal-async's `DelayNs` on `Ticks`, with the test
//! playing the executor (a counting waker), the timer interrupt
//! (`Ticks::tick`) and the pended interrupt that runs deferred work
//! (`run_deferred`). Timeouts are made by dropping a request future when
//! the delay wins, as `select` does.

mod support;

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use aiopoll_cortex_m::aiopoll::{Context, Events, Outcome};
use aiopoll_cortex_m::{AsyncDelay, CortexMLocks, IrqEvent, Ticks};
use embedded_hal_async::delay::DelayNs;
use support::task::Task;
use support::Counting;

type DelayContext<'s> = Context<'s, 4, CortexMLocks, 1, Counting>;

/// Plays the timer until `future` resolves: a tick, then the pended
/// interrupt's deferred work, then a poll if the task was woken. Checks
/// that the task is woken only when the future can make progress (once,
/// here: when its deadline's request completes) and returns the ticks it
/// took.
fn ticks_until_ready<const N: usize>(
    ticks: &Ticks,
    context: &Context<'_, N, CortexMLocks, 1, Counting>,
    task: &Task,
    mut future: Pin<&mut impl Future<Output = ()>>,
) -> u32 {
    if task.poll(future.as_mut()).is_ready() {
        return 0;
    }
    for elapsed in 1..=1000 {
        let wakes = task.wakes();
        ticks.tick();
        // Unkeyed: the tick interrupt wakes nobody itself.
        assert_eq!(task.wakes(), wakes, "tick {elapsed}");
        context.run_deferred();
        if task.wakes() > wakes {
            assert_eq!(task.wakes(), wakes + 1);
            if task.poll(future.as_mut()).is_ready() {
                return elapsed;
            }
        }
    }
    panic!("the delay did not end within 1000 ticks");
}

#[test]
fn a_zero_delay_resolves_at_the_first_poll_without_a_request() {
    let ticks = Ticks::new();
    let context = pin!(DelayContext::with_hooks(Counting::new()));
    let mut delay = AsyncDelay::new(context.as_ref(), &ticks, 1000);
    let task = Task::new();
    assert!(task.poll(pin!(delay.delay_ns(0))).is_ready());
    assert!(task.poll(pin!(delay.delay_us(0))).is_ready());
    assert!(task.poll(pin!(delay.delay_ms(0))).is_ready());
    assert!(task.poll(pin!(delay.delay_ticks(0))).is_ready());
    assert_eq!(context.stats().submitted, 0);
}

#[test]
fn a_delay_waits_whole_ticks_plus_the_one_under_way() {
    for (tick_ns, ns, expected) in [
        (1000, 1, 2),    // rounds up to one tick, plus the partial one
        (1000, 1000, 2), // exactly one tick
        (1000, 2500, 4), // three ticks
        (0, 3, 4),       // a zero tick length is one nanosecond
    ] {
        let ticks = Ticks::new();
        let context = pin!(DelayContext::with_hooks(Counting::new()));
        let mut delay = AsyncDelay::new(context.as_ref(), &ticks, tick_ns);
        let task = Task::new();
        let elapsed = ticks_until_ready(&ticks, &context, &task, pin!(delay.delay_ns(ns)));
        assert_eq!(elapsed, expected, "{tick_ns} ns ticks, {ns} ns");
        // One request, awaited; its re-checks before the deadline were
        // spurious and woke nobody.
        let stats = context.stats();
        assert_eq!((stats.submitted, stats.awaited), (1, 1));
        assert_eq!(stats.spurious, expected - 1);
        assert_eq!(context.in_use(), 0);
    }
}

#[test]
fn delay_us_and_delay_ms_convert_to_ticks() {
    let ticks = Ticks::new();
    let context = pin!(DelayContext::with_hooks(Counting::new()));
    // 1 ms ticks.
    let mut delay = AsyncDelay::new(context.as_ref(), &ticks, 1_000_000);
    let task = Task::new();
    assert_eq!(
        ticks_until_ready(&ticks, &context, &task, pin!(delay.delay_ms(3))),
        4
    );
    assert_eq!(
        ticks_until_ready(&ticks, &context, &task, pin!(delay.delay_us(1500))),
        3
    );
    assert_eq!(ticks.now(), 7);
}

#[test]
fn dropping_a_delay_cancels_its_request() {
    let ticks = Ticks::new();
    let context = pin!(DelayContext::with_hooks(Counting::new()));
    let delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
    let task = Task::new();
    {
        let mut wait = pin!(delay.delay_ticks(10));
        assert!(task.poll(wait.as_mut()).is_pending());
        assert_eq!(context.in_use(), 1);
    }
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().cancelled, 1);
    // Nobody left waiting on the ticks.
    assert_eq!(ticks.tick(), 0);
    assert_eq!(task.wakes(), 0);
}

/// A request raced against a delay, as `select` does it: whichever
/// resolves first wins and the other future is dropped.
#[derive(Debug, PartialEq)]
enum Race {
    Event(Outcome),
    TimedOut,
}

fn race(
    task: &Task,
    request: Pin<
        &mut impl Future<Output = Result<Outcome, aiopoll_cortex_m::aiopoll::SubmitError>>,
    >,
    timeout: Pin<&mut impl Future<Output = ()>>,
) -> Poll<Race> {
    if let Poll::Ready(outcome) = task.poll(request) {
        return Poll::Ready(Race::Event(outcome.unwrap()));
    }
    task.poll(timeout).map(|()| Race::TimedOut)
}

#[test]
fn a_timeout_drops_the_request_it_raced() {
    static EVENT: IrqEvent = IrqEvent::new();
    let ticks = Ticks::new();
    let context = pin!(DelayContext::with_hooks(Counting::new()));
    let delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
    let task = Task::new();
    let outcome = {
        let mut request = pin!(context.as_ref().request(&EVENT, Events::IN));
        let mut timeout = pin!(delay.delay_ticks(2));
        assert!(race(&task, request.as_mut(), timeout.as_mut()).is_pending());
        assert_eq!(context.in_use(), 2);
        let mut outcome = Poll::Pending;
        for _ in 0..3 {
            ticks.tick();
            context.run_deferred();
            outcome = race(&task, request.as_mut(), timeout.as_mut());
            if outcome.is_ready() {
                break;
            }
        }
        outcome
        // Both futures dropped here: the request is cancelled.
    };
    assert_eq!(outcome, Poll::Ready(Race::TimedOut));
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().cancelled, 1);
    assert!(EVENT.queue().is_empty());
    // An event raised now finds nobody.
    assert_eq!(EVENT.raise(Events::IN), 0);
}

#[test]
fn an_event_before_the_timeout_wins_and_the_delay_is_dropped() {
    let event = IrqEvent::new();
    let ticks = Ticks::new();
    let context = pin!(DelayContext::with_hooks(Counting::new()));
    let delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
    let task = Task::new();
    let outcome = {
        let mut request = pin!(context.as_ref().request(&event, Events::IN));
        let mut timeout = pin!(delay.delay_ticks(5));
        assert!(race(&task, request.as_mut(), timeout.as_mut()).is_pending());
        ticks.tick();
        context.run_deferred();
        assert_eq!(task.wakes(), 0);
        // A keyed wakeup from the interrupt completes the request inline
        // and wakes the task from there.
        assert_eq!(event.raise(Events::IN), 1);
        assert_eq!(task.wakes(), 1);
        race(&task, request.as_mut(), timeout.as_mut())
    };
    assert_eq!(
        outcome,
        Poll::Ready(Race::Event(Outcome::Ready(Events::IN)))
    );
    assert_eq!(context.in_use(), 0);
    // The delay's request was cancelled: the tick queue is empty.
    assert_eq!(context.stats().cancelled, 1);
    assert_eq!(ticks.tick(), 0);
}

#[test]
fn delays_share_a_context_and_wait_for_a_slot_when_it_is_full() {
    let ticks = Ticks::new();
    let context = pin!(Context::<'_, 2, CortexMLocks, 1, Counting>::with_hooks(
        Counting::new()
    ));
    // One delay shared by three waits (`delay_ticks` takes `&self`), and a
    // copy of it.
    let delay = AsyncDelay::new(context.as_ref(), &ticks, 1);
    let copy = delay;
    let tasks = [Task::new(), Task::new(), Task::new()];
    let mut waits = [
        pin!(delay.delay_ticks(1)),
        pin!(delay.delay_ticks(1)),
        pin!(copy.delay_ticks(1)),
    ];
    let mut ended_at = [None; 3];
    for (index, wait) in waits.iter_mut().enumerate() {
        assert!(tasks[index].poll(wait.as_mut()).is_pending());
    }
    // Two slots: the third wait waits for one.
    assert_eq!(context.in_use(), 2);
    for tick in 1..=4 {
        ticks.tick();
        context.run_deferred();
        for (index, wait) in waits.iter_mut().enumerate() {
            if ended_at[index].is_none()
                && tasks[index].wakes() > 0
                && tasks[index].poll(wait.as_mut()).is_ready()
            {
                ended_at[index] = Some(tick);
            }
        }
    }
    // Each ends after 1 tick and the one under way. The third's deadline
    // was set when it was first polled, so waiting for a slot did not
    // lengthen it: it submitted when the first two freed theirs, found its
    // deadline reached, and completed at submit.
    assert_eq!(ended_at, [Some(2), Some(2), Some(2)]);
    assert_eq!(context.in_use(), 0);
    let stats = context.stats();
    assert_eq!((stats.awaited, stats.completed_at_submit), (3, 1));
}

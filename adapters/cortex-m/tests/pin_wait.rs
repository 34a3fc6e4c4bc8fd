//! `WaitPin`: embedded-hal-async's `digital::Wait` on a `PinSource`, with
//! the test playing the executor (a counting waker), the pin's edge
//! interrupt (`on_edge`) and the pended interrupt that runs deferred work
//! (`run_deferred`).

mod support;

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use aiopoll_cortex_m::aiopoll::{Context, Outcome, SubmitError};
use aiopoll_cortex_m::{Active, CortexMLocks, PinSource, WaitError, WaitPin};
use embedded_hal::digital::{Error, ErrorKind};
use embedded_hal_async::digital::Wait;
use support::pins::{FakePin, Wires};
use support::task::Task;
use support::Counting;

type PinContext<'s> = Context<'s, 4, CortexMLocks, 1, Counting>;

/// The edge interrupt after the pin moved to `high`.
fn edge(wires: &Wires, source: &PinSource<FakePin<'_>>, high: bool) {
    wires.set_high(high);
    source.on_edge();
}

#[test]
fn a_wait_for_a_level_the_pin_is_at_resolves_at_the_first_poll() {
    for high in [true, false] {
        let wires = Wires::new(high);
        let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
        let context = pin!(PinContext::with_hooks(Counting::new()));
        let mut button = WaitPin::new(context.as_ref(), &source);
        let task = Task::new();
        let result = if high {
            task.poll(pin!(button.wait_for_high()))
        } else {
            task.poll(pin!(button.wait_for_low()))
        };
        assert_eq!(result, Poll::Ready(Ok(())), "{high}");
        assert_eq!(task.wakes(), 0);
        let stats = context.stats();
        assert_eq!(
            (stats.submitted, stats.completed_at_submit, stats.awaited),
            (1, 1, 1)
        );
        assert_eq!(context.in_use(), 0);
    }
}

#[test]
fn a_wait_for_high_is_woken_by_the_deferred_work_after_the_edge() {
    let wires = Wires::new(false);
    // The source's `active` setting plays no part in the waits.
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::Low);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let mut wait = pin!(button.wait_for_high());
    assert!(task.poll(wait.as_mut()).is_pending());
    assert_eq!(context.in_use(), 1);

    wires.set_high(true);
    // The edge interrupt: an unkeyed wakeup, handed to deferred work; the
    // task is not woken from the edge handler itself.
    assert_eq!(source.on_edge(), 1);
    assert_eq!(task.wakes(), 0);
    assert_eq!(context.hooks().deferred_work(), 1);
    // The pended interrupt re-reads the pin and wakes the task.
    assert_eq!(context.run_deferred(), 1);
    assert_eq!(task.wakes(), 1);
    assert_eq!(task.poll(wait.as_mut()), Poll::Ready(Ok(())));
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().awaited, 1);
    // Nobody left on the pin's queue.
    assert_eq!(source.on_edge(), 0);
}

#[test]
fn a_bounce_that_is_gone_again_does_not_wake_the_task() {
    let wires = Wires::new(true);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let mut wait = pin!(button.wait_for_low());
    assert!(task.poll(wait.as_mut()).is_pending());

    // Low for an instant: high again when the deferred work reads it.
    wires.set_high(false);
    source.on_edge();
    wires.set_high(true);
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(context.stats().spurious, 1);
    assert_eq!(task.wakes(), 0);
    assert!(task.poll(wait.as_mut()).is_pending());

    edge(&wires, &source, false);
    context.run_deferred();
    assert_eq!(task.wakes(), 1);
    assert_eq!(task.poll(wait.as_mut()), Poll::Ready(Ok(())));
}

/// Drives an edge wait that starts at level `start`: the pin goes
/// `!start`, then `start`, then `!start` again; returns after which step
/// the wait resolved (1, 2 or 3), checking that the task was woken
/// exactly when its request completed.
fn edge_wait_resolves_after(start: bool, kind: Edge) -> usize {
    let wires = Wires::new(start);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let mut wait = pin!(async {
        match kind {
            Edge::Rising => button.wait_for_rising_edge().await,
            Edge::Falling => button.wait_for_falling_edge().await,
            Edge::Any => button.wait_for_any_edge().await,
        }
    });
    assert!(task.poll(wait.as_mut()).is_pending());
    let mut level = start;
    for step in 1..=3 {
        level = !level;
        let wakes = task.wakes();
        edge(&wires, &source, level);
        context.run_deferred();
        // Woken once: the request that was waiting completed.
        assert_eq!(task.wakes(), wakes + 1, "step {step}");
        if let Poll::Ready(result) = task.poll(wait.as_mut()) {
            assert_eq!(result, Ok(()));
            assert_eq!(context.in_use(), 0);
            return step;
        }
        // The next phase's request waits.
        assert_eq!(context.in_use(), 1, "step {step}");
    }
    panic!("the edge wait never resolved");
}

#[derive(Clone, Copy)]
enum Edge {
    Rising,
    Falling,
    Any,
}

#[test]
fn a_rising_edge_is_low_then_high() {
    // From low: the first edge up.
    assert_eq!(edge_wait_resolves_after(false, Edge::Rising), 1);
    // From high: down first, then up.
    assert_eq!(edge_wait_resolves_after(true, Edge::Rising), 2);
}

#[test]
fn a_falling_edge_is_high_then_low() {
    assert_eq!(edge_wait_resolves_after(true, Edge::Falling), 1);
    assert_eq!(edge_wait_resolves_after(false, Edge::Falling), 2);
}

#[test]
fn any_edge_is_the_first_change_of_level() {
    assert_eq!(edge_wait_resolves_after(true, Edge::Any), 1);
    assert_eq!(edge_wait_resolves_after(false, Edge::Any), 1);
}

#[test]
fn a_rising_edge_already_high_needs_a_new_one() {
    // High at the start, and a wakeup that finds it still high: nothing.
    let wires = Wires::new(true);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let mut wait = pin!(button.wait_for_rising_edge());
    assert!(task.poll(wait.as_mut()).is_pending());
    edge(&wires, &source, true);
    context.run_deferred();
    assert_eq!(task.wakes(), 0);
    assert!(task.poll(wait.as_mut()).is_pending());
}

#[test]
fn every_wait_on_a_pin_that_cannot_be_read_is_a_read_error() {
    let wires = Wires::new(false);
    wires.failing.store(true, Ordering::SeqCst);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let read = Poll::Ready(Err(WaitError::Read));
    assert_eq!(task.poll(pin!(button.wait_for_high())), read);
    assert_eq!(task.poll(pin!(button.wait_for_low())), read);
    assert_eq!(task.poll(pin!(button.wait_for_rising_edge())), read);
    assert_eq!(task.poll(pin!(button.wait_for_falling_edge())), read);
    assert_eq!(task.poll(pin!(button.wait_for_any_edge())), read);
    assert_eq!(context.in_use(), 0);
    // Four were requests (ERR is always ready); any-edge failed its read
    // before it asked.
    assert_eq!(context.stats().awaited, 4);
}

#[test]
fn a_pin_that_starts_failing_ends_the_wait_with_a_read_error() {
    let wires = Wires::new(false);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    let mut wait = pin!(button.wait_for_high());
    assert!(task.poll(wait.as_mut()).is_pending());
    wires.failing.store(true, Ordering::SeqCst);
    source.on_edge();
    context.run_deferred();
    assert_eq!(task.wakes(), 1);
    assert_eq!(task.poll(wait.as_mut()), Poll::Ready(Err(WaitError::Read)));
}

#[test]
fn dropping_a_wait_cancels_its_request() {
    let wires = Wires::new(false);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    let mut button = WaitPin::new(context.as_ref(), &source);
    let task = Task::new();
    {
        let mut wait = pin!(button.wait_for_rising_edge());
        assert!(task.poll(wait.as_mut()).is_pending());
        assert_eq!(context.in_use(), 1);
    }
    assert_eq!(context.in_use(), 0);
    assert_eq!(context.stats().cancelled, 1);
    // Nothing left on the pin's queue; nothing wakes the task.
    assert_eq!(source.on_edge(), 0);
    assert_eq!(task.wakes(), 0);
    // The pin can be waited on again.
    wires.set_high(true);
    assert_eq!(task.poll(pin!(button.wait_for_high())), Poll::Ready(Ok(())));
}

#[test]
fn a_wait_in_a_full_context_waits_for_a_slot() {
    let (first_wires, second_wires) = (Wires::new(false), Wires::new(true));
    let first: PinSource<_> = PinSource::new(first_wires.pin(), Active::High);
    let second: PinSource<_> = PinSource::new(second_wires.pin(), Active::High);
    let context = pin!(Context::<'_, 1, CortexMLocks, 1, Counting>::with_hooks(
        Counting::new()
    ));
    let (mut a, mut b) = (
        WaitPin::new(context.as_ref(), &first),
        WaitPin::new(context.as_ref(), &second),
    );
    let (task_a, task_b) = (Task::new(), Task::new());
    let mut wait_a = pin!(a.wait_for_high());
    let mut wait_b = pin!(b.wait_for_high());
    assert!(task_a.poll(wait_a.as_mut()).is_pending());
    // The one slot is taken: B waits for it (and is not refused Busy).
    assert!(task_b.poll(wait_b.as_mut()).is_pending());
    assert_eq!(context.in_use(), 1);

    edge(&first_wires, &first, true);
    context.run_deferred();
    assert_eq!(task_a.wakes(), 1);
    assert_eq!(task_a.poll(wait_a.as_mut()), Poll::Ready(Ok(())));
    // A's slot freed: B was woken to submit, and its pin is high already.
    assert_eq!(task_b.wakes(), 1);
    assert_eq!(task_b.poll(wait_b.as_mut()), Poll::Ready(Ok(())));
    assert_eq!(context.in_use(), 0);
}

#[test]
fn the_error_says_what_to_do() {
    assert_eq!(WaitError::Read.kind(), ErrorKind::Other);
    assert!(WaitError::Read.to_string().contains("check how the pin"));
    let refused = WaitError::Refused(SubmitError::TooManyQueues { limit: 1 });
    assert!(refused.to_string().contains("raise the context's `W`"));
    let ended = WaitError::Ended(Outcome::SourceGone);
    assert!(ended.to_string().contains("SourceGone"));
}

//! `Ticks`, `EngineDelay`, `reap_blocking` and `reap_across_cores` through
//! the public API, as far as the host allows.
//!
//! Sleeping is `WFI` inside `cortex_m::interrupt::free` (or `WFE`), which
//! only exist on a Cortex-M core (off one, cortex-m's wrappers
//! panic): a delay that waits, or a reap that finds nothing,
//! would panic here. So these tests cover what returns without sleeping; the waiting
//! itself is unit-tested with the interrupt played by the test: the
//! reap-or-sleep loop both reapers share in `src/wait.rs`, and deadlines,
//! rounding, wrap-around, long delays and a shared context in
//! `src/delay.rs`.

mod support;

use std::pin::{pin, Pin};

use aiopoll_cortex_m::aiopoll::{Completion, Context, Events, Outcome};
use aiopoll_cortex_m::{
    reap_across_cores, reap_blocking, CortexMLocks, EngineDelay, IrqEvent, Ticks,
};
use embedded_hal::delay::DelayNs;
use support::Counting;

#[test]
fn ticks_count_from_zero() {
    let ticks: Ticks = Ticks::new();
    assert_eq!(ticks.now(), 0);
    for expected in 1..=5 {
        // Nobody waits: nobody woken.
        assert_eq!(ticks.tick(), 0);
        assert_eq!(ticks.now(), expected);
    }
    let ticks: Ticks = Ticks::default();
    assert_eq!(ticks.now(), 0);
}

// `EngineDelay` borrows its context for as long as the context borrows the
// ticks (`Pin<&'t Context<'t, ..>>`), which only a context that is never
// dropped allows: statics, as in firmware.
type DelayContext = Context<'static, 1, CortexMLocks, 1, Counting>;

#[test]
fn a_zero_delay_returns_without_a_request() {
    static TICKS: Ticks = Ticks::new();
    static CONTEXT: DelayContext = Context::with_hooks(Counting::new());
    let context = Pin::static_ref(&CONTEXT);
    // Would sleep in WFI (and panic off a Cortex-M core) if it waited.
    let mut delay = EngineDelay::new(context, &TICKS, 1_000_000);
    delay.delay_ns(0);
    delay.delay_us(0);
    delay.delay_ms(0);
    // A zero tick length is one nanosecond, not a division by zero.
    let mut delay = EngineDelay::new(context, &TICKS, 0);
    delay.delay_ns(0);
    assert_eq!(context.stats().submitted, 0);
    assert_eq!(context.in_use(), 0);
    assert_eq!(TICKS.now(), 0);
}

/// The context the reaper tests use.
type TestContext<'s> = Context<'s, 4, CortexMLocks, 1, Counting>;

/// `reap_blocking` or `reap_across_cores`, for this test's context.
type Reaper = fn(&TestContext<'_>, &mut [Completion]) -> usize;

fn returns_a_waiting_completion_without_sleeping(reap: Reaper) {
    let event = IrqEvent::new();
    let context = pin!(TestContext::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    context.as_ref().submit(&event, Events::IN, 2).unwrap();
    event.raise(Events::IN);
    let mut out = [Completion::EMPTY; 1];
    assert_eq!(reap(&context, &mut out), 1);
    assert_eq!(out[0].user_data, 1);
    assert_eq!(reap(&context, &mut out), 1);
    assert_eq!(out[0].user_data, 2);
    assert_eq!(context.in_use(), 0);
}

fn runs_pending_deferred_work(reap: Reaper) {
    let event = IrqEvent::new();
    let context = pin!(TestContext::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 7).unwrap();
    event.raise_unkeyed(Events::IN);
    assert_eq!(context.completions(), 0);
    let mut out = [Completion::EMPTY; 4];
    assert_eq!(reap(&context, &mut out), 1);
    assert_eq!(
        (out[0].user_data, out[0].outcome),
        (7, Outcome::Ready(Events::IN))
    );
}

fn into_nothing_returns_zero_at_once(reap: Reaper) {
    let event = IrqEvent::new();
    let context = pin!(TestContext::with_hooks(Counting::new()));
    context.as_ref().submit(&event, Events::IN, 1).unwrap();
    // Nothing completed and nowhere to put it: returns instead of sleeping.
    assert_eq!(reap(&context, &mut []), 0);
    event.raise(Events::IN);
    assert_eq!(reap(&context, &mut []), 0);
    // The completion is still there for a real reap.
    assert_eq!(context.completions(), 1);
}

#[test]
fn reap_blocking_returns_a_waiting_completion_without_sleeping() {
    returns_a_waiting_completion_without_sleeping(reap_blocking);
}

#[test]
fn reap_blocking_runs_pending_deferred_work() {
    runs_pending_deferred_work(reap_blocking);
}

#[test]
fn reap_blocking_into_nothing_returns_zero_at_once() {
    into_nothing_returns_zero_at_once(reap_blocking);
}

#[test]
fn reap_across_cores_returns_a_waiting_completion_without_sleeping() {
    returns_a_waiting_completion_without_sleeping(reap_across_cores);
}

#[test]
fn reap_across_cores_runs_pending_deferred_work() {
    runs_pending_deferred_work(reap_across_cores);
}

#[test]
fn reap_across_cores_into_nothing_returns_zero_at_once() {
    into_nothing_returns_zero_at_once(reap_across_cores);
}

//! `PinSource` over fake `InputPin`s: readiness from the level, wakeups from
//! the edge interrupt (`on_edge`), read errors, and getting the pin back.

mod support;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aiopoll_cortex_m::aiopoll::{Completion, Context, Events, Outcome, PollTable, Source};
use aiopoll_cortex_m::{Active, CortexMLocks, PinSource};
use embedded_hal::digital::{ErrorKind, ErrorType, InputPin};
use support::{reap_all, Counting};

type PinContext<'s> = Context<'s, 4, CortexMLocks, 1, Counting>;

/// What a failing pin read reports.
#[derive(Debug)]
struct ReadFault;

impl embedded_hal::digital::Error for ReadFault {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A pin whose level (and whether reads fail) the test sets; counts reads.
struct FakePin<'a> {
    high: &'a AtomicBool,
    failing: &'a AtomicBool,
    reads: u32,
}

impl ErrorType for FakePin<'_> {
    type Error = ReadFault;
}

impl InputPin for FakePin<'_> {
    fn is_high(&mut self) -> Result<bool, ReadFault> {
        self.reads += 1;
        if self.failing.load(Ordering::SeqCst) {
            return Err(ReadFault);
        }
        Ok(self.high.load(Ordering::SeqCst))
    }

    fn is_low(&mut self) -> Result<bool, ReadFault> {
        self.is_high().map(|high| !high)
    }
}

/// A pin every read of which fails.
struct BrokenPin<'a> {
    reads: &'a AtomicU32,
}

impl ErrorType for BrokenPin<'_> {
    type Error = ReadFault;
}

impl InputPin for BrokenPin<'_> {
    fn is_high(&mut self) -> Result<bool, ReadFault> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Err(ReadFault)
    }

    fn is_low(&mut self) -> Result<bool, ReadFault> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Err(ReadFault)
    }
}

struct Wires {
    high: AtomicBool,
    failing: AtomicBool,
}

impl Wires {
    fn new(high: bool) -> Self {
        Wires {
            high: AtomicBool::new(high),
            failing: AtomicBool::new(false),
        }
    }

    fn pin(&self) -> FakePin<'_> {
        FakePin {
            high: &self.high,
            failing: &self.failing,
            reads: 0,
        }
    }

    fn set_high(&self, high: bool) {
        self.high.store(high, Ordering::SeqCst);
    }
}

fn ready(user_data: u64, events: Events) -> Completion {
    Completion {
        user_data,
        outcome: Outcome::Ready(events),
        ..Completion::EMPTY
    }
}

#[test]
fn readiness_follows_the_level_and_the_active_setting() {
    let wires = Wires::new(false);
    let active_high: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let active_low: PinSource<_> = PinSource::new(wires.pin(), Active::Low);
    assert_eq!(active_high.readiness(), Events::empty());
    assert_eq!(active_low.readiness(), Events::IN);
    wires.set_high(true);
    assert_eq!(active_high.readiness(), Events::IN);
    assert_eq!(active_low.readiness(), Events::empty());
    // `poll` reports the same.
    assert_eq!(
        active_high.poll(&mut PollTable::readiness_only()),
        Events::IN
    );
    assert_eq!(
        active_low.poll(&mut PollTable::readiness_only()),
        Events::empty()
    );
}

#[test]
fn a_pin_at_its_active_level_completes_a_request_at_submit() {
    let wires = Wires::new(true);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    assert_eq!(context.stats().completed_at_submit, 1);
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
}

#[test]
fn an_edge_wakes_the_waiters_to_reread_the_level() {
    let wires = Wires::new(false);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    context.as_ref().submit(&source, Events::IN, 2).unwrap();
    assert!(reap_all(&context).is_empty());

    wires.set_high(true);
    // Unkeyed: the edge handler does not know what the waiters asked for,
    // so they re-read the level in deferred work.
    assert_eq!(source.on_edge(), 2);
    assert_eq!(context.completions(), 0);
    assert!(context.has_deferred_work());
    // Asked for once per request whose work went from none to pending.
    assert_eq!(context.hooks().deferred_work(), 2);
    assert_eq!(context.run_deferred(), 2);
    assert_eq!(
        reap_all(&context),
        [ready(1, Events::IN), ready(2, Events::IN)]
    );
    // Nobody left to wake.
    assert_eq!(source.on_edge(), 0);
    assert!(!context.has_deferred_work());
}

#[test]
fn a_bounce_that_is_gone_again_completes_nothing() {
    let wires = Wires::new(true);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::Low);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    context.as_ref().submit(&source, Events::IN, 1).unwrap();

    // Low for an instant (the edge interrupt fires), high again by the
    // time the deferred work re-reads it.
    wires.set_high(false);
    assert_eq!(source.on_edge(), 1);
    wires.set_high(true);
    assert_eq!(context.run_deferred(), 0);
    assert_eq!(context.stats().spurious, 1);
    assert!(reap_all(&context).is_empty());

    // Still waiting: the next real edge completes it (reap runs the work).
    wires.set_high(false);
    source.on_edge();
    assert_eq!(reap_all(&context), [ready(1, Events::IN)]);
}

#[test]
fn a_read_error_is_reported_as_err_not_a_panic() {
    let reads = AtomicU32::new(0);
    for active in [Active::High, Active::Low] {
        let source: PinSource<_> = PinSource::new(BrokenPin { reads: &reads }, active);
        assert_eq!(source.readiness(), Events::ERR);
        // ERR is always waited for, so a request on a broken pin completes
        // at submit with ERR, whatever it asked for.
        let context = pin!(PinContext::with_hooks(Counting::new()));
        context.as_ref().submit(&source, Events::IN, 1).unwrap();
        assert_eq!(reap_all(&context), [ready(1, Events::ERR)]);
        context.as_ref().submit(&source, Events::OUT, 2).unwrap();
        assert_eq!(reap_all(&context), [ready(2, Events::ERR)]);
    }
    assert!(reads.load(Ordering::SeqCst) >= 6);
}

#[test]
fn a_pin_that_starts_failing_completes_its_waiters_with_err() {
    let wires = Wires::new(false);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    let context = pin!(PinContext::with_hooks(Counting::new()));
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    wires.failing.store(true, Ordering::SeqCst);
    assert_eq!(source.readiness(), Events::ERR);
    source.on_edge();
    assert_eq!(reap_all(&context), [ready(1, Events::ERR)]);

    // Working again: new requests see the level.
    wires.failing.store(false, Ordering::SeqCst);
    context.as_ref().submit(&source, Events::IN, 2).unwrap();
    assert!(reap_all(&context).is_empty());
}

#[test]
fn into_inner_gives_the_same_pin_back() {
    let wires = Wires::new(true);
    let source: PinSource<_> = PinSource::new(wires.pin(), Active::High);
    assert_eq!(source.readiness(), Events::IN);
    assert_eq!(source.readiness(), Events::IN);
    let mut pin = source.into_inner();
    // The very pin, with the reads the source made on it.
    assert_eq!(pin.reads, 2);
    assert!(core::ptr::eq(pin.high, &wires.high));
    assert!(pin.is_high().unwrap());
}

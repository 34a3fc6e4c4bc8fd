//! The round trips of `icount` on a context whose `Kinds` take queued
//! one-shot requests only (`QueuedOneShot`), in a firmware of their own: a
//! firmware that only submits, cancels and reaps has no context of another
//! kind, and the compiler's inlining of one context's code depends on what
//! else the firmware holds. Run by `cargo xtask size` beside `icount`, whose
//! peers' rows these are compared with. The three round-trip loops are
//! `icount`'s, written out here as there: moved into one shared function,
//! the harness's own code shifted every count by one or two instructions.
//! The steps on their own (submit, the interrupt-side wake, reap, cancel)
//! are the library's [`steps`], as in `icount`.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};

use aiopoll::{Completion, Context, Events, Outcome, QueuedOneShot};
use aiopoll_firmware_bench::{
    exit, measure, report, steps, timer, CortexMLocks, IrqEvent, BATCH, ITERATIONS,
};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;

static FLAG: IrqEvent = IrqEvent::new();
static SMALL: Context<'static, 4, CortexMLocks, 2, (), QueuedOneShot> = Context::new();
static FLAGS: [IrqEvent; BATCH] = [const { IrqEvent::new() }; BATCH];
static BIG: Context<'static, BATCH, CortexMLocks, 2, (), QueuedOneShot> = Context::new();
/// PendSV raises `FLAG` (else it does nothing).
static RAISE: AtomicBool = AtomicBool::new(false);

#[exception]
fn PendSV() {
    if RAISE.load(Ordering::Relaxed) {
        FLAG.raise(Events::IN);
    }
}

#[entry]
fn main() -> ! {
    timer::start();
    hprintln!("case\tinstructions/op\tnet of the empty loop");
    let empty = measure(|| {
        black_box(());
    });
    report(
        "empty loop (QueuedOneShot firmware)",
        empty,
        u64::from(ITERATIONS),
        0,
    );

    let small = Pin::static_ref(&SMALL);
    let mut out = [Completion::EMPTY; 1];
    let round_trip = measure(|| {
        let (flag, context) = black_box((&FLAG, small));
        let submitted = context.submit(flag, Events::IN, 1).is_ok();
        flag.raise(Events::IN);
        let reaped = context.reap(&mut out);
        flag.clear(Events::IN);
        black_box(submitted && reaped == 1);
    });
    report(
        "aiopoll QueuedOneShot submit->wake->reap",
        round_trip,
        u64::from(ITERATIONS),
        empty,
    );
    let cancel = measure(|| {
        let (flag, context) = black_box((&FLAG, small));
        let cancelled = match context.submit(flag, Events::IN, 1) {
            Ok(handle) => context.cancel(handle).is_ok(),
            Err(_) => false,
        };
        let reaped = context.reap(&mut out);
        black_box(cancelled && reaped == 1 && out[0].outcome == Outcome::Cancelled);
    });
    report(
        "aiopoll QueuedOneShot submit->cancel->reap",
        cancel,
        u64::from(ITERATIONS),
        empty,
    );
    RAISE.store(true, Ordering::Relaxed);
    let irq = measure(|| {
        let context = black_box(small);
        let submitted = context.submit(&FLAG, Events::IN, 1).is_ok();
        cortex_m::peripheral::SCB::set_pendsv();
        let reaped = context.reap(&mut out);
        FLAG.clear(Events::IN);
        black_box(submitted && reaped == 1);
    });
    RAISE.store(false, Ordering::Relaxed);
    report(
        "aiopoll QueuedOneShot submit->interrupt wake->reap",
        irq,
        u64::from(ITERATIONS),
        empty,
    );

    // The steps on their own: BATCH requests on BATCH flags, one waiter each.
    let big = Pin::static_ref(&BIG);
    steps(
        big,
        &FLAGS,
        [
            "(batch loop, QueuedOneShot firmware)",
            "aiopoll QueuedOneShot submit (one request)",
            "aiopoll QueuedOneShot wake of one waiter (interrupt side)",
            "aiopoll QueuedOneShot reap (one completion)",
            "aiopoll QueuedOneShot cancel (one request)",
        ],
    );

    // Every request completed exactly once, and nothing is left.
    let (small_stats, big_stats) = (small.stats(), big.stats());
    exit(
        small.completions() == 0
            && big.completions() == 0
            && small_stats.submitted == small_stats.reaped
            && big_stats.submitted == big_stats.reaped,
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

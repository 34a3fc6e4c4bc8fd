//! The aiopoll demo on QEMU's MPS2 boards: CMSDK timer 0's interrupt
//! completes poll requests, one request is cancelled, and one completion is
//! deferred because the interrupt found the context locked. Run it with
//! `cargo xtask demo --board mps2-an385` (or `mps2-an386`, `mps2-an521`).
//!
//! The context uses a priority-ceiling lock at 0x20; the timer interrupt runs
//! at 0x00, above the ceiling, so aiopoll never masks it. When it fires while
//! thread mode holds the context, its wakeup cannot take the lock and hands
//! the completion to the spare line, a low-priority interrupt pended for the
//! purpose.
//!
//! `board` is the library of the board crate that builds this example: each
//! MPS2 board crate names its timer and lines the same way.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Outcome};
use aiopoll_cortex_m::{reap_blocking, CeilingLocks, IrqEvent, PendInterrupt};
use board::{exit, Irq, Timer0, SPARE_IRQ, TIMER0_IRQ};
use cortex_m_rt::{entry, exception};

/// Raised by the timer interrupt.
static TIMER: IrqEvent = IrqEvent::new();

/// Four request slots; deferred work goes to the spare line.
static CONTEXT: Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Irq>> =
    Context::with_hooks(PendInterrupt(SPARE_IRQ));

/// Every interrupt line lands here (there is no PAC to name them).
#[exception]
unsafe fn DefaultHandler(_: i16) {
    match board::active_irq() {
        Some(TIMER0_IRQ) => {
            Timer0::acknowledge();
            TIMER.raise(Events::IN);
        }
        Some(SPARE_IRQ) => {
            CONTEXT.run_deferred();
        }
        _ => {}
    }
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    board::enable(TIMER0_IRQ, 0x00);
    board::enable(SPARE_IRQ, 0xE0);
    defmt::info!(
        "aiopoll demo on {}: timer interrupt at priority 0x00, context ceiling 0x20",
        board::NAME
    );

    // 1. Requests completed by the timer interrupt.
    Timer0::start(50_000);
    let mut done = [Completion::EMPTY; 1];
    for user_data in 1..=3 {
        context.submit(&TIMER, Events::IN, user_data).unwrap();
        reap_blocking(&context, &mut done);
        defmt::info!(
            "request {} completed by the timer interrupt: {}",
            done[0].user_data,
            done[0].outcome
        );
        TIMER.take();
    }

    // 2. A cancel: the timer is stopped, so the request waits until cancelled.
    Timer0::stop();
    TIMER.take();
    let handle = context.submit(&TIMER, Events::IN, 10).unwrap();
    defmt::info!("request 10 waits; cancel says {}", context.cancel(handle));
    reap_blocking(&context, &mut done);
    defmt::info!(
        "request {} completed: {}",
        done[0].user_data,
        done[0].outcome
    );

    // 3. A deferred completion: a fast timer, and thread mode reaping without
    // sleeping, so that it holds the context lock often, until one interrupt
    // lands while it does.
    let before = context.stats().completed_by_deferred_work;
    Timer0::start(100);
    let mut user_data = 100;
    while context.stats().completed_by_deferred_work == before {
        if user_data == 10_100 {
            defmt::error!("no interrupt landed inside the context lock in 10,000 tries");
            exit(false);
        }
        context.submit(&TIMER, Events::IN, user_data).unwrap();
        while context.reap(&mut done) == 0 {}
        if done[0].outcome != Outcome::Ready(Events::IN) {
            exit(false);
        }
        TIMER.take();
        user_data += 1;
    }
    Timer0::stop();
    defmt::info!(
        "an interrupt found the context locked: deferred work completed its request, once ({} deferred completion)",
        context.stats().completed_by_deferred_work - before
    );

    let stats = context.stats();
    let accounted = stats.reaped == stats.submitted && context.in_use() == 0;
    defmt::info!(
        "every request completed exactly once, no slot in use: {}",
        accounted
    );
    exit(accounted)
}

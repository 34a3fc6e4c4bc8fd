//! Scenario on the Cortex-M0 (no compare-and-swap, no BASEPRI): a TIMER0
//! interrupt storm while thread mode submits, cancels and reaps (the shared
//! `aiopoll_scenarios::storm`). The context takes the critical-section lock,
//! so the timer never preempts a holder; every fourth interrupt wakes
//! unkeyed instead, and those completions go through deferred work in the
//! pended TIMER1 line. Thread mode only submits, cancels and reaps, so the
//! context takes queued one-shot requests alone (`QueuedOneShot`): the
//! least flash and RAM, the smallest part.
#![no_std]
#![no_main]

use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Context, Events, QueuedOneShot};
use aiopoll_cortex_m::{CortexMLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, storm};
use cortex_m_rt::{entry, exception};
use microbit::{timer0, Irq, Timer0, TIMER0, TIMER1};

static TIMER: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CortexMLocks, 1, PendInterrupt<Irq>, QueuedOneShot> =
    Context::with_hooks(PendInterrupt(TIMER1));
/// Interrupts so far (thread mode never writes it; load and store suffice
/// on the M0).
static TICKS: AtomicU32 = AtomicU32::new(0);

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    match irqn {
        8 => {
            timer0::acknowledge();
            let ticks = TICKS.load(Ordering::Relaxed) + 1;
            TICKS.store(ticks, Ordering::Relaxed);
            if ticks.is_multiple_of(4) {
                TIMER.raise_unkeyed(Events::IN);
            } else {
                TIMER.raise(Events::IN);
            }
        }
        9 => {
            CONTEXT.run_deferred();
        }
        _ => {}
    }
}

#[entry]
fn main() -> ! {
    enable(TIMER0, 0x40);
    enable(TIMER1, 0xC0);
    let report = storm::<Timer0, 8, _, _, _>(Pin::static_ref(&CONTEXT), &TIMER, 200, 26);
    exit(report.ok)
}

//! The aiopoll demo on QEMU's MPS2 boards: CMSDK timer 0's interrupt
//! completes poll requests, one request is cancelled, and one completion is
//! deferred because the interrupt found the context locked (the shared
//! `aiopoll_scenarios::demo`). Run it with
//! `cargo xtask demo --board mps2-an385` (or `mps2-an386`, `mps2-an521`).
//!
//! The context uses a priority-ceiling lock at 0x20; the timer interrupt runs
//! at 0x00, more urgent than the ceiling, so aiopoll never masks it. When it
//! fires while thread mode holds the context, its wakeup cannot take the
//! lock and hands the completion to the spare line (0xE0, at or below the
//! ceiling), a low-priority interrupt pended for the purpose.
//!
//! `board` is the library of the board crate that builds this example: each
//! MPS2 board crate names its timer and lines the same way.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{demo, enable, exit};
use board::{Irq, Timer0, SPARE_IRQ, TIMER0_IRQ};
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
    enable(TIMER0_IRQ, 0x00);
    enable(SPARE_IRQ, 0xE0);
    defmt::info!(
        "aiopoll demo on {}: timer interrupt at priority 0x00, context ceiling 0x20",
        board::NAME
    );
    exit(demo::<Timer0, 4, _, _, _>(
        Pin::static_ref(&CONTEXT),
        &TIMER,
        50_000,
        100,
    ))
}

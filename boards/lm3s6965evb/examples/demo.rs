//! The aiopoll demo: a timer interrupt completes poll requests, one request
//! is cancelled, and one completion is deferred because the interrupt found
//! the context locked (the shared `aiopoll_scenarios::demo`). Run it with
//! `cargo xtask demo`.
//!
//! The context uses a priority-ceiling lock at 0x20; the timer interrupt runs
//! at 0x00, more urgent than the ceiling, so aiopoll never masks it. When it
//! fires while thread mode holds the context, its wakeup cannot take the
//! lock and hands the completion to GPIOB (0xE0, at or below the ceiling), a
//! low-priority interrupt pended for the purpose.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{demo, enable, exit};
use cortex_m_rt::entry;
use lm3s6965::interrupt;
use lm3s6965evb::{timer0, Interrupt, Timer0};

/// Raised by the timer interrupt.
static TIMER: IrqEvent = IrqEvent::new();

/// Four request slots; deferred work goes to GPIOB.
static CONTEXT: Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    TIMER.raise(Events::IN);
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    enable(Interrupt::TIMER_0A, 0x00);
    enable(Interrupt::GPIOB, 0xE0);
    defmt::info!(
        "aiopoll demo on lm3s6965evb: timer interrupt at priority 0x00, context ceiling 0x20"
    );
    exit(demo::<Timer0, 4, _, _, _>(
        Pin::static_ref(&CONTEXT),
        &TIMER,
        50_000,
        400,
    ))
}

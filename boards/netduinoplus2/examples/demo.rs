//! The aiopoll demo on the Netduino Plus 2 (the shared
//! `aiopoll_scenarios::demo`): TIM2's update interrupt completes poll
//! requests, one request is cancelled, and one completion is deferred
//! because the interrupt found the context locked. Run it with
//! `cargo xtask demo --board netduinoplus2`.
//!
//! Priorities in numbers (4 bits on the STM32F4: 0x00, 0x10, .., 0xF0):
//! the context's lock is `CeilingLocks<0x20>`; TIM2 runs at 0x00, a value
//! below the ceiling, so aiopoll never masks it, and its wakeups defer when
//! they land inside the context lock; deferred work runs in TIM3's line
//! (the timer itself is left stopped) at 0xF0, a value at least the
//! ceiling.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{demo, enable, exit};
use cortex_m_rt::entry;
use netduinoplus2::{interrupt, Interrupt, Tim2};

/// TIM2's period while requests complete one by one, in ticks (1 GHz in
/// QEMU: half a millisecond).
const SLOW_PERIOD: u32 = 500_000;
/// TIM2's period in the demo's last step, in ticks: about 250 instructions
/// under `-icount shift=3`, so that an interrupt soon lands inside the
/// context lock.
const FAST_PERIOD: u32 = 2_000;

/// Raised by TIM2's update interrupt.
static TIMER: IrqEvent = IrqEvent::new();

/// Four request slots; deferred work goes to TIM3's line.
static CONTEXT: Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::TIM3));

#[interrupt]
fn TIM2() {
    Tim2::acknowledge();
    TIMER.raise(Events::IN);
}

#[interrupt]
fn TIM3() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    enable(Interrupt::TIM2, 0x00);
    enable(Interrupt::TIM3, 0xF0);
    defmt::info!(
        "aiopoll demo on {}: TIM2 interrupt at priority 0x00, context ceiling 0x20, deferred work at 0xF0",
        netduinoplus2::NAME
    );
    exit(demo::<Tim2, 4, _, _, _>(
        Pin::static_ref(&CONTEXT),
        &TIMER,
        SLOW_PERIOD,
        FAST_PERIOD,
    ))
}

//! Button 1 toggles LED 1, through aiopoll. Flash it with
//! `cargo xtask flash nrf52840-dk button` and press the button.
//!
//! - The button is a `PinSource`: a poll request on it completes once the
//!   pin reads low (pressed). The GPIOTE interrupt fires on every edge and
//!   wakes the requests, which re-read the pin (a bounce that is gone again
//!   completes nothing).
//! - Thread mode submits a request, sleeps in `reap_blocking` (WFI) until it
//!   completes, toggles the LED.
//! - `EngineDelay` then waits 250 ms, itself a poll request: a deadline on
//!   the RTC0 tick count, woken by the RTC0 interrupt. Holding the button
//!   toggles the LED again every 250 ms.
//! - Wakeups that must re-read their source (the pin, the tick count) hand
//!   the completion to deferred work, which runs in PendSV.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Completion, Context, Events};
use aiopoll_cortex_m::{
    reap_blocking, Active, CortexMLocks, EngineDelay, PendSv, PinSource, Ticks,
};
use cortex_m_rt::{entry, exception};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::StatefulOutputPin;
use nrf52840_dk::{interrupt, Board, Button1, TICK_NS};
use spin::Once;

/// Button 1 as a source; `main` puts it here (the HAL hands the pin out at
/// run time).
static BUTTON: Once<PinSource<Button1>> = Once::new();
/// The RTC0 tick count that delays wait on.
static TICKS: Ticks = Ticks::new();
/// The requests on the button: one at a time.
static CONTEXT: Context<'static, 1, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);
/// The delay's own one-slot context.
static DELAY_CONTEXT: Context<'static, 1, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);

#[interrupt]
fn GPIOTE() {
    nrf52840_dk::acknowledge_button();
    if let Some(button) = BUTTON.get() {
        button.on_edge();
    }
}

#[interrupt]
fn RTC0() {
    nrf52840_dk::acknowledge_tick();
    TICKS.tick();
}

#[exception]
fn PendSV() {
    CONTEXT.run_deferred();
    DELAY_CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    let board = Board::take().unwrap();
    let button = BUTTON.call_once(|| PinSource::new(board.button1, Active::Low));
    let mut led = board.led1;
    let mut delay = EngineDelay::new(Pin::static_ref(&DELAY_CONTEXT), &TICKS, TICK_NS);
    let context = Pin::static_ref(&CONTEXT);
    defmt::info!("aiopoll on the nRF52840-DK: press button 1");

    let mut done = [Completion::EMPTY; 1];
    for press in 1u64.. {
        context.submit(button, Events::IN, press).unwrap();
        reap_blocking(&context, &mut done);
        led.toggle().unwrap();
        defmt::info!(
            "request {}: {} -> LED 1 toggled",
            done[0].user_data,
            done[0].outcome
        );
        delay.delay_ms(250);
    }
    unreachable!("a u64 of presses does not run out")
}

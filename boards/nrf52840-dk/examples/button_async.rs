//! Button 1 toggles LED 1, in async code: the `button` example on
//! embassy-executor, through embedded-hal-async. Flash it with
//! `cargo xtask flash nrf52840-dk button_async` and press the button.
//!
//! - `WaitPin` is `embedded_hal_async::digital::Wait` for the button's
//!   `PinSource`: `wait_for_falling_edge` (a press: the button pulls the pin
//!   low) is an awaited request that the GPIOTE edge interrupt wakes.
//! - `AsyncDelay` is `embedded_hal_async::delay::DelayNs` on the RTC0 tick
//!   count, a source that the RTC0 interrupt ticks.
//! - A long press is a timeout: `select(release, delay_ms(1000))`; the
//!   loser is dropped, which cancels its request.
//! - Wakeups that must re-read their source (the pin, the tick count) hand
//!   the completion to deferred work, which runs in PendSV and wakes the
//!   task from there.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::Context;
use aiopoll_cortex_m::{Active, AsyncDelay, CortexMLocks, PendSv, PinSource, Ticks, WaitPin};
use cortex_m_rt::exception;
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embedded_hal::digital::StatefulOutputPin;
use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::digital::Wait;
use nrf52840_dk::{interrupt, Board, Button1, TICK_NS};
use spin::Once;

/// Button 1 as a source; `main` puts it here (the HAL hands the pin out at
/// run time).
static BUTTON: Once<PinSource<Button1>> = Once::new();
/// The RTC0 tick count that delays wait on.
static TICKS: Ticks = Ticks::new();
/// The requests of every wait and delay: the button's, the delay's.
static CONTEXT: Context<'static, 4, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);

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
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let board = Board::take().unwrap();
    let context = Pin::static_ref(&CONTEXT);
    let button = BUTTON.call_once(|| PinSource::new(board.button1, Active::Low));
    let mut button = WaitPin::new(context, button);
    let mut delay = AsyncDelay::new(context, &TICKS, TICK_NS);
    let mut led = board.led1;
    defmt::info!("aiopoll async on the nRF52840-DK: press button 1");

    for press in 1u64.. {
        if let Err(error) = button.wait_for_falling_edge().await {
            defmt::error!("button 1: {}", error);
            return;
        }
        led.toggle().unwrap();
        match select(button.wait_for_rising_edge(), delay.delay_ms(1000)).await {
            Either::First(_) => defmt::info!("press {}: LED 1 toggled", press),
            Either::Second(()) => {
                defmt::info!("press {}: LED 1 toggled; held for a second", press);
                let _ = button.wait_for_high().await;
            }
        }
        // Let the contact settle before the next press.
        delay.delay_ms(20).await;
    }
}

//! The README's async firmware program ("In async code"): a task waits for
//! UART bytes, for up to 100 ms at a time. `cargo xtask test` builds and
//! lints it and checks that the README shows it word for word. To run it,
//! `cargo run --release --example async_uart` from `boards/lm3s6965evb`
//! (QEMU is the runner; pipe its output through `defmt-print -e <elf>
//! stdin`) and type: QEMU's serial port is the terminal.

#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{AsyncDelay, CeilingLocks, IrqEvent, PendInterrupt, Ticks};
use embassy_futures::select::{select, Either};
use embedded_hal_async::delay::DelayNs;
use lm3s6965::interrupt;
use lm3s6965evb::{timer0, uart0, Interrupt};

/// Raised by the UART's interrupt handler when bytes arrive.
static UART_RX: IrqEvent = IrqEvent::new();
/// The timer as a source: delays and timeouts wait on it.
static TICKS: Ticks = Ticks::new();
/// Four request slots; deferred work runs in GPIOB.
static CONTEXT: Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));

#[interrupt]
fn UART0() {
    uart0::acknowledge();
    while let Some(byte) = uart0::read_byte() {
        defmt::info!("received {=u8:a}", byte);
    }
    UART_RX.raise(Events::IN); // completes the request, wakes its task
}

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    TICKS.tick(); // every millisecond
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred(); // what a wakeup could not complete itself
}

#[embassy_executor::main]
async fn main(_spawner: embassy_executor::Spawner) {
    let context = Pin::static_ref(&CONTEXT);
    let mut delay = AsyncDelay::new(context, &TICKS, 1_000_000); // embedded-hal-async DelayNs
    lm3s6965evb::enable(Interrupt::UART0, 0x00);
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0); // the least urgent
    uart0::enable_receive_interrupt();
    timer0::start(12_500); // 1 ms at QEMU's 12.5 MHz
    loop {
        match select(context.request(&UART_RX, Events::IN), delay.delay_ms(100)).await {
            Either::First(outcome) => defmt::info!("UART: {}", outcome), // Ok(Ready(IN))
            Either::Second(()) => defmt::info!("no byte for 100 ms"), // request dropped: cancelled
        }
        UART_RX.clear(Events::IN);
    }
}

//! Cross-core wakeups on the Raspberry Pi Pico: core 1 takes the timer's
//! alarm interrupt and wakes poll requests; core 0 submits them, sleeps in
//! `WFE` until core 1 completes them, and blinks the LED. Flash it with
//! `cargo xtask flash rpi-pico cross_core`.
//!
//! - `TICK` is an `IrqEvent`: core 1's alarm handler raises it every 500 ms,
//!   which completes the request waiting on it right there, on core 1.
//! - The context and the event's wait queue use the adapter's
//!   critical-section lock, which on the RP2040 also takes a hardware
//!   spinlock, so the two cores exclude each other (see the board crate).
//! - The completion runs `SEV`, which ends core 0's `WFE`
//!   (`reap_across_cores`).
//! - Every tenth round, core 0 cancels its request at once: a cancel racing
//!   core 1's wakeup, with exactly one completion either way.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events};
use aiopoll_cortex_m::{reap_across_cores, CortexMLocks, IrqEvent, PendSv};
use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embedded_hal::digital::StatefulOutputPin;
use rpi_pico::hal::fugit::MicrosDurationU32;
use rpi_pico::hal::pac::Interrupt;
use rpi_pico::hal::timer::{Alarm, Alarm0};
use rpi_pico::{entry, interrupt, Board};

/// Raised by core 1's alarm interrupt.
static TICK: IrqEvent = IrqEvent::new();
/// Core 0's requests; deferred work, if any, runs in PendSV of the core that
/// deferred it.
static CONTEXT: Context<'static, 2, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);
/// The alarm, moved here by core 1 before it unmasks the alarm's interrupt.
static ALARM: Mutex<RefCell<Option<Alarm0>>> = Mutex::new(RefCell::new(None));

const PERIOD: MicrosDurationU32 = MicrosDurationU32::millis(500);

/// Unmasked on core 1 only, so it runs there.
#[interrupt]
fn TIMER_IRQ_0() {
    critical_section::with(|cs| {
        if let Some(alarm) = ALARM.borrow_ref_mut(cs).as_mut() {
            alarm.clear_interrupt();
            // 500 ms is far below the alarm's 71-minute limit.
            let _ = alarm.schedule(PERIOD);
        }
    });
    TICK.raise(Events::IN);
}

#[exception]
fn PendSV() {
    CONTEXT.run_deferred();
}

/// Core 1: arms the alarm, takes its interrupt, sleeps between them.
fn core1(mut alarm: Alarm0) -> ! {
    // 500 ms is far below the alarm's 71-minute limit.
    let _ = alarm.schedule(PERIOD);
    alarm.enable_interrupt();
    critical_section::with(|cs| ALARM.borrow(cs).replace(Some(alarm)));
    // SAFETY: the handler's state (ALARM, TICK) is ready; unmasking on this
    // core breaks no critical section (they mask with PRIMASK, not the NVIC).
    unsafe { NVIC::unmask(Interrupt::TIMER_IRQ_0) };
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let mut board = Board::take().unwrap();
    let alarm = board.timer.alarm_0().unwrap();
    board.spawn_core1(move || core1(alarm)).unwrap();
    let mut led = board.led;
    let context = Pin::static_ref(&CONTEXT);
    defmt::info!("aiopoll on the Pico: core 1's alarm wakes core 0's requests");

    let mut done = [Completion::EMPTY; 1];
    for round in 1u64.. {
        // Wait for the next tick, not one raised before.
        TICK.take();
        let handle = context.submit(&TICK, Events::IN, round).unwrap();
        if round % 10 == 0 {
            let cancel = context.cancel(handle);
            reap_across_cores(&context, &mut done);
            defmt::info!(
                "request {}: cancel says {}; its one completion: {}",
                round,
                cancel,
                done[0].outcome
            );
            continue;
        }
        reap_across_cores(&context, &mut done);
        led.toggle().unwrap();
        defmt::info!(
            "request {} completed by core 1's interrupt: {}",
            done[0].user_data,
            done[0].outcome
        );
    }
    unreachable!("a u64 of rounds does not run out")
}

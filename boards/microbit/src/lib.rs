//! Board support for the BBC micro:bit v1 (nRF51822, Cortex-M0), as QEMU's
//! `microbit` machine emulates it: TIMER0 as a periodic interrupt. (Ending a
//! run, panics, the logger and NVIC priorities are `aiopoll_scenarios`',
//! shared by every QEMU board.) There is no PAC here:
//! every interrupt lands in cortex-m-rt's `DefaultHandler(irqn)`, and
//! [`Irq`] names a line for the NVIC.
//!
//! Priorities have 2 bits: 0x00 (most urgent), 0x40, 0x80, 0xC0.
#![no_std]

use cortex_m::interrupt::InterruptNumber;

/// An interrupt line of the nRF51 by number (TIMER0 is 8, TIMER1 is 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq(pub u16);

/// TIMER0's line.
pub const TIMER0: Irq = Irq(8);
/// TIMER1's line, unused by the examples' hardware: they pend it for
/// deferred work.
pub const TIMER1: Irq = Irq(9);

// SAFETY: nRF51 interrupt lines are 0..=31, all valid NVIC numbers.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// TIMER0 as a periodic compare interrupt.
pub mod timer0 {
    const BASE: usize = 0x4000_8000;
    const TASKS_START: usize = BASE;
    const TASKS_STOP: usize = BASE + 0x004;
    const TASKS_CLEAR: usize = BASE + 0x00C;
    const EVENTS_COMPARE0: usize = BASE + 0x140;
    const SHORTS: usize = BASE + 0x200;
    const INTENSET: usize = BASE + 0x304;
    const MODE: usize = BASE + 0x504;
    const BITMODE: usize = BASE + 0x508;
    const PRESCALER: usize = BASE + 0x510;
    const CC0: usize = BASE + 0x540;

    fn write(address: usize, value: u32) {
        // SAFETY: TIMER0's registers belong to this module.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) }
    }

    /// Starts the timer: an interrupt every `period` ticks of 16 MHz.
    pub fn start(period: u32) {
        write(TASKS_STOP, 1);
        write(TASKS_CLEAR, 1);
        write(MODE, 0);
        write(BITMODE, 3);
        write(PRESCALER, 0);
        write(CC0, period);
        write(SHORTS, 1);
        write(INTENSET, 1 << 16);
        write(TASKS_START, 1);
    }

    /// Stops the timer.
    pub fn stop() {
        write(TASKS_STOP, 1);
    }

    /// Acknowledges the compare event (call it in the handler).
    pub fn acknowledge() {
        write(EVENTS_COMPARE0, 0);
    }
}

/// TIMER0 as the scenarios' periodic timer.
pub struct Timer0;

impl aiopoll_scenarios::Timer for Timer0 {
    fn start(period: u32) {
        timer0::start(period);
    }
    fn stop() {
        timer0::stop();
    }
}

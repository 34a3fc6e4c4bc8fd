//! Board support for the BBC micro:bit v1 (nRF51822, Cortex-M0), as QEMU's
//! `microbit` machine emulates it: TIMER0 as a periodic interrupt, NVIC
//! priorities, and ending a run through semihosting. There is no PAC here:
//! every interrupt lands in cortex-m-rt's `DefaultHandler(irqn)`, and
//! [`Irq`] names a line for the NVIC.
//!
//! Priorities have 2 bits: 0x00 (most urgent), 0x40, 0x80, 0xC0.
#![no_std]

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;

use defmt_semihosting as _;

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

/// Ends the run: QEMU exits with status 0 (`success`) or 1.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}

/// Sets `irq`'s priority (0x00, 0x40, 0x80 or 0xC0) and unmasks it.
pub fn enable(irq: Irq, priority: u8) {
    // SAFETY: called once per line at start-up, before it can fire; this is
    // the only code that owns the NVIC's priority registers.
    unsafe {
        let mut peripherals = cortex_m::Peripherals::steal();
        peripherals.NVIC.set_priority(irq, priority);
        NVIC::unmask(irq);
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

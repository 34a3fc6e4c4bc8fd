//! Board support for the TI Stellaris LM3S6965 evaluation board, as QEMU's
//! `lm3s6965evb` machine emulates it: just what the examples need (a
//! periodic timer interrupt, the UART's receive interrupt). Ending a run,
//! panics, the logger and NVIC priorities are `aiopoll_scenarios`', shared
//! by every QEMU board.
//!
//! Interrupt priorities have 3 bits here: 0x00 (most urgent), 0x20, ..,
//! 0xE0 (least urgent).
#![no_std]

pub use lm3s6965::Interrupt;

/// Unmasking an interrupt at a priority, and ending a QEMU run: shared by
/// every QEMU board (`aiopoll-scenarios`), re-exported for this board's
/// examples.
pub use aiopoll_scenarios::{enable, exit};

/// Writes a 32-bit peripheral register.
///
/// # Safety
/// `address` is a register of this board that the caller owns.
unsafe fn write(address: usize, value: u32) {
    // SAFETY: the caller's contract: a valid, owned MMIO register.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) }
}

/// Reads a 32-bit peripheral register.
///
/// # Safety
/// `address` is a register of this board that the caller owns.
unsafe fn read(address: usize) -> u32 {
    // SAFETY: the caller's contract: a valid, owned MMIO register.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}

/// General-purpose timer 0 as a 32-bit periodic timer raising `TIMER_0A`.
pub mod timer0 {
    const BASE: usize = 0x4003_0000;
    const RCGC1: usize = 0x400F_E104;
    const CFG: usize = BASE;
    const TAMR: usize = BASE + 0x004;
    const CTL: usize = BASE + 0x00C;
    const IMR: usize = BASE + 0x018;
    const ICR: usize = BASE + 0x024;
    const TAILR: usize = BASE + 0x028;

    /// Starts the timer: an interrupt every `period` clock cycles.
    pub fn start(period: u32) {
        // SAFETY: timer 0 and its clock gate belong to this module; the
        // sequence is the datasheet's (disable, configure, enable).
        unsafe {
            super::write(RCGC1, super::read(RCGC1) | 1 << 16);
            super::write(CTL, 0);
            super::write(CFG, 0);
            super::write(TAMR, 2);
            super::write(TAILR, period);
            super::write(IMR, 1);
            super::write(CTL, 1);
        }
    }

    /// Stops the timer.
    pub fn stop() {
        // SAFETY: as in `start`.
        unsafe { super::write(CTL, 0) }
    }

    /// Acknowledges the time-out interrupt (call it in the handler).
    pub fn acknowledge() {
        // SAFETY: writing 1 to ICR only clears the time-out flag.
        unsafe { super::write(ICR, 1) }
    }
}

/// Timer 0 as the scenarios' periodic timer.
pub struct Timer0;

impl aiopoll_scenarios::Timer for Timer0 {
    fn start(period: u32) {
        timer0::start(period);
    }
    fn stop() {
        timer0::stop();
    }
}

/// UART 0's receiver, raising `UART0` when bytes arrive.
pub mod uart0 {
    const BASE: usize = 0x4000_C000;
    const DR: usize = BASE;
    const FR: usize = BASE + 0x018;
    const CR: usize = BASE + 0x030;
    const IMSC: usize = BASE + 0x038;
    const ICR: usize = BASE + 0x044;

    /// Enables the UART with receive and receive-timeout interrupts.
    pub fn enable_receive_interrupt() {
        // SAFETY: UART 0 belongs to this module.
        unsafe {
            super::write(IMSC, 1 << 4 | 1 << 6);
            super::write(CR, 1 | 1 << 8 | 1 << 9);
        }
    }

    /// The next received byte, if any.
    pub fn read_byte() -> Option<u8> {
        // SAFETY: UART 0 belongs to this module; reading DR pops the FIFO.
        unsafe {
            if super::read(FR) & 1 << 4 != 0 {
                None
            } else {
                Some(super::read(DR) as u8)
            }
        }
    }

    /// Acknowledges every UART interrupt (call it in the handler).
    pub fn acknowledge() {
        // SAFETY: writing ICR only clears interrupt flags.
        unsafe { super::write(ICR, 0x7ff) }
    }
}

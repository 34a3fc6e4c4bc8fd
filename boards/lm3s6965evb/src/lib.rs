//! Board support for the TI Stellaris LM3S6965 evaluation board, as QEMU's
//! `lm3s6965evb` machine emulates it: just what the examples need (a
//! periodic timer interrupt, a one-shot timer, a 64-bit clock, the UART's
//! receive interrupt). Ending a run,
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

/// General-purpose timer 1 as a 32-bit one-shot timer raising `TIMER_1A`:
/// an alarm. (QEMU does not model reading the count of these timers, so
/// the time comes from [`clock`].)
pub mod timer1 {
    const BASE: usize = 0x4003_1000;
    const RCGC1: usize = 0x400F_E104;
    const CFG: usize = BASE;
    const TAMR: usize = BASE + 0x004;
    const CTL: usize = BASE + 0x00C;
    const IMR: usize = BASE + 0x018;
    const ICR: usize = BASE + 0x024;
    const TAILR: usize = BASE + 0x028;

    /// Enables the timer's clock, as a one-shot 32-bit timer with its
    /// time-out interrupt unmasked, stopped.
    pub fn init() {
        // SAFETY: timer 1 and its clock gate bit belong to this module; the
        // sequence is the datasheet's (disable, configure).
        unsafe {
            super::write(RCGC1, super::read(RCGC1) | 1 << 17);
            super::write(CTL, 0);
            super::write(CFG, 0);
            super::write(TAMR, 1);
            super::write(IMR, 1);
        }
    }

    /// (Re)starts the timer: one interrupt `cycles` clock cycles from now
    /// (at least 1).
    pub fn start(cycles: u32) {
        // SAFETY: as in `init`; a one-shot timer is reloaded by disabling
        // and enabling it.
        unsafe {
            super::write(CTL, 0);
            super::write(TAILR, cycles.max(1));
            super::write(CTL, 1);
        }
    }

    /// Stops the timer.
    pub fn stop() {
        // SAFETY: as in `init`.
        unsafe { super::write(CTL, 0) }
    }

    /// Acknowledges the time-out interrupt (call it in the handler).
    pub fn acknowledge() {
        // SAFETY: writing 1 to ICR only clears the time-out flag.
        unsafe { super::write(ICR, 1) }
    }
}

/// A 64-bit count of clock cycles: SysTick counts down from 2^24 - 1 at the
/// core clock (the general-purpose timers' clock too), and its exception
/// counts the wraps. Call [`clock::wrapped`](wrapped) from the `SysTick`
/// exception handler, and give SysTick the most urgent priority of any code
/// that reads the clock (see [`start`]).
pub mod clock {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::scb::SystemHandler;
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::{SCB, SYST};

    /// SysTick's reload value: a period of 2^24 cycles.
    const RELOAD: u32 = 0x00FF_FFFF;
    /// Bits of the count that SysTick's counter gives.
    const LOW_BITS: u32 = 24;

    /// Periods completed (wraps counted by the exception handler).
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    /// Starts the clock at 0, with the SysTick exception at priority 0x00:
    /// no reader of the clock may preempt its handler between the wrap and
    /// the count (a reader that the handler cannot preempt, with interrupts
    /// masked or at the same priority, sees the wrap pending instead).
    pub fn start() {
        // SAFETY: called once at start-up, before the SysTick exception can
        // fire; this module is the only user of SysTick and of its
        // priority register.
        unsafe {
            let mut peripherals = cortex_m::Peripherals::steal();
            peripherals.SCB.set_priority(SystemHandler::SysTick, 0x00);
            let syst = &mut peripherals.SYST;
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(RELOAD);
            syst.clear_current();
            syst.enable_interrupt();
            syst.enable_counter();
        }
        // The counter reads 0 until it first loads the reload value (that
        // load is no wrap): the clock starts there, at 0.
        while SYST::get_current() == 0 {}
    }

    /// For the `SysTick` exception handler: one period has passed.
    pub fn wrapped() {
        WRAPS.fetch_add(1, Ordering::Release);
    }

    /// Cycles since [`start`].
    pub fn now() -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Acquire);
            let mut periods = u64::from(wraps);
            let mut current = SYST::get_current();
            if SCB::is_pendst_pending() {
                // The counter reached 0 and the handler has not counted it
                // yet: read again, after the flag. Still 0: the last cycle
                // of this period; reloaded: the next period.
                current = SYST::get_current();
                if current != 0 {
                    periods += 1;
                }
            }
            // (0 without the flag: the counter has reached 0 and the wrap is
            // not signalled yet, as QEMU shows it until it processes the
            // wrap: the last cycle of this period too, never a step back.)
            // The handler ran meanwhile: the two reads may straddle a wrap.
            if WRAPS.load(Ordering::Acquire) == wraps {
                return periods << LOW_BITS | u64::from(RELOAD - current);
            }
        }
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

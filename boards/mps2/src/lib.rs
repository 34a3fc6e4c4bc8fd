//! What QEMU's MPS2 board crates share (`boards/mps2-an385`,
//! `boards/mps2-an386`, `boards/mps2-an521`): the CMSDK APB timer, and
//! interrupt lines named by number for the NVIC (there is no PAC: every
//! interrupt lands in cortex-m-rt's `DefaultHandler`). Ending a run, panics,
//! the logger and NVIC priorities are `aiopoll_scenarios`', shared by every
//! QEMU board.
//!
//! Each board crate re-exports this and adds its memory map (where timer 0
//! is, which line it raises). The examples in `examples/` are built by every
//! board crate against its own library, which each names `board`: one
//! source, three boards.
#![no_std]

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::scb::VectActive;
use cortex_m::peripheral::SCB;

/// An interrupt line by number, for the NVIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct Irq(pub u16);

// SAFETY: the MPS2 boards' lines are below 240, every number the NVIC
// accepts; a board crate only names lines its machine has.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// The interrupt line being handled, from inside `DefaultHandler` (`None`
/// for a core exception such as SysTick).
pub fn active_irq() -> Option<Irq> {
    match SCB::vect_active() {
        VectActive::Interrupt { irqn } => Some(Irq(u16::from(irqn))),
        _ => None,
    }
}

/// A CMSDK APB timer (ARM DDI 0479) at address `BASE`: a 32-bit down
/// counter that raises its interrupt line each time it reaches zero and
/// reloads. It counts the peripheral clock (25 MHz on the AN385/AN386,
/// 20 MHz on the AN521, as QEMU models them).
///
/// Used through associated functions, so that a board names its timer as a
/// type (`pub type Timer0 = ApbTimer<0x4000_0000>`) that implements the
/// scenarios' [`Timer`](aiopoll_scenarios::Timer).
pub struct ApbTimer<const BASE: usize>;

impl<const BASE: usize> ApbTimer<BASE> {
    const CTRL: usize = BASE;
    const VALUE: usize = BASE + 0x4;
    const RELOAD: usize = BASE + 0x8;
    const INTCLEAR: usize = BASE + 0xC;
    /// CTRL: counter enable.
    const ENABLE: u32 = 1 << 0;
    /// CTRL: interrupt enable.
    const INTERRUPT: u32 = 1 << 3;

    fn write(address: usize, value: u32) {
        // SAFETY: `address` is one of this timer's registers (the board
        // crate names a CMSDK APB timer's base), which only this type
        // writes.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) }
    }

    /// Starts the timer: an interrupt every `period` clock ticks.
    pub fn start(period: u32) {
        Self::write(Self::CTRL, 0);
        Self::write(Self::RELOAD, period);
        Self::write(Self::VALUE, period);
        Self::write(Self::INTCLEAR, 1);
        Self::write(Self::CTRL, Self::ENABLE | Self::INTERRUPT);
    }

    /// Stops the timer.
    pub fn stop() {
        Self::write(Self::CTRL, 0);
        Self::write(Self::INTCLEAR, 1);
    }

    /// Acknowledges the interrupt (call it in the handler).
    pub fn acknowledge() {
        Self::write(Self::INTCLEAR, 1);
    }
}

impl<const BASE: usize> aiopoll_scenarios::Timer for ApbTimer<BASE> {
    fn start(period: u32) {
        Self::start(period);
    }
    fn stop() {
        Self::stop();
    }
}

/// The memory map of the MPS2 images built around the CMSDK example
/// subsystem (AN385 with a Cortex-M3, AN386 with a Cortex-M4F): the parts
/// the examples use.
pub mod cmsdk {
    use super::{ApbTimer, Irq};

    /// CMSDK APB timer 0.
    pub type Timer0 = ApbTimer<0x4000_0000>;
    /// Timer 0's interrupt line.
    pub const TIMER0_IRQ: Irq = Irq(8);
    /// Timer 1's line: the examples leave timer 1 stopped and pend this
    /// line for deferred work.
    pub const SPARE_IRQ: Irq = Irq(9);
}

//! Board support for the Raspberry Pi Pico (RP2040: two Cortex-M0+ cores)
//! over `rp2040-hal`: clocks from the 12 MHz crystal, the LED on GPIO 25,
//! the 1 MHz timer, starting core 1, and [`aiopoll_cortex_m::reap_across_cores`]. Logs go out
//! over RTT (defmt-rtt), panics too (panic-probe); `probe-rs run` prints
//! them.
//!
//! # Locks across cores
//!
//! aiopoll's [`CriticalSectionLock`](aiopoll_cortex_m::CriticalSectionLock)
//! (both locks of `CortexMLocks`) goes through the `critical-section` crate,
//! and here that is rp2040-hal's implementation: mask this core's
//! interrupts, then take hardware spinlock 31 (re-entrant per core). So it
//! excludes the other core too, and a wakeup on core 1 that finds core 0
//! holding the context waits for the spinlock (a critical section's length)
//! instead of deferring. The atomics aiopoll needs on the M0+ (no
//! compare-and-swap) go through the same critical section.
//!
//! A lock over a hardware spinlock of its own would save little: it would
//! still have to mask interrupts (a queue's lock must mask every interrupt
//! that wakes the queue, or a waker preempting a holder on the same core
//! spins forever), and what it saves is the owner check, a few cycles. So
//! this board uses the adapter's lock as it is.
//!
//! Interrupt priorities have 2 bits: 0x00 (most urgent), 0x40, 0x80, 0xC0.
//! Each core has its own NVIC: an interrupt runs on the core that unmasks
//! it.
#![no_std]

use core::fmt;

use cortex_m::peripheral::scb::SystemHandler;
use hal::clocks::init_clocks_and_plls;
use hal::gpio::bank0::Gpio25;
use hal::gpio::{FunctionSioOutput, Pin, Pins, PullDown};
use hal::multicore::{Multicore, Stack};
use hal::pac;
use hal::sio::{Sio, SioFifo};
use hal::timer::Timer;
use hal::watchdog::Watchdog;

pub use hal::entry;
pub use pac::interrupt;
pub use rp2040_hal as hal;

use defmt_rtt as _;
use panic_probe as _;

/// The second-stage boot loader, first in flash (`memory.x` places the
/// `.boot2` section and names this symbol so the linker keeps it).
#[link_section = ".boot2"]
#[no_mangle]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

/// The LED on GPIO 25 (lit when high).
pub type Led = Pin<Gpio25, FunctionSioOutput, PullDown>;

/// Core 1's stack: 4 KiB.
static CORE1_STACK: Stack<1024> = Stack::new();

/// What the examples use of the Pico.
pub struct Board {
    /// The LED, off.
    pub led: Led,
    /// The 1 MHz timer (its alarms raise `TIMER_IRQ_0` .. `TIMER_IRQ_3`).
    pub timer: Timer,
    psm: pac::PSM,
    ppb: pac::PPB,
    fifo: SioFifo,
}

/// Why core 1 did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum SpawnError {
    /// Core 1 was started already: its stack is in use. Start it once.
    AlreadyStarted,
    /// Core 1 did not answer the start-up handshake on the inter-core FIFO:
    /// reset the board (a debugger holding core 1 halted does this too).
    Unresponsive,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::AlreadyStarted => {
                f.write_str("core 1 was started already: start it once")
            }
            SpawnError::Unresponsive => f.write_str(
                "core 1 did not answer on the inter-core FIFO: reset the board (and let the debugger run core 1)",
            ),
        }
    }
}

impl Board {
    /// Sets the Pico up: system clock 125 MHz from the crystal, the LED pin
    /// an output, the timer running, PendSV (where deferred work runs) at
    /// the lowest priority on core 0. `None` if the peripherals were taken
    /// already or the crystal or PLLs did not start.
    pub fn take() -> Option<Board> {
        let mut peripherals = pac::Peripherals::take()?;
        let mut core = pac::CorePeripherals::take()?;
        let mut watchdog = Watchdog::new(peripherals.WATCHDOG);
        let clocks = init_clocks_and_plls(
            XOSC_HZ,
            peripherals.XOSC,
            peripherals.CLOCKS,
            peripherals.PLL_SYS,
            peripherals.PLL_USB,
            &mut peripherals.RESETS,
            &mut watchdog,
        )
        .ok()?;
        let sio = Sio::new(peripherals.SIO);
        let pins = Pins::new(
            peripherals.IO_BANK0,
            peripherals.PADS_BANK0,
            sio.gpio_bank0,
            &mut peripherals.RESETS,
        );
        let led = pins.gpio25.into_push_pull_output();
        let timer = Timer::new(peripherals.TIMER, &mut peripherals.RESETS, &clocks);
        lowest_pendsv_priority(&mut core.SCB);
        Some(Board {
            led,
            timer,
            psm: peripherals.PSM,
            ppb: peripherals.PPB,
            fifo: sio.fifo,
        })
    }

    /// Starts core 1 on `entry` (which must not return), with PendSV at the
    /// lowest priority there too.
    ///
    /// # Errors
    /// [`SpawnError`]: core 1 was started already, or did not answer.
    pub fn spawn_core1<F>(&mut self, entry: F) -> Result<(), SpawnError>
    where
        F: FnOnce() + Send + 'static,
    {
        let stack = CORE1_STACK.take().ok_or(SpawnError::AlreadyStarted)?;
        let mut multicore = Multicore::new(&mut self.psm, &mut self.ppb, &mut self.fifo);
        let [_, core1] = multicore.cores() else {
            return Err(SpawnError::Unresponsive);
        };
        core1
            .spawn(stack, move || {
                // SAFETY: core 1 has just started and owns its own SCB
                // (each core has its private peripheral bus); nothing else
                // on this core touches it.
                let mut core = unsafe { pac::CorePeripherals::steal() };
                lowest_pendsv_priority(&mut core.SCB);
                entry();
            })
            .map_err(|_| SpawnError::Unresponsive)
    }
}

/// PendSV at 0xC0, the lowest priority (every priority resets to 0, the
/// most urgent), so deferred work never preempts an interrupt handler.
fn lowest_pendsv_priority(scb: &mut cortex_m::peripheral::SCB) {
    // SAFETY: called once per core at start-up, before anything pends
    // PendSV; no priority-based critical section exists yet to be broken.
    unsafe { scb.set_priority(SystemHandler::PendSV, 0xC0) };
}

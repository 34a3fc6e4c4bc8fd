//! Board support for the Nordic nRF52840-DK (PCA10056: nRF52840, Cortex-M4F)
//! over `nrf52840-hal`: button 1 with a GPIOTE edge interrupt, LED 1, and
//! RTC0 ticking about once a millisecond. Logs go out over RTT (defmt-rtt),
//! panics too (panic-probe); `probe-rs run` prints them.
//!
//! The DK's buttons and LEDs are active low: a pressed button reads low, an
//! LED lights when its pin is driven low.
//!
//! Interrupt priorities have 3 bits: 0x00 (most urgent), 0x20, .., 0xE0.
#![no_std]

use core::cell::RefCell;

use cortex_m::peripheral::scb::SystemHandler;
use critical_section::Mutex;
use hal::clocks::Clocks;
use hal::gpio::p0::{Parts, P0_13};
use hal::gpio::{Input, Level, Output, Pin, PullUp, PushPull};
use hal::gpiote::Gpiote;
use hal::pac::{self, Interrupt, NVIC, RTC0};
use hal::rtc::{Rtc, RtcInterrupt};

pub use nrf52840_hal as hal;
pub use pac::interrupt;

use defmt_rtt as _;
use panic_probe as _;

/// Button 1 (P0.11, to ground, with the pull-up on), as the HAL's
/// port-and-number pin (the type GPIOTE takes).
pub type Button1 = Pin<Input<PullUp>>;
/// LED 1 (P0.13, lit when low).
pub type Led1 = P0_13<Output<PushPull>>;

/// RTC0 counts 32,768 Hz / (`PRESCALER` + 1): 992.9 ticks a second.
const PRESCALER: u32 = 32;
/// How long one RTC0 tick lasts, rounded up: 33 / 32,768 s.
pub const TICK_NS: u32 = (33 * 1_000_000_000u64).div_ceil(32_768) as u32;

/// GPIOTE, kept for its handler to acknowledge the button's event.
static GPIOTE: Mutex<RefCell<Option<Gpiote>>> = Mutex::new(RefCell::new(None));
/// RTC0, kept for its handler to acknowledge the tick.
static RTC: Mutex<RefCell<Option<Rtc<RTC0>>>> = Mutex::new(RefCell::new(None));

/// What the examples use of the DK.
pub struct Board {
    /// Button 1.
    pub button1: Button1,
    /// LED 1, off.
    pub led1: Led1,
}

impl Board {
    /// Sets the DK up: the 32.768 kHz crystal started; GPIOTE channel 0
    /// raising `GPIOTE` on every edge of button 1; RTC0 raising `RTC0` on
    /// every tick ([`TICK_NS`]); both interrupts unmasked at priority 0x40;
    /// PendSV, where the examples run deferred work, at the lowest (0xE0:
    /// every priority resets to 0, the most urgent).
    /// `None` if the peripherals were taken already.
    pub fn take() -> Option<Board> {
        let peripherals = pac::Peripherals::take()?;
        let mut core = cortex_m::Peripherals::take()?;

        let _clocks = Clocks::new(peripherals.CLOCK)
            .set_lfclk_src_external(hal::clocks::LfOscConfiguration::NoExternalNoBypass)
            .start_lfclk();

        let pins = Parts::new(peripherals.P0);
        let button1 = pins.p0_11.into_pullup_input().degrade();
        let led1 = pins.p0_13.into_push_pull_output(Level::High);

        let gpiote = Gpiote::new(peripherals.GPIOTE);
        gpiote
            .channel0()
            .input_pin(&button1)
            .toggle()
            .enable_interrupt();

        // The prescaler is below 2^12, which is all `new` checks.
        let mut rtc = Rtc::new(peripherals.RTC0, PRESCALER).ok()?;
        rtc.enable_event(RtcInterrupt::Tick);
        rtc.enable_interrupt(RtcInterrupt::Tick, None);
        rtc.enable_counter();

        critical_section::with(|cs| {
            GPIOTE.borrow(cs).replace(Some(gpiote));
            RTC.borrow(cs).replace(Some(rtc));
        });
        // SAFETY: as below: at start-up, before anything pends PendSV.
        unsafe { core.SCB.set_priority(SystemHandler::PendSV, 0xE0) };
        for interrupt in [Interrupt::GPIOTE, Interrupt::RTC0] {
            // SAFETY: set once at start-up, before the line is unmasked; no
            // priority-based critical section exists yet to be broken.
            unsafe {
                core.NVIC.set_priority(interrupt, 0x40);
                NVIC::unmask(interrupt);
            }
        }
        Some(Board { button1, led1 })
    }
}

/// For the `GPIOTE` handler: acknowledges button 1's edge event.
pub fn acknowledge_button() {
    critical_section::with(|cs| {
        if let Some(gpiote) = GPIOTE.borrow_ref(cs).as_ref() {
            gpiote.channel0().reset_events();
        }
    });
}

/// For the `RTC0` handler: acknowledges the tick event.
pub fn acknowledge_tick() {
    critical_section::with(|cs| {
        if let Some(rtc) = RTC.borrow_ref(cs).as_ref() {
            rtc.reset_event(RtcInterrupt::Tick);
        }
    });
}

//! Board support for the Netduino Plus 2 (STM32F405RG, Cortex-M4F), as
//! QEMU's `netduinoplus2` machine emulates it, over the `stm32f4` PAC: TIM2
//! as the scenarios' periodic timer. Ending a run, panics, the logger and
//! NVIC priorities are `aiopoll_scenarios`', shared by every QEMU board.
//! The examples (`demo`, `storm`) run with `cargo xtask qemu netduinoplus2
//! EXAMPLE`; the crate was brought up by following `docs/porting.md`.
//!
//! Interrupt priorities have 4 bits: 0x00 (most urgent), 0x10, .., 0xF0.
//!
//! QEMU's STM32F405 has the STM32F2xx general-purpose timer model for TIM2
//! to TIM5 (and USARTs, SPI, ADC, EXTI, SYSCFG; the clock tree is not
//! modelled: RCC writes are ignored, and the timers count at 1 GHz).
#![no_std]

pub use stm32f4::stm32f405 as pac;
pub use stm32f4::stm32f405::{interrupt, Interrupt};

/// This board's name, as `cargo xtask qemu` knows it.
pub const NAME: &str = "netduinoplus2";

/// TIM2 (a 32-bit general-purpose timer) raising its update interrupt,
/// `Interrupt::TIM2`, every `period` timer ticks.
///
/// Started by writing ARR last, and never by writing CNT, PSC or EGR: QEMU
/// 7.2's timer model keeps a counter offset that only those writes change
/// (it is 0 from reset), and schedules each interrupt that offset plus ARR
/// after the current time, in nanoseconds. Once CNT is written (or PSC, or
/// UG in EGR) the offset is the virtual time of the write, and every period
/// after it grows by that much: a timer started 5 ms into the run fires
/// every 5 ms plus ARR, whatever ARR says. With the offset left at 0 an ARR
/// write schedules the next interrupt ARR ticks from now, and the model
/// keeps that period. On a real STM32F405 the counter is not reset here:
/// it counts on from where it is (up to the new ARR, or through a 32-bit
/// wrap when it is past it), so the first period may differ; the periods
/// after it are ARR + 1 ticks of TIM2's clock (16 MHz from reset).
pub struct Tim2;

impl Tim2 {
    fn registers() -> &'static pac::tim2::RegisterBlock {
        // SAFETY: TIM2's register block is at this fixed address for the
        // whole run, and only this type touches it.
        unsafe { &*pac::TIM2::ptr() }
    }

    /// Starts the timer (or changes its period while it runs): an update
    /// interrupt every `period` ticks, the first `period` ticks from now
    /// (in QEMU; see the type's documentation).
    pub fn start(period: u32) {
        // SAFETY: RCC's APB1ENR is only read and written here, at start-up
        // of the timer; setting TIM2EN only clocks the timer.
        let rcc = unsafe { &*pac::RCC::ptr() };
        rcc.apb1enr().modify(|_, w| w.tim2en().set_bit());
        let tim = Self::registers();
        tim.sr().write(|w| w.uif().clear_bit());
        tim.dier().write(|w| w.uie().set_bit());
        tim.cr1().write(|w| w.cen().set_bit());
        tim.arr().write(|w| w.arr().set(period.saturating_sub(1)));
    }

    /// Stops the timer. (In QEMU the interrupt already scheduled then finds
    /// the counter disabled, raises nothing and is not scheduled again.)
    pub fn stop() {
        let tim = Self::registers();
        tim.cr1().write(|w| w.cen().clear_bit());
        tim.dier().write(|w| w.uie().clear_bit());
        tim.sr().write(|w| w.uif().clear_bit());
    }

    /// Acknowledges the update interrupt (call it in the handler).
    pub fn acknowledge() {
        Self::registers().sr().write(|w| w.uif().clear_bit());
    }
}

impl aiopoll_scenarios::Timer for Tim2 {
    fn start(period: u32) {
        Self::start(period);
    }
    fn stop() {
        Self::stop();
    }
}

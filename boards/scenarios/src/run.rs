//! Running on a QEMU board: the verdict, panics, the defmt logger, and
//! unmasking interrupts.

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;

// The defmt logger: frames go out through semihosting to QEMU's standard
// output, where `cargo xtask qemu` decodes them.
use defmt_semihosting as _;

/// Ends the run: QEMU exits with status 0 (`success`) or 1, the verdict
/// `cargo xtask scenarios` reads.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a debugger or emulator to exit to.
    loop {
        cortex_m::asm::wfi();
    }
}

/// A panic fails the run, with its message in the log.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}

/// Sets `interrupt`'s priority and unmasks it in this core's NVIC.
///
/// `priority` is the hardware value: 0x00 is the most urgent; only the top
/// bits the part implements count (3 bits: 0x00, 0x20, .., 0xE0; 2 bits on
/// the Cortex-M0: 0x00, 0x40, 0x80, 0xC0; 4 bits on the STM32F4: 0x00,
/// 0x10, .., 0xF0).
pub fn enable<I: InterruptNumber>(interrupt: I, priority: u8) {
    // SAFETY: the examples call this once per interrupt at start-up, before
    // the interrupt can fire, so no priority-based critical section is
    // disturbed; they own the NVIC's priority registers through this
    // function alone.
    unsafe {
        let mut peripherals = cortex_m::Peripherals::steal();
        peripherals.NVIC.set_priority(interrupt, priority);
        NVIC::unmask(interrupt);
    }
}

//! The baseline of the size comparison: the runtime, a panic handler and a
//! main loop, without aiopoll. `size-aiopoll` minus this is what the core
//! and its locks add.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    loop {
        black_box(0u32);
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

//! A minimal firmware with aiopoll: one context (one request slot, two wait
//! entries, every kind of request) and one source, whose requests are
//! submitted, woken, cancelled and reaped. `cargo xtask size` subtracts
//! `size-base` from it.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::Context;
use aiopoll_firmware_bench::{size_loop, CortexMLocks, IrqEvent};
use cortex_m_rt::entry;

static FLAG: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 1, CortexMLocks> = Context::new();

#[entry]
fn main() -> ! {
    size_loop(Pin::static_ref(&CONTEXT), &FLAG)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

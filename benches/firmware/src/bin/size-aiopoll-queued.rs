//! `size-aiopoll` with a context whose `Kinds` take queued one-shot requests
//! only (`QueuedOneShot`): what a firmware that only submits, cancels and
//! reaps pays. `cargo xtask size` subtracts `size-base` from it.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, QueuedOneShot};
use aiopoll_firmware_bench::{size_loop, CortexMLocks, IrqEvent};
use cortex_m_rt::entry;

static FLAG: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 1, CortexMLocks, 2, (), QueuedOneShot> = Context::new();

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

//! A minimal firmware with aiopoll: one context (one request slot, two wait
//! entries) and one source, whose requests are submitted, woken, cancelled
//! and reaped. `cargo xtask size` subtracts `size-base` from it.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events};
use aiopoll_firmware_bench::{CortexMLocks, IrqEvent};
use cortex_m_rt::entry;

static FLAG: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 1, CortexMLocks> = Context::new();

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    let mut out = [Completion::EMPTY; 1];
    loop {
        if let Ok(handle) = context.submit(black_box(&FLAG), Events::IN, 1) {
            if black_box(true) {
                FLAG.raise(Events::IN);
            } else {
                black_box(context.cancel(handle).is_ok());
            }
        }
        black_box(context.reap(&mut out));
        black_box(context.run_deferred());
        FLAG.clear(Events::IN);
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

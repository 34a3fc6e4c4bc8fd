//! The profile behind the Cortex-M instruction counts: each step of a
//! request, once, between calls to [`mark`], so that an instruction trace of
//! this program (QEMU's `-singlestep -d exec`) shows every instruction a step
//! executes, and where it comes from. `docs/benchmarks.md` says how to make
//! and read the trace. Nothing is timed here; `icount` gives the figures.
//!
//! The marks, in order: 1 submit, 2 the interrupt-side wake (`raise`),
//! 3 reap, 4 (clear, submit), 5 cancel, 6 reap of the cancelled request,
//! 7 submit, a wake from PendSV and reap, 8; then on a context of 32 slots
//! with 16 completions waiting: 9 reap of one, 10 cancel, 11 wake, 12; then
//! an awaited request ([`aiopoll::Request`], polled with a no-op waker) on a
//! context of its own: 13 the first poll (it submits), 14 the wake
//! (`raise`), 15 the second poll (ready), 16.
#![no_std]
#![no_main]

use core::future::Future;
use core::hint::black_box;
use core::pin::{pin, Pin};
use core::task::{Context as TaskContext, Waker};

use aiopoll::{Completion, Context, Events};
use aiopoll_firmware_bench::{exit, CortexMLocks, IrqEvent};
use cortex_m_rt::{entry, exception};

static FLAG: IrqEvent = IrqEvent::new();
static SMALL: Context<'static, 4, CortexMLocks> = Context::new();
static BIG: Context<'static, 32, CortexMLocks> = Context::new();
static FLAGS: [IrqEvent; 32] = [const { IrqEvent::new() }; 32];
static AWAITED: Context<'static, 2, CortexMLocks> = Context::new();

/// Where each step begins and ends: a trace finds its calls by address.
#[no_mangle]
#[inline(never)]
pub extern "C" fn mark(step: u32) {
    black_box(step);
}

#[exception]
fn PendSV() {
    FLAG.raise(Events::IN);
}

#[entry]
fn main() -> ! {
    let small = Pin::static_ref(&SMALL);
    let mut out = [Completion::EMPTY; 32];
    // Warm up: the context's first submit sets it up.
    for _ in 0..3 {
        black_box(small.submit(&FLAG, Events::IN, 1).is_ok());
        FLAG.raise(Events::IN);
        black_box(small.reap(&mut out[..1]));
        FLAG.clear(Events::IN);
    }
    mark(1);
    let submitted = small.submit(black_box(&FLAG), Events::IN, 1).is_ok();
    mark(2);
    black_box(FLAG.raise(Events::IN));
    mark(3);
    black_box(small.reap(&mut out[..1]));
    mark(4);
    FLAG.clear(Events::IN);
    let handle = small.submit(black_box(&FLAG), Events::IN, 1);
    mark(5);
    black_box(handle.is_ok_and(|handle| small.cancel(handle).is_ok()));
    mark(6);
    black_box(small.reap(&mut out[..1]));
    mark(7);
    black_box(small.submit(black_box(&FLAG), Events::IN, 1).is_ok());
    cortex_m::peripheral::SCB::set_pendsv();
    black_box(small.reap(&mut out[..1]));
    mark(8);
    FLAG.clear(Events::IN);

    let big = Pin::static_ref(&BIG);
    let mut handles = [None; 32];
    // Twice: the first round sets the context up, the second is marked.
    for round in 0..2 {
        for (index, flag) in FLAGS.iter().enumerate() {
            handles[index] = big.submit(flag, Events::IN, index as u64).ok();
        }
        for flag in &FLAGS[..16] {
            flag.raise(Events::IN);
            flag.clear(Events::IN);
        }
        let marked = round == 1;
        if marked {
            mark(9);
        }
        black_box(big.reap(&mut out[..1]));
        if marked {
            mark(10);
        }
        black_box(handles[20].is_some_and(|handle| big.cancel(handle).is_ok()));
        if marked {
            mark(11);
        }
        black_box(FLAGS[21].raise(Events::IN));
        if marked {
            mark(12);
        }
        FLAGS[21].clear(Events::IN);
        for flag in &FLAGS[16..] {
            flag.raise(Events::IN);
            flag.clear(Events::IN);
        }
        while big.reap(&mut out) > 0 {}
    }

    let awaited = Pin::static_ref(&AWAITED);
    let mut task = TaskContext::from_waker(Waker::noop());
    let mut resolved = true;
    // Three times: the first round sets the context up, the last is marked.
    for round in 0..3 {
        let marked = round == 2;
        let mut request = pin!(awaited.request(black_box(&FLAG), Events::IN));
        if marked {
            mark(13);
        }
        let pending = request.as_mut().poll(&mut task).is_pending();
        if marked {
            mark(14);
        }
        black_box(FLAG.raise(Events::IN));
        if marked {
            mark(15);
        }
        let ready = request.as_mut().poll(&mut task).is_ready();
        if marked {
            mark(16);
        }
        FLAG.clear(Events::IN);
        resolved &= pending && ready;
    }
    exit(submitted && resolved)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(false)
}

//! What the bench firmware's programs share: the Cortex-M adapter's locks
//! and interrupt source (re-exported), the timer that counts instructions
//! under `-icount` on each QEMU machine the firmware is built for
//! (thumbv7m: mps2-an385's Cortex-M3; thumbv6m: microbit's Cortex-M0;
//! thumbv8m.main: mps2-an505's Cortex-M33), the measuring loop and report
//! of the instruction-count programs (`icount`, `icount-queued`), and the
//! size firmware's loop (`size-aiopoll`, `size-aiopoll-queued`).
#![no_std]

pub use aiopoll_cortex_m::{CortexMLocks, IrqEvent};

use core::cell::Cell;
use core::hint::black_box;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Kinds};
use cortex_m_semihosting::{debug, hprintln};

/// Runs per case of the instruction-count firmware.
pub const ITERATIONS: u32 = 100_000;

/// Instructions of `ITERATIONS` runs of `op`.
#[inline(never)]
pub fn measure(mut op: impl FnMut()) -> u64 {
    let start = timer::now();
    for _ in 0..ITERATIONS {
        op();
    }
    let end = timer::now();
    timer::instructions(u64::from(start.wrapping_sub(end)))
}

/// Prints one case: its name, instructions per operation over `per`
/// operations, and the same net of `empty` (the empty loop's count).
pub fn report(name: &str, instructions: u64, per: u64, empty: u64) {
    let per_op = instructions as f64 / per as f64;
    let net = (instructions.saturating_sub(empty)) as f64 / per as f64;
    hprintln!("{}\t{:.1}\t{:.1}", name, per_op, net);
}

/// Requests per batch in the per-step measurements ([`steps`]).
pub const BATCH: usize = 32;
/// Batches per per-step measurement.
pub const ROUNDS: u32 = 1_000;

/// Instructions spent in `step` over `ROUNDS` batches, with `before` and
/// `after` run untimed around each batch.
fn batched(mut before: impl FnMut(), mut step: impl FnMut(usize), mut after: impl FnMut()) -> u64 {
    let mut ticks = 0u64;
    for _ in 0..ROUNDS {
        before();
        let start = timer::now();
        for index in 0..BATCH {
            step(index);
        }
        let end = timer::now();
        ticks += u64::from(start.wrapping_sub(end));
        after();
    }
    timer::instructions(ticks)
}

/// The steps of a request on their own, each timed over batches of
/// `BATCH` requests on `flags` (one waiter each) on `context`: submit, the
/// interrupt-side wake (a flag raised), reap of one completion, cancel.
/// Reports them net of the batch loop, under `names` (the batch loop's,
/// submit's, wake's, reap's, cancel's).
#[inline(always)]
pub fn steps<K: Kinds>(
    context: Pin<&'static Context<'static, BATCH, CortexMLocks, 2, (), K>>,
    flags: &'static [IrqEvent; BATCH],
    [loop_name, submit_name, wake_name, reap_name, cancel_name]: [&str; 5],
) {
    let mut out = [Completion::EMPTY; BATCH];
    let timer_only = batched(
        || {},
        |index| {
            black_box(index);
        },
        || {},
    );
    let per_batch = u64::from(ROUNDS) * BATCH as u64;
    report(loop_name, timer_only, per_batch, 0);
    let handles: [Cell<Option<aiopoll::Handle>>; BATCH] = [const { Cell::new(None) }; BATCH];
    let submit_all = |handles: &[Cell<Option<aiopoll::Handle>>; BATCH]| {
        for (index, flag) in flags.iter().enumerate() {
            handles[index].set(context.submit(flag, Events::IN, index as u64).ok());
        }
    };
    let submit = batched(
        || {},
        |index| {
            black_box(
                context
                    .submit(black_box(&flags[index]), Events::IN, index as u64)
                    .is_ok(),
            );
        },
        || {
            for flag in flags {
                flag.raise(Events::IN);
                flag.clear(Events::IN);
            }
            black_box(context.reap(&mut out));
        },
    );
    report(submit_name, submit, per_batch, timer_only);
    let wake = batched(
        || submit_all(&handles),
        |index| {
            black_box(black_box(&flags[index]).raise(Events::IN));
        },
        || {
            for flag in flags {
                flag.clear(Events::IN);
            }
            black_box(context.reap(&mut out));
        },
    );
    report(wake_name, wake, per_batch, timer_only);
    let reap = {
        let mut ticks = 0u64;
        for _ in 0..ROUNDS {
            submit_all(&handles);
            for flag in flags {
                flag.raise(Events::IN);
                flag.clear(Events::IN);
            }
            let start = timer::now();
            for index in 0..BATCH {
                black_box(context.reap(&mut out[index..index + 1]));
            }
            let end = timer::now();
            ticks += u64::from(start.wrapping_sub(end));
        }
        timer::instructions(ticks)
    };
    report(reap_name, reap, per_batch, timer_only);
    let cancel = batched(
        || submit_all(&handles),
        |index| {
            if let Some(handle) = handles[index].get() {
                black_box(context.cancel(handle).is_ok());
            }
        },
        || {
            black_box(context.reap(&mut out));
        },
    );
    report(cancel_name, cancel, per_batch, timer_only);
}

/// Ends the QEMU run: exit status 0 if `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// The loop of the size firmware (`size-aiopoll`, `size-aiopoll-queued`):
/// a request on `flag` submitted, woken or cancelled, and reaped, over and
/// over, on a context of one slot whose [`Kinds`] the firmware chooses.
#[inline(always)]
pub fn size_loop<K: Kinds>(
    context: Pin<&'static Context<'static, 1, CortexMLocks, 2, (), K>>,
    flag: &'static IrqEvent,
) -> ! {
    let mut out = [Completion::EMPTY; 1];
    loop {
        if let Ok(handle) = context.submit(black_box(flag), Events::IN, 1) {
            if black_box(true) {
                flag.raise(Events::IN);
            } else {
                black_box(context.cancel(handle).is_ok());
            }
        }
        black_box(context.reap(&mut out));
        black_box(context.run_deferred());
        flag.clear(Events::IN);
        cortex_m::asm::wfi();
    }
}

/// The machine's timer, counting down in [`timer::now`]'s ticks. Under
/// `-icount shift=0` one instruction takes 1 ns of virtual time, so a tick
/// is [`timer::NANOS_PER_TICK`] instructions.
pub mod timer {
    #[cfg(not(any(armv6m, armv8m)))]
    mod machine {
        //! CMSDK timer 1 of the mps2-an385: a 32-bit down-counter at 25 MHz.
        const BASE: usize = 0x4000_1000;
        pub const NAME: &str = "Cortex-M3 (QEMU mps2-an385)";
        pub const NANOS_PER_TICK: f64 = 40.0;
        pub use super::cmsdk::{now, start};
        pub(super) const CMSDK_BASE: usize = BASE;
    }

    #[cfg(armv8m)]
    mod machine {
        //! IoTKit timer 1 of the mps2-an505 (a CMSDK APB timer, at its
        //! Secure alias: the core runs Secure), at the 20 MHz main clock.
        const BASE: usize = 0x5000_1000;
        pub const NAME: &str = "Cortex-M33 (QEMU mps2-an505)";
        pub const NANOS_PER_TICK: f64 = 50.0;
        pub use super::cmsdk::{now, start};
        pub(super) const CMSDK_BASE: usize = BASE;
    }

    #[cfg(not(armv6m))]
    mod cmsdk {
        //! A CMSDK APB timer: a 32-bit down-counter.
        use super::machine::CMSDK_BASE as BASE;
        const CTRL: *mut u32 = BASE as *mut u32;
        const VALUE: *mut u32 = (BASE + 4) as *mut u32;
        const RELOAD: *mut u32 = (BASE + 8) as *mut u32;

        pub fn start() {
            // SAFETY: the CMSDK timer's registers on the machine's memory
            // map; nothing else in the firmware uses this timer.
            unsafe {
                CTRL.write_volatile(0);
                RELOAD.write_volatile(u32::MAX);
                VALUE.write_volatile(u32::MAX);
                CTRL.write_volatile(1);
            }
        }

        #[inline(always)]
        pub fn now() -> u32 {
            // SAFETY: a read of the timer's VALUE register.
            unsafe { VALUE.read_volatile() }
        }
    }

    #[cfg(armv6m)]
    mod machine {
        //! The nRF51's TIMER0 on the microbit: a 32-bit up-counter at
        //! 16 MHz, read by capturing it into CC[0].
        const BASE: usize = 0x4000_8000;
        const TASKS_START: *mut u32 = BASE as *mut u32;
        const TASKS_STOP: *mut u32 = (BASE + 0x004) as *mut u32;
        const TASKS_CLEAR: *mut u32 = (BASE + 0x00C) as *mut u32;
        const TASKS_CAPTURE0: *mut u32 = (BASE + 0x040) as *mut u32;
        const MODE: *mut u32 = (BASE + 0x504) as *mut u32;
        const BITMODE: *mut u32 = (BASE + 0x508) as *mut u32;
        const PRESCALER: *mut u32 = (BASE + 0x510) as *mut u32;
        const CC0: *mut u32 = (BASE + 0x540) as *mut u32;
        pub const NAME: &str = "Cortex-M0 (QEMU microbit)";
        pub const NANOS_PER_TICK: f64 = 62.5;

        pub fn start() {
            // SAFETY: TIMER0's registers on the nRF51's memory map; nothing
            // else in the firmware uses TIMER0.
            unsafe {
                TASKS_STOP.write_volatile(1);
                TASKS_CLEAR.write_volatile(1);
                MODE.write_volatile(0);
                BITMODE.write_volatile(3);
                PRESCALER.write_volatile(0);
                TASKS_START.write_volatile(1);
            }
        }

        /// The counter, negated: it counts up, the callers expect a
        /// down-counter.
        #[inline(always)]
        pub fn now() -> u32 {
            // SAFETY: TIMER0's capture task and its CC[0] register.
            unsafe {
                TASKS_CAPTURE0.write_volatile(1);
                0u32.wrapping_sub(CC0.read_volatile())
            }
        }
    }

    /// Which core and machine the counts come from.
    pub const MACHINE: &str = machine::NAME;

    /// Instructions per timer tick under `-icount shift=0`.
    pub const NANOS_PER_TICK: f64 = machine::NANOS_PER_TICK;

    /// Starts the timer.
    pub fn start() {
        machine::start();
    }

    /// The counter now (it counts down).
    #[inline(always)]
    pub fn now() -> u32 {
        machine::now()
    }

    /// Instructions in `ticks` timer ticks.
    pub fn instructions(ticks: u64) -> u64 {
        (ticks as f64 * NANOS_PER_TICK) as u64
    }
}

//! Instructions per operation on a Cortex-M3, counted under QEMU's
//! `-icount shift=0`: aiopoll, embassy-sync's `Signal`, maitake-sync's
//! `WaitQueue` and the floor, in the same firmware.
//!
//! Each figure is the CMSDK timer's ticks over many iterations times 40,
//! divided by the iterations; "net" subtracts an empty loop's count. Run with
//! `cargo run --profile icount --bin icount` from `benches/firmware` (or
//! `cargo xtask size`, which runs it twice). The "interrupt" rows wake from
//! a real exception handler (PendSV, pended by software).
//!
//! The "awaited" rows count what it costs an interrupt handler to wake an
//! awaiting task: `BATCH` futures wait (an aiopoll `Request`, an
//! embassy-sync `Signal::wait`, a maitake-sync `WaitQueue::wait`), each
//! polled once with the same counting waker; then one PendSV handler wakes
//! them all, timed inside the handler, so neither the exception's entry
//! nor the task's next poll is in the figure.
#![no_std]
#![no_main]

use core::future::Future;
use core::hint::black_box;
use core::pin::{pin, Pin};
use core::sync::atomic::Ordering;

use core::task::{Context as TaskContext, Poll, RawWaker, RawWakerVTable, Waker};
use portable_atomic::{AtomicU32, AtomicU8};

use aiopoll::kinds::TakesAwaited;
use aiopoll::{Completion, Context, Events, Outcome, RequestKinds};
use aiopoll_firmware_bench::{
    exit, measure, report, steps, timer, CortexMLocks, IrqEvent, BATCH, ITERATIONS, ROUNDS,
};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;

static FLAG: IrqEvent = IrqEvent::new();
static FLAGS: [IrqEvent; BATCH] = [const { IrqEvent::new() }; BATCH];
static SMALL: Context<'static, 4, CortexMLocks> = Context::new();
static BIG: Context<'static, BATCH, CortexMLocks> = Context::new();
/// The awaited round trip's own context, of a type of its own: sharing
/// `SMALL` would give its submit a second caller, and the compiler would
/// stop inlining it into the queued round trip's loop (92 instructions
/// more per queued round trip on the Cortex-M3).
static AWAITED: Context<'static, 2, CortexMLocks> = Context::new();
/// The same for a context that takes awaited requests and no other kind
/// beyond queued one-shot ones (no multishot requests, no deadlines): what
/// a firmware written on futures alone would name.
static AWAITED_ONLY: Context<'static, 2, CortexMLocks, 2, (), RequestKinds<false, true, false>> =
    Context::new();
static SIGNAL: embassy_sync::signal::Signal<CriticalSectionRawMutex, ()> =
    embassy_sync::signal::Signal::new();

static QUEUE: maitake_sync::WaitQueue = maitake_sync::WaitQueue::new();

static SIGNALS: [embassy_sync::signal::Signal<CriticalSectionRawMutex, ()>; BATCH] =
    [const { embassy_sync::signal::Signal::new() }; BATCH];
static QUEUES: [maitake_sync::WaitQueue; BATCH] = [const { maitake_sync::WaitQueue::new() }; BATCH];
/// Timer ticks spent inside the PendSV handler on the awaited batches.
static HANDLER_TICKS: AtomicU32 = AtomicU32::new(0);
/// Wakes the counting waker received.
static WAKES: AtomicU32 = AtomicU32::new(0);

/// The same waker for every awaited row: it counts its wakes.
static COUNTING: RawWakerVTable = RawWakerVTable::new(
    |data| RawWaker::new(data, &COUNTING),
    |_| {
        WAKES.fetch_add(1, Ordering::Relaxed);
    },
    |_| {
        WAKES.fetch_add(1, Ordering::Relaxed);
    },
    |_| {},
);

fn counting_waker() -> Waker {
    // SAFETY: the vtable's functions ignore the data pointer (null) and
    // uphold RawWaker's contract: clone returns a waker with the same
    // vtable, wake and wake_by_ref only count, drop does nothing.
    unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &COUNTING)) }
}

/// What the PendSV handler wakes.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Wakes {
    Nothing,
    Aiopoll,
    Embassy,
    Maitake,
    /// The awaited batches: the loop alone, then each peer's `BATCH` wakes.
    BatchLoop,
    AiopollAwaited,
    EmbassyAwaited,
    MaitakeAwaited,
}

static WAKER: AtomicU8 = AtomicU8::new(Wakes::Nothing as u8);

#[exception]
fn PendSV() {
    match WAKER.load(Ordering::Relaxed) {
        w if w == Wakes::Aiopoll as u8 => {
            FLAG.raise(Events::IN);
        }
        w if w == Wakes::Embassy as u8 => SIGNAL.signal(()),
        w if w == Wakes::Maitake as u8 => QUEUE.wake(),
        w if w == Wakes::BatchLoop as u8 => timed_batch(|index| {
            black_box(index);
        }),
        w if w == Wakes::AiopollAwaited as u8 => timed_batch(|index| {
            black_box(FLAGS[index].raise(Events::IN));
        }),
        w if w == Wakes::EmbassyAwaited as u8 => timed_batch(|index| SIGNALS[index].signal(())),
        w if w == Wakes::MaitakeAwaited as u8 => timed_batch(|index| QUEUES[index].wake()),
        _ => {}
    }
}

/// `wake(0..BATCH)` inside the handler, its ticks added to
/// `HANDLER_TICKS`.
#[inline(always)]
fn timed_batch(mut wake: impl FnMut(usize)) {
    let start = timer::now();
    for index in 0..BATCH {
        wake(index);
    }
    let end = timer::now();
    HANDLER_TICKS.fetch_add(start.wrapping_sub(end), Ordering::Relaxed);
}

/// Instructions the PendSV handler spends in `ROUNDS` batches of
/// `wakes`: each round makes `BATCH` futures with `make`, polls each once
/// (pending), pends PendSV, whose handler wakes them all, then polls each
/// to completion (the loop-only batch leaves them pending). `None` if a future was not pending before, not ready
/// after, or the waker was not woken once per future.
#[inline(never)]
fn awaited<F: Future>(wakes: Wakes, mut make: impl FnMut(usize) -> F) -> Option<u64> {
    let waker = counting_waker();
    let mut cx = TaskContext::from_waker(&waker);
    HANDLER_TICKS.store(0, Ordering::Relaxed);
    WAKES.store(0, Ordering::Relaxed);
    let checked = !matches!(wakes, Wakes::BatchLoop);
    let mut ok = true;
    for _ in 0..ROUNDS {
        let futures: [F; BATCH] = core::array::from_fn(&mut make);
        let mut futures = pin!(futures);
        for index in 0..BATCH {
            // SAFETY: the array is pinned and its elements are never moved
            // out of it: pinning projects structurally to each element.
            let future = unsafe { futures.as_mut().map_unchecked_mut(|all| &mut all[index]) };
            ok &= future.poll(&mut cx).is_pending();
        }
        WAKER.store(wakes as u8, Ordering::Relaxed);
        cortex_m::peripheral::SCB::set_pendsv();
        WAKER.store(Wakes::Nothing as u8, Ordering::Relaxed);
        if checked {
            for index in 0..BATCH {
                // SAFETY: as above.
                let future = unsafe { futures.as_mut().map_unchecked_mut(|all| &mut all[index]) };
                ok &= future.poll(&mut cx).is_ready();
            }
        }
        // Untimed: aiopoll's flags stay raised until cleared.
        for flag in &FLAGS {
            flag.clear(Events::IN);
        }
    }
    let woken = WAKES.load(Ordering::Relaxed);
    if checked && (!ok || woken != ROUNDS * BATCH as u32) {
        return None;
    }
    Some(timer::instructions(u64::from(
        HANDLER_TICKS.load(Ordering::Relaxed),
    )))
}

/// One awaited request woken by an interrupt (PendSV, whose handler
/// raises `FLAG`): the future's first poll submits it, the handler's wakeup
/// completes it, the second poll resolves it. Whether it went so.
#[inline(always)]
fn awaited_round_trip<const N: usize, K: TakesAwaited>(
    context: Pin<&'static Context<'static, N, CortexMLocks, 2, (), K>>,
) -> bool {
    let mut request = pin!(context.request(&FLAG, Events::IN));
    let pending = poll_once(request.as_mut()).is_pending();
    cortex_m::peripheral::SCB::set_pendsv();
    let ready = poll_once(request.as_mut()).is_ready();
    FLAG.clear(Events::IN);
    pending && ready
}

fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut TaskContext::from_waker(Waker::noop()))
}

#[entry]
fn main() -> ! {
    timer::start();
    hprintln!("case\tinstructions/op\tnet of the empty loop");

    let empty = measure(|| {
        black_box(());
    });
    report("empty loop", empty, u64::from(ITERATIONS), 0);

    // The floor: a lock/unlock (a critical section), one compare-and-swap,
    // a ring push and pop.
    let word = AtomicU32::new(0);
    let mut ring = heapless::spsc::Queue::<u16, 8>::new();
    let mut expected = 0;
    let floor = measure(|| {
        let (word, ring) = black_box((&word, &mut ring));
        critical_section::with(|_| black_box(()));
        let swapped =
            word.compare_exchange(expected, expected ^ 1, Ordering::AcqRel, Ordering::Acquire);
        expected ^= 1;
        black_box(swapped.is_ok());
        let _ = ring.enqueue(1);
        black_box(ring.dequeue());
    });
    report("floor", floor, u64::from(ITERATIONS), empty);

    let embassy = measure(|| {
        let signal = black_box(&SIGNAL);
        let mut wait = pin!(signal.wait());
        let pending = poll_once(wait.as_mut()).is_pending();
        signal.signal(());
        let ready = poll_once(wait.as_mut()).is_ready();
        black_box(pending && ready);
    });
    report(
        "embassy-sync Signal wait->signal->ready",
        embassy,
        u64::from(ITERATIONS),
        empty,
    );

    let queue = maitake_sync::WaitQueue::new();
    let maitake = measure(|| {
        let queue = black_box(&queue);
        let mut wait = pin!(queue.wait());
        let pending = poll_once(wait.as_mut()).is_pending();
        queue.wake();
        let ready = poll_once(wait.as_mut()).is_ready();
        black_box(pending && ready);
    });
    report(
        "maitake-sync WaitQueue wait->wake->ready",
        maitake,
        u64::from(ITERATIONS),
        empty,
    );

    let maitake_cancel = measure(|| {
        let queue = black_box(&queue);
        let mut wait = pin!(queue.wait());
        black_box(poll_once(wait.as_mut()).is_pending());
    });
    report(
        "maitake-sync WaitQueue wait->drop (cancel)",
        maitake_cancel,
        u64::from(ITERATIONS),
        empty,
    );

    let small = Pin::static_ref(&SMALL);
    let mut out = [Completion::EMPTY; BATCH];
    let round_trip = measure(|| {
        let (flag, context) = black_box((&FLAG, small));
        let submitted = context.submit(flag, Events::IN, 1).is_ok();
        flag.raise(Events::IN);
        let reaped = context.reap(&mut out[..1]);
        flag.clear(Events::IN);
        black_box(submitted && reaped == 1);
    });
    report(
        "aiopoll submit->wake->reap",
        round_trip,
        u64::from(ITERATIONS),
        empty,
    );

    let cancel = measure(|| {
        let (flag, context) = black_box((&FLAG, small));
        let cancelled = match context.submit(flag, Events::IN, 1) {
            Ok(handle) => context.cancel(handle).is_ok(),
            Err(_) => false,
        };
        let reaped = context.reap(&mut out[..1]);
        black_box(cancelled && reaped == 1 && out[0].outcome == Outcome::Cancelled);
    });
    report(
        "aiopoll submit->cancel->reap",
        cancel,
        u64::from(ITERATIONS),
        empty,
    );

    // The same round trips with the wake in a real exception handler
    // (PendSV, pended by software): what an interrupt-driven driver does.
    // The exception's entry and exit are not instructions, so they add
    // only the handler's own code.
    let pend = || cortex_m::peripheral::SCB::set_pendsv();
    let baseline = {
        WAKER.store(Wakes::Nothing as u8, Ordering::Relaxed);
        measure(pend)
    };
    report(
        "(pend PendSV, empty handler)",
        baseline,
        u64::from(ITERATIONS),
        0,
    );
    WAKER.store(Wakes::Embassy as u8, Ordering::Relaxed);
    let embassy_irq = measure(|| {
        let signal = black_box(&SIGNAL);
        let mut wait = pin!(signal.wait());
        let pending = poll_once(wait.as_mut()).is_pending();
        pend();
        let ready = poll_once(wait.as_mut()).is_ready();
        black_box(pending && ready);
    });
    report(
        "embassy-sync Signal wait->interrupt signal->ready",
        embassy_irq,
        u64::from(ITERATIONS),
        empty,
    );
    WAKER.store(Wakes::Maitake as u8, Ordering::Relaxed);
    let maitake_irq = measure(|| {
        let queue = black_box(&QUEUE);
        let mut wait = pin!(queue.wait());
        let pending = poll_once(wait.as_mut()).is_pending();
        pend();
        let ready = poll_once(wait.as_mut()).is_ready();
        black_box(pending && ready);
    });
    report(
        "maitake-sync WaitQueue wait->interrupt wake->ready",
        maitake_irq,
        u64::from(ITERATIONS),
        empty,
    );
    WAKER.store(Wakes::Aiopoll as u8, Ordering::Relaxed);
    let aiopoll_irq = measure(|| {
        let context = black_box(small);
        let submitted = context.submit(&FLAG, Events::IN, 1).is_ok();
        pend();
        let reaped = context.reap(&mut out[..1]);
        FLAG.clear(Events::IN);
        black_box(submitted && reaped == 1);
    });
    report(
        "aiopoll submit->interrupt wake->reap",
        aiopoll_irq,
        u64::from(ITERATIONS),
        empty,
    );
    // The same request awaited: the future's first poll submits, the
    // handler's wakeup completes it, the second poll resolves it.
    let awaited_irq = measure(|| {
        black_box(awaited_round_trip(black_box(Pin::static_ref(&AWAITED))));
    });
    report(
        "aiopoll awaited Request wait->interrupt wake->ready",
        awaited_irq,
        u64::from(ITERATIONS),
        empty,
    );
    let awaited_only_irq = measure(|| {
        black_box(awaited_round_trip(black_box(Pin::static_ref(
            &AWAITED_ONLY,
        ))));
    });
    report(
        "aiopoll awaited Request wait->interrupt wake->ready, a context of queued and awaited requests only",
        awaited_only_irq,
        u64::from(ITERATIONS),
        empty,
    );
    WAKER.store(Wakes::Nothing as u8, Ordering::Relaxed);

    // The steps on their own: BATCH requests on BATCH flags, one waiter each.
    let big = Pin::static_ref(&BIG);
    steps(
        big,
        &FLAGS,
        [
            "(batch loop)",
            "aiopoll submit (one request)",
            "aiopoll wake of one waiter (interrupt side)",
            "aiopoll reap (one completion)",
            "aiopoll cancel (one request)",
        ],
    );

    // An interrupt handler waking awaiting tasks: the peers side by side.
    let per_batch = u64::from(ROUNDS) * BATCH as u64;
    let handler_loop = awaited(Wakes::BatchLoop, |_| core::future::pending::<()>());
    // `big` again (every request of the per-step rows is reaped): the
    // Cortex-M0's 16 KiB of RAM holds one context of BATCH slots.
    let awaited_context = big;
    let rows = [
        (
            "aiopoll awaited Request: interrupt wakes the task (handler side)",
            awaited(Wakes::AiopollAwaited, |index| {
                awaited_context.request(&FLAGS[index], Events::IN)
            }),
        ),
        (
            "embassy-sync Signal: interrupt wakes the task (handler side)",
            awaited(Wakes::EmbassyAwaited, |index| SIGNALS[index].wait()),
        ),
        (
            "maitake-sync WaitQueue: interrupt wakes the task (handler side)",
            awaited(Wakes::MaitakeAwaited, |index| QUEUES[index].wait()),
        ),
    ];
    let mut all_ok = handler_loop.is_some();
    if let Some(handler_loop) = handler_loop {
        report("(batch loop in the handler)", handler_loop, per_batch, 0);
        for (name, instructions) in rows {
            match instructions {
                Some(instructions) => report(name, instructions, per_batch, handler_loop),
                None => {
                    hprintln!("{}\tFAILED\tFAILED", name);
                    all_ok = false;
                }
            }
        }
    }

    exit(all_ok)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

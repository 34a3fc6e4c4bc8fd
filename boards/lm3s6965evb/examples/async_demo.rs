//! aiopoll in async firmware: embassy-executor tasks await poll requests
//! that a timer interrupt completes. Run it with
//! `cargo xtask qemu lm3s6965evb async_demo`.
//!
//! - `context.request(&source, events).await` submits a request and
//!   resolves with its one outcome; the task sleeps in the executor
//!   meanwhile.
//! - The timer interrupt (every millisecond, priority 0x00, above the
//!   context's ceiling 0x20) ticks `TICKS` and raises `EVENT` every third
//!   tick. A keyed wakeup completes its request in the interrupt and wakes
//!   the task from there; what it cannot complete itself (the context was
//!   locked, or a deadline must be re-checked) goes to deferred work in
//!   GPIOB (0xE0), which wakes the task.
//! - `AsyncDelay` is embedded-hal-async's `DelayNs` on `TICKS`; a timeout is
//!   `select(request, delay)`: the loser is dropped, which cancels it.
#![no_std]
#![no_main]

use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{AsyncDelay, CeilingLocks, IrqEvent, PendInterrupt, Ticks};
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embedded_hal_async::delay::DelayNs;
use lm3s6965::interrupt;
use lm3s6965evb::{exit, timer0, Interrupt};

/// Timer 0 runs at QEMU's 12.5 MHz system clock: 12,500 cycles a tick.
const TICK_CYCLES: u32 = 12_500;
const TICK_NS: u32 = 1_000_000;

type DemoContext = Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>>;

/// Four request slots; deferred work goes to GPIOB.
static CONTEXT: DemoContext = Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
/// Raised by the timer interrupt every third tick.
static EVENT: IrqEvent = IrqEvent::new();
/// Never raised: what the timeout waits on.
static QUIET: IrqEvent = IrqEvent::new();
/// The timer as a source: delays wait on it.
static TICKS: Ticks = Ticks::new();
/// Raised by the blink task when it is done.
static BLINKED: IrqEvent = IrqEvent::new();
static TICK: AtomicU32 = AtomicU32::new(0);

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    TICKS.tick();
    if TICK.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
        EVENT.raise(Events::IN);
    }
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[embassy_executor::task]
async fn blink(
    mut delay: AsyncDelay<'static, 'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>>,
) {
    for n in 1..=3 {
        delay.delay_ms(5).await;
        defmt::info!("blink {}: tick {}", n, TICKS.now());
    }
    BLINKED.raise(Events::IN);
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let context = Pin::static_ref(&CONTEXT);
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0);
    timer0::start(TICK_CYCLES);
    defmt::info!("async demo on lm3s6965evb: embassy tasks await aiopoll requests");

    let delay = AsyncDelay::new(context, &TICKS, TICK_NS);
    spawner.spawn(blink(delay).unwrap());

    // 1. Requests the timer interrupt completes.
    for n in 1..=3 {
        let outcome = context.request(&EVENT, Events::IN).await;
        EVENT.clear(Events::IN);
        defmt::info!("request {}: {} at tick {}", n, outcome, TICKS.now());
    }

    // 2. A timeout: the request loses to the delay and is dropped.
    match select(context.request(&QUIET, Events::IN), delay.delay_ticks(4)).await {
        Either::First(outcome) => defmt::error!("QUIET completed: {}", outcome),
        Either::Second(()) => defmt::info!(
            "timed out at tick {}: the request was dropped, so cancelled",
            TICKS.now()
        ),
    }

    // 3. Wait for the other task, then account for every request.
    let _ = context.request(&BLINKED, Events::IN).await;
    timer0::stop();
    let stats = context.stats();
    defmt::info!(
        "{} requests: {} completed in the interrupt, {} by deferred work in GPIOB, {} at submit, {} cancelled",
        stats.submitted,
        stats.completed_by_wakeup,
        stats.completed_by_deferred_work,
        stats.completed_at_submit,
        stats.cancelled
    );
    let accounted = stats.awaited == stats.submitted
        && stats.completed_by_wakeup
            + stats.completed_by_deferred_work
            + stats.completed_at_submit
            + stats.cancelled
            == stats.submitted
        && context.in_use() == 0;
    defmt::info!(
        "every request accounted for once, no slot in use: {}",
        accounted
    );
    exit(accounted && stats.cancelled == 1)
}

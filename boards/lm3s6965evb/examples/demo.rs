//! The aiopoll demo: a timer interrupt completes poll requests, one request
//! is cancelled, and one completion is deferred because the interrupt found
//! the context locked. Run it with `cargo xtask demo`.
//!
//! The context uses a priority-ceiling lock at 0x20; the timer interrupt runs
//! at 0x00, above the ceiling, so aiopoll never masks it. When it fires while
//! thread mode holds the context, its wakeup cannot take the lock and hands
//! the completion to GPIOB, a low-priority interrupt pended for the purpose.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Outcome};
use aiopoll_cortex_m::{reap_blocking, CeilingLocks, IrqEvent, PendInterrupt};
use cortex_m_rt::entry;
use lm3s6965::interrupt;
use lm3s6965evb::{exit, timer0, Interrupt};

/// Raised by the timer interrupt.
static TIMER: IrqEvent = IrqEvent::new();

/// Four request slots; deferred work goes to GPIOB.
static CONTEXT: Context<'static, 4, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    TIMER.raise(Events::IN);
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0);
    defmt::info!(
        "aiopoll demo on lm3s6965evb: timer interrupt at priority 0x00, context ceiling 0x20"
    );

    // 1. Requests completed by the timer interrupt.
    timer0::start(50_000);
    let mut done = [Completion::EMPTY; 1];
    for user_data in 1..=3 {
        context.submit(&TIMER, Events::IN, user_data).unwrap();
        reap_blocking(&context, &mut done);
        defmt::info!(
            "request {} completed by the timer interrupt: {}",
            done[0].user_data,
            done[0].outcome
        );
        TIMER.take();
    }

    // 2. A cancel: the timer is stopped, so the request waits until cancelled.
    timer0::stop();
    TIMER.take();
    let handle = context.submit(&TIMER, Events::IN, 10).unwrap();
    defmt::info!("request 10 waits; cancel says {}", context.cancel(handle));
    reap_blocking(&context, &mut done);
    defmt::info!(
        "request {} completed: {}",
        done[0].user_data,
        done[0].outcome
    );

    // 3. A deferred completion: a fast timer, and thread mode reaping without
    // sleeping, so that it holds the context lock often, until one interrupt
    // lands while it does. (Sleeping in `reap_blocking` would wake with
    // each tick at the same instruction: under `-icount` no tick would ever
    // land inside the lock.)
    let before = context.stats().completed_by_deferred_work;
    timer0::start(400);
    let mut user_data = 100;
    while context.stats().completed_by_deferred_work == before {
        if user_data == 10_100 {
            defmt::error!("no interrupt landed inside the context lock in 10,000 tries");
            exit(false);
        }
        context.submit(&TIMER, Events::IN, user_data).unwrap();
        while context.reap(&mut done) == 0 {}
        if done[0].outcome != Outcome::Ready(Events::IN) {
            exit(false);
        }
        TIMER.take();
        user_data += 1;
    }
    timer0::stop();
    defmt::info!("an interrupt found the context locked: its completion ran in GPIOB, once ({} deferred completion)",
        context.stats().completed_by_deferred_work - before);

    let stats = context.stats();
    let accounted = stats.reaped == stats.submitted && context.in_use() == 0;
    defmt::info!(
        "every request completed exactly once, no slot in use: {}",
        accounted
    );
    exit(accounted)
}

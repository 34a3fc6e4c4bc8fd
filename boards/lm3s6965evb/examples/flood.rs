//! Scenario: 100,000 requests under the timer at the fastest rate at which
//! thread mode still makes progress, with the whole operation mix: keyed
//! wakeups (inline or deferred), unkeyed wakeups (re-poll in deferred work,
//! often spurious because thread mode clears the readiness again), a source
//! that the interrupt tears down (`close`) every 33rd tick and thread mode
//! brings back (`reopen`), cancels, and reaping. Every request must complete
//! exactly once and no slot may leak.
#![no_std]
#![no_main]

use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Completion, Context, Events, Handle, SubmitError};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, Ledger, Stall, STALL_ROUNDS};
use cortex_m_rt::entry;
use lm3s6965::interrupt;
use lm3s6965evb::{timer0, Interrupt};

/// Requests in the run.
const REQUESTS: u32 = 100_000;
/// Timer period in clock cycles: the fastest rate at which the whole mix
/// still happens. The timer handler and the deferred work it causes take
/// most of it. Measured under `-icount shift=3`: at 50 cycles every request
/// has a wakeup (often deferred) before thread mode's cancel reaches it,
/// and a wakeup that came first wins against the cancel, so none is
/// cancelled; at 60, 29 are; at 70, about 400.
const PERIOD: u32 = 70;

/// Woken with key IN: completes inline, or deferred when the interrupt
/// lands inside the context lock.
static KEYED: IrqEvent = IrqEvent::new();
/// Woken without a key: always re-polled by deferred work; every other
/// time nothing changed.
static UNKEYED: IrqEvent = IrqEvent::new();
/// Torn down by the interrupt every 33rd tick, reopened by thread mode.
static LINK: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
static TICKS: AtomicU32 = AtomicU32::new(0);
static CLOSES: AtomicU32 = AtomicU32::new(0);

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    let tick = TICKS.fetch_add(1, Ordering::Relaxed);
    match tick % 3 {
        0 => {
            KEYED.raise(Events::IN);
        }
        // Every other unkeyed wakeup comes with no change at all (as on a
        // shared interrupt line): its re-poll is spurious and re-arms.
        1 if tick.is_multiple_of(2) => {
            UNKEYED.queue().wake(Events::empty());
        }
        1 => {
            UNKEYED.raise_unkeyed(Events::IN);
        }
        _ if tick % 33 == 2 => {
            LINK.queue().close();
            CLOSES.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            LINK.raise(Events::IN);
        }
    }
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    let sources = [&KEYED, &UNKEYED, &LINK];
    enable(Interrupt::TIMER_0A, 0x00);
    enable(Interrupt::GPIOB, 0xE0);

    let mut ledger = Ledger::<{ REQUESTS.div_ceil(32) as usize }>::new();
    let mut handles: [Option<Handle>; 8] = [None; 8];
    let mut out = [Completion::EMPTY; 8];
    let mut next = 0u32;
    let mut reopens = 0u32;

    let mut stall = Stall::new(STALL_ROUNDS);
    timer0::start(PERIOD);
    while ledger.completed < REQUESTS {
        let submitted_before = next;
        if next < REQUESTS {
            let source = sources[next as usize % sources.len()];
            match context.submit(source, Events::IN, u64::from(next)) {
                Ok(handle) => {
                    handles[next as usize % handles.len()] = Some(handle);
                    next += 1;
                }
                Err(SubmitError::Busy) => {}
                Err(other) => {
                    defmt::error!("submit failed: {}", other);
                    exit(false);
                }
            }
            if next.is_multiple_of(5) {
                if let Some(handle) = handles[(next as usize + 3) % handles.len()].take() {
                    let _ = context.cancel(handle);
                }
            }
        }
        // The condition was handled: what comes later is raised again.
        for source in sources {
            source.clear(Events::IN);
        }
        if next.is_multiple_of(16) && LINK.queue().reopen() {
            reopens += 1;
        }
        let count = ledger.reap(&context, &mut out);
        if stall.stalled(count > 0 || next != submitted_before) {
            defmt::error!(
                "stalled: {} requests never completed",
                next - ledger.completed
            );
            exit(false);
        }
        if count == 0 && next == REQUESTS {
            // Only waiting requests left (on LINK, reopened): the timer
            // completes or tears them down.
            if LINK.queue().reopen() {
                reopens += 1;
            }
            cortex_m::asm::wfi();
        }
    }
    timer0::stop();

    let all_once = ledger.all_once(REQUESTS);
    let stats = context.stats();
    let ticks = TICKS.load(Ordering::Relaxed);
    defmt::info!(
        "flood: {} requests, {} timer interrupts: {} ready, {} cancelled, {} source gone; each completed exactly once: {}; slots in use at the end: {}",
        REQUESTS,
        ticks,
        ledger.ready,
        ledger.cancelled,
        ledger.gone,
        all_once,
        context.in_use()
    );
    defmt::info!(
        "deferred path: {} wakeups deferred, {} completions by deferred work, {} spurious re-polls; {} teardowns, {} reopens",
        stats.deferrals,
        stats.completed_by_deferred_work,
        stats.spurious,
        CLOSES.load(Ordering::Relaxed),
        reopens
    );
    exit(
        all_once
            && context.in_use() == 0
            && stats.completed_by_deferred_work > 0
            && stats.spurious > 0
            && ledger.gone > 0
            && ledger.cancelled > 0,
    )
}

//! Scenario: the deferred-work interrupt starved. Every wakeup here is
//! unkeyed, so every completion goes through deferred work (GPIOB, the
//! least urgent interrupt), and GPIOB is kept from running in two ways:
//!
//! 1. **Preempted**: thread mode fills the context, starts the timer and
//!    pends GPIOA, a busy handler more urgent than GPIOB that runs for a
//!    dozen timer ticks. The wakeups pile up (each request's work is requested once, however
//!    often its queue fires); when GPIOA returns, GPIOB runs and completes
//!    every request.
//! 2. **Masked**: thread mode masks GPIOB (BASEPRI) and goes on submitting,
//!    cancelling and reaping. GPIOB never runs, and nothing is stranded:
//!    `reap` runs the deferred work itself.
//!
//! Every request must complete exactly once, and no slot may leak.
#![no_std]
#![no_main]

use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Completion, Context, Events, Handle, SubmitError};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, Ledger, Stall, STALL_ROUNDS};
use cortex_m::peripheral::NVIC;
use cortex_m::register::basepri;
use cortex_m_rt::entry;
use lm3s6965::interrupt;
use lm3s6965evb::{timer0, Interrupt};

/// Slots, and requests per starved round of phase 1.
const SLOTS: usize = 16;
/// Requests per phase.
const REQUESTS: u32 = 10_000;
/// Timer period in clock cycles.
const PERIOD: u32 = 400;
/// Busy-loop iterations of the starving handler: about a dozen timer
/// periods.
const STARVE_SPINS: u32 = 20_000;
/// BASEPRI that masks GPIOB (0xE0) and GPIOA (0x80) but not the timer.
const MASK_DEFERRED_WORK: u8 = 0x80;

static EVENT: IrqEvent = IrqEvent::new();
static CONTEXT: Ctx = Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
/// Runs of the deferred-work interrupt, and the requests it completed.
static DEFERRED_RUNS: AtomicU32 = AtomicU32::new(0);
static DEFERRED_COMPLETED: AtomicU32 = AtomicU32::new(0);
/// Deferred-work requests still outstanding when each starvation ended,
/// summed, and the timer ticks that landed while GPIOB was starved.
static OUTSTANDING: AtomicU32 = AtomicU32::new(0);
static STARVED_TICKS: AtomicU32 = AtomicU32::new(0);
static TICKS: AtomicU32 = AtomicU32::new(0);

#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    TICKS.fetch_add(1, Ordering::Relaxed);
    EVENT.raise_unkeyed(Events::IN);
}

/// The starving handler: busy, more urgent than GPIOB.
#[interrupt]
fn GPIOA() {
    let before = TICKS.load(Ordering::Relaxed);
    for _ in 0..STARVE_SPINS {
        cortex_m::asm::nop();
    }
    STARVED_TICKS.fetch_add(TICKS.load(Ordering::Relaxed) - before, Ordering::Relaxed);
    if CONTEXT.has_deferred_work() {
        OUTSTANDING.fetch_add(1, Ordering::Relaxed);
    }
}

#[interrupt]
fn GPIOB() {
    DEFERRED_RUNS.fetch_add(1, Ordering::Relaxed);
    let completed = CONTEXT.run_deferred();
    DEFERRED_COMPLETED.fetch_add(completed as u32, Ordering::Relaxed);
}

/// This example's context type.
type Ctx = Context<'static, SLOTS, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>>;

/// Exactly-once bookkeeping of one phase.
type PhaseLedger = Ledger<{ REQUESTS.div_ceil(32) as usize }>;

/// Reaps what is there into `ledger`; returns how many.
fn reap(ledger: &mut PhaseLedger, context: Pin<&'static Ctx>) -> usize {
    let mut out = [Completion::EMPTY; SLOTS];
    ledger.reap(&context, &mut out)
}

fn submit(context: Pin<&'static Ctx>, user_data: u32) -> Option<Handle> {
    match context.submit(&EVENT, Events::IN, u64::from(user_data)) {
        Ok(handle) => Some(handle),
        Err(SubmitError::Busy) => None,
        Err(other) => {
            defmt::error!("submit failed: {}", other);
            exit(false)
        }
    }
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    enable(Interrupt::TIMER_0A, 0x00);
    enable(Interrupt::GPIOA, 0x80);
    enable(Interrupt::GPIOB, 0xE0);

    // Phase 1: GPIOB preempted by a busy, more urgent handler.
    let mut first = PhaseLedger::new();
    let mut stall = Stall::new(STALL_ROUNDS);
    let mut next = 0u32;
    while first.completed < REQUESTS {
        // Fill the context with the timer stopped, so that every request
        // waits; then starve the deferred work while the timer fires.
        timer0::stop();
        EVENT.clear(Events::IN);
        while next < REQUESTS && submit(context, next).is_some() {
            next += 1;
        }
        timer0::start(PERIOD);
        NVIC::pend(Interrupt::GPIOA);
        // Make the pend take effect before the next instruction.
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        // GPIOA ran and returned; GPIOB ran after it.
        if stall.stalled(reap(&mut first, context) > 0) {
            defmt::error!(
                "stalled: {} requests never completed",
                next - first.completed
            );
            exit(false);
        }
    }
    let stats = context.stats();
    defmt::info!(
        "starved by a busy handler: {} requests: {} ready; each completed exactly once: {}; {} timer ticks landed while the deferred work was starved",
        REQUESTS,
        first.ready,
        first.all_once(REQUESTS),
        STARVED_TICKS.load(Ordering::Relaxed)
    );
    defmt::info!(
        "  deferred work was outstanding at the end of {} starvations; {} wakeups deferred, {} deferred-work runs completed {} requests",
        OUTSTANDING.load(Ordering::Relaxed),
        stats.deferrals,
        DEFERRED_RUNS.load(Ordering::Relaxed),
        DEFERRED_COMPLETED.load(Ordering::Relaxed)
    );

    // Phase 2: GPIOB masked; the reaper runs the deferred work.
    let mut second = PhaseLedger::starting_at(REQUESTS as u64);
    let runs_before = DEFERRED_RUNS.load(Ordering::Relaxed);
    let deferred_before = stats.completed_by_deferred_work;
    let mut handles: [Option<Handle>; SLOTS] = [None; SLOTS];
    timer0::start(PERIOD);
    // SAFETY: raising BASEPRI only masks interrupts; the context's ceiling
    // lock saves and restores whatever it finds.
    unsafe { basepri::write(MASK_DEFERRED_WORK) };
    let mut next = 0u32;
    while second.completed < REQUESTS {
        let submitted_before = next;
        if next < REQUESTS {
            if let Some(handle) = submit(context, REQUESTS + next) {
                handles[next as usize % SLOTS] = Some(handle);
                next += 1;
                if next.is_multiple_of(3) {
                    if let Some(handle) = handles[(next as usize + 5) % SLOTS].take() {
                        let _ = context.cancel(handle);
                    }
                }
            }
        }
        EVENT.clear(Events::IN);
        let count = reap(&mut second, context);
        if stall.stalled(count > 0 || next != submitted_before) {
            defmt::error!(
                "stalled: {} requests never completed",
                next - second.completed
            );
            exit(false);
        }
        if count == 0 && next == REQUESTS {
            // Only waiting requests left: the next tick (above the mask)
            // wakes them, and the next reap completes them.
            cortex_m::asm::wfi();
        }
    }
    let masked_runs = DEFERRED_RUNS.load(Ordering::Relaxed) - runs_before;
    let by_reaper = context.stats().completed_by_deferred_work - deferred_before;
    // SAFETY: as above; GPIOB may run again now.
    unsafe { basepri::write(0) };
    timer0::stop();
    defmt::info!(
        "deferred work masked: {} requests: {} ready, {} cancelled; each completed exactly once: {}; deferred-work interrupt runs while masked: {}; completed by the reaper's deferred work: {}",
        REQUESTS,
        second.ready,
        second.cancelled,
        second.all_once(REQUESTS),
        masked_runs,
        by_reaper
    );
    defmt::info!("slots in use at the end: {}", context.in_use());
    exit(
        first.all_once(REQUESTS)
            && second.all_once(REQUESTS)
            && first.gone + second.gone == 0
            && context.in_use() == 0
            && OUTSTANDING.load(Ordering::Relaxed) > 0
            && masked_runs == 0
            && by_reaper > 0,
    )
}

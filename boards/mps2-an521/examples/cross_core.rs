//! Cross-core wakeups on the SSE-200's two Cortex-M33: core 1 takes timer
//! 0's interrupt and wakes poll requests that core 0 submits, cancels and
//! reaps. Run it with `cargo xtask qemu mps2-an521 cross_core`.
//!
//! - Core 0 starts in cortex-m-rt's reset handler as usual, then releases
//!   core 1 (`board::start_core1`): INITSVTOR1 points at core 1's own vector
//!   table ([`CORE1_VECTORS`], in flash), whose first two words are core 1's
//!   own stack ([`CORE1_STACK`], in `.bss`) and its entry ([`core1_main`]),
//!   so core 1 never runs cortex-m-rt's reset code (which would zero `.bss`
//!   under core 0) and never shares a stack. Its interrupt lines have their
//!   own handlers in that table: no dispatch by core number is needed.
//! - Timer 0's line (3) reaches both cores' NVICs; only core 1 unmasks it.
//!   Its handler raises [`TICK`], an `IrqEvent`: the wakeup completes the
//!   waiting requests right there, on core 1, when it can take the context
//!   lock.
//! - The context and the event's wait queue use `MultiCoreLocks`: PRIMASK on
//!   the holder's core plus a flag shared by the cores. When core 0 holds
//!   the context, core 1's try-lock fails and the completion is deferred:
//!   the context's hook ([`board::Doorbell`]) rings core 0's doorbell in MHU
//!   0, and core 0's doorbell interrupt (line 6) runs the deferred work;
//!   core 0's reaps run any that is still pending.
//! - Core 0 never busy-waits without a hint: when a round makes no progress
//!   it waits in `WFE` (core 1's completions and ticks signal `SEV`), and
//!   every lock spins with `YIELD`. Under `-icount` QEMU 7.2 runs both cores
//!   on one host thread, round-robin, and hands the whole time slice to the
//!   first core: a core that spins without yielding starves the other (seen
//!   with a probe firmware; see docs/mps2-an521.md).
//!
//! Every request must complete exactly once (its user data seen once), no
//! slot may be left in use, and the run must have had cross-core deferrals
//! and inline completions on core 1. A bound on timer ticks without
//! progress turns a stranded request into a failure instead of a hang.
#![no_std]
#![no_main]

use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Completion, Context, Events, Handle, SubmitError};
use aiopoll_cortex_m::{IrqEvent, MultiCoreLock, MultiCoreLocks};
use aiopoll_scenarios::{enable, exit, Ledger, Stall};
use board::{
    Doorbell, Handler, Mhu0, Stack, Timer0, VectorTable, CORE1_LINES, DOORBELL_IRQ, TIMER0_IRQ,
};
use cortex_m_rt::{entry, exception};

/// Requests core 0 submits.
const REQUESTS: u32 = 12_000;
/// Request slots of the context.
const SLOTS: usize = 8;
/// Core 1's first timer period, in 20 MHz timer ticks.
const FIRST_PERIOD: u32 = 300;
/// The period grows by one tick every `TICKS_PER_PERIOD` interrupts, over
/// `PERIODS` values, so that the interrupt lands at many different points
/// of core 0's loop (under `-icount`, where timing is deterministic).
const PERIODS: u32 = 32;
const TICKS_PER_PERIOD: u32 = 64;
/// Timer ticks in a row without progress on core 0 after which a request
/// counts as stranded: any waiting request completes at the next tick.
const STALL_TICKS: u32 = 10_000;
/// Rounds of core 0 without a single timer tick after which core 1 counts
/// as stopped.
const SILENT_ROUNDS: u32 = 50_000_000;

/// Raised by core 1's timer interrupt.
static TICK: IrqEvent<MultiCoreLock> = IrqEvent::new();
/// Core 0's requests. Deferred work rings core 0's doorbell.
static CONTEXT: Context<'static, SLOTS, MultiCoreLocks, 1, Doorbell<0>> =
    Context::with_hooks(Doorbell);

/// Core 1's stack: 4 KiB.
static CORE1_STACK: Stack<512> = Stack::new();
/// Core 1's vector table: its stack, its entry, and its handlers.
static CORE1_VECTORS: VectorTable = VectorTable::new(CORE1_STACK.top(), core1_main, core1_fault, {
    let mut lines: [Handler; CORE1_LINES] = [core1_fault; CORE1_LINES];
    lines[TIMER0_IRQ.0 as usize] = core1_timer;
    lines
});

/// Core 1's CPU_IDENTITY number plus one, once it runs.
static CORE1_UP: AtomicU32 = AtomicU32::new(0);
/// Timer interrupts core 1 took.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Requests core 1's wakeups woke (completed inline or deferred).
static WOKEN: AtomicU32 = AtomicU32::new(0);
/// Core 0's doorbell interrupts, and the requests their deferred work
/// completed.
static DOORBELLS: AtomicU32 = AtomicU32::new(0);
static DOORBELL_COMPLETIONS: AtomicU32 = AtomicU32::new(0);

/// Core 1's entry, from its vector table, on its own stack.
unsafe extern "C" fn core1_main() -> ! {
    enable(TIMER0_IRQ, 0x00);
    CORE1_UP.store(u32::from(board::core_id()) + 1, Ordering::Release);
    Timer0::start(FIRST_PERIOD);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Core 1's timer interrupt.
unsafe extern "C" fn core1_timer() {
    Timer0::acknowledge();
    let ticks = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    if ticks.is_multiple_of(TICKS_PER_PERIOD) {
        Timer0::start(FIRST_PERIOD + (ticks / TICKS_PER_PERIOD) % PERIODS);
    }
    let woken = TICK.raise(Events::IN);
    WOKEN.fetch_add(woken as u32, Ordering::Relaxed);
    // A tick: ends core 0's WFE even when nothing completed, so that its
    // stall bound counts ticks.
    cortex_m::asm::sev();
}

/// Any other exception or interrupt on core 1 fails the run.
unsafe extern "C" fn core1_fault() {
    let ipsr: u32;
    // SAFETY: reads IPSR (the active exception number); no side effect.
    unsafe { core::arch::asm!("mrs {}, IPSR", out(reg) ipsr, options(nomem, nostack)) };
    defmt::error!("core 1: unexpected exception {}", ipsr & 0x1FF);
    exit(false)
}

/// Core 0's interrupts (cortex-m-rt's table): only the doorbell is unmasked.
#[exception]
unsafe fn DefaultHandler(_: i16) {
    if board::active_irq() == Some(DOORBELL_IRQ) {
        // Clear first: a ring during the work raises the line again.
        Mhu0::clear(0);
        DOORBELLS.fetch_add(1, Ordering::Relaxed);
        let completed = CONTEXT.run_deferred();
        DOORBELL_COMPLETIONS.fetch_add(completed as u32, Ordering::Relaxed);
    }
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    enable(DOORBELL_IRQ, 0x80);
    let cpuwait = board::start_core1(&CORE1_VECTORS);
    let mut rounds = 0u32;
    while CORE1_UP.load(Ordering::Acquire) == 0 {
        rounds += 1;
        if rounds == SILENT_ROUNDS {
            defmt::error!("core 1 did not start (CPUWAIT was {=u32:#x})", cpuwait);
            exit(false);
        }
        core::hint::spin_loop();
    }
    defmt::info!(
        "cross_core on {}: CPUWAIT was {=u32:#x}; core 1 is running (CPU_IDENTITY {}) and takes timer 0 (line {}); core 0 submits, cancels and reaps",
        board::NAME,
        cpuwait,
        CORE1_UP.load(Ordering::Acquire) - 1,
        TIMER0_IRQ.0
    );

    let mut ledger = Ledger::<{ (REQUESTS as usize).div_ceil(32) }>::new();
    let mut handles: [Option<Handle>; SLOTS] = [None; SLOTS];
    let mut out = [Completion::EMPTY; SLOTS];
    let mut next = 0u32;
    let mut stall = Stall::new(STALL_TICKS);
    let mut last_tick = TICKS.load(Ordering::Relaxed);
    let mut progress = false;
    let mut silent = 0u32;
    while ledger.completed < REQUESTS {
        let submitted_before = next;
        if next < REQUESTS {
            // The new request waits for a tick after this point.
            TICK.clear(Events::IN);
            match context.submit(&TICK, Events::IN, u64::from(next)) {
                Ok(handle) => {
                    handles[next as usize % SLOTS] = Some(handle);
                    next += 1;
                }
                Err(SubmitError::Busy) => {}
                Err(other) => {
                    defmt::error!("submit failed: {}", other);
                    exit(false);
                }
            }
            if next.is_multiple_of(7) {
                if let Some(handle) = handles[(next as usize + 3) % SLOTS].take() {
                    // Pending: cancelled now. Completed already: NotFound,
                    // and its one completion is in the queue.
                    let _ = context.cancel(handle);
                }
            }
        }
        let count = ledger.reap(&context, &mut out);
        progress |= count > 0 || next != submitted_before;

        // The stall bound counts timer ticks, not rounds: core 0 may run
        // many rounds while the host does not schedule core 1's thread.
        let tick = TICKS.load(Ordering::Relaxed);
        if tick != last_tick {
            last_tick = tick;
            silent = 0;
            if stall.stalled(progress) {
                defmt::error!(
                    "stalled: {} of {} requests never completed in {} ticks",
                    next - ledger.completed,
                    REQUESTS,
                    STALL_TICKS
                );
                exit(false);
            }
            progress = false;
        } else {
            silent += 1;
            if silent == SILENT_ROUNDS {
                defmt::error!("core 1 stopped taking timer interrupts");
                exit(false);
            }
        }
        if count == 0 && next == submitted_before {
            // Nothing to do until core 1 completes something: wait for its
            // SEV (lossless: an SEV since the reap makes WFE return at once).
            cortex_m::asm::wfe();
        }
    }
    Timer0::stop();

    let stats = context.stats();
    let all_once = ledger.all_once(REQUESTS) && ledger.gone == 0;
    let in_use = context.in_use();
    defmt::info!(
        "{} requests: {} ready, {} cancelled; each completed exactly once: {}; slots in use at the end: {}",
        REQUESTS,
        ledger.ready,
        ledger.cancelled,
        all_once,
        in_use
    );
    defmt::info!(
        "core 1: {} timer interrupts woke {} requests; {} completed inline on core 1, {} at submit",
        TICKS.load(Ordering::Relaxed),
        WOKEN.load(Ordering::Relaxed),
        stats.completed_by_wakeup,
        stats.completed_at_submit
    );
    let doorbell = DOORBELL_COMPLETIONS.load(Ordering::Relaxed);
    defmt::info!(
        "cross-core deferrals: {} wakeups on core 1 found the context held by core 0; deferred work completed {} ({} in core 0's doorbell interrupt, rung {} times; {} in core 0's reaps), {} re-polls found nothing",
        stats.deferrals,
        stats.completed_by_deferred_work,
        doorbell,
        DOORBELLS.load(Ordering::Relaxed),
        stats.completed_by_deferred_work - doorbell,
        stats.spurious
    );
    let success = all_once
        && in_use == 0
        && stats.submitted == REQUESTS
        && stats.reaped == REQUESTS
        && stats.deferrals > 0
        && stats.completed_by_deferred_work > 0
        && stats.completed_by_wakeup > 0;
    defmt::info!(
        "every request accounted once, no slot leaked, deferrals and inline completions across cores: {}",
        success
    );
    exit(success)
}

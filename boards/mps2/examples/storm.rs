//! Scenario: CMSDK timer 0's interrupt storm while thread mode submits,
//! cancels and reaps (the shared `aiopoll_scenarios::storm`). The timer runs
//! at 0x00, above the context's ceiling 0x20, so it lands inside the context
//! lock and its completions are deferred to the spare line. The period is
//! swept across `PERIODS` values so that, under `-icount` (deterministic),
//! the interrupt lands at many different instructions; `DefaultHandler`
//! records each one from the exception frame.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, frame_vector, interrupted_pc, storm, Preempted};
use board::{Irq, Timer0, SPARE_IRQ, TIMER0_IRQ};
use cortex_m_rt::entry;

/// The first timer period, in timer clock ticks.
const FIRST_PERIOD: u32 = 500;
/// How many periods the sweep walks through (one each 400 requests).
const PERIODS: u32 = 32;

static TIMER: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CeilingLocks<0x20>, 1, PendInterrupt<Irq>> =
    Context::with_hooks(PendInterrupt(SPARE_IRQ));
static PREEMPTED: Preempted = Preempted::new();

frame_vector!(DefaultHandler => interrupt);

/// Every interrupt line lands here, with the interrupted thread's frame.
extern "C" fn interrupt(frame: *const u32) {
    match board::active_irq() {
        Some(TIMER0_IRQ) => {
            Timer0::acknowledge();
            // SAFETY: `frame` comes from `frame_vector!`.
            PREEMPTED.record(unsafe { interrupted_pc(frame) });
            TIMER.raise(Events::IN);
        }
        Some(SPARE_IRQ) => {
            CONTEXT.run_deferred();
        }
        _ => {}
    }
}

#[entry]
fn main() -> ! {
    enable(TIMER0_IRQ, 0x00);
    enable(SPARE_IRQ, 0xE0);
    let report =
        storm::<Timer0, 8, _, _, _>(Pin::static_ref(&CONTEXT), &TIMER, FIRST_PERIOD, PERIODS);
    defmt::info!(
        "sweep: {} timer periods ({}..{} ticks), {} distinct thread-mode instructions interrupted",
        PERIODS,
        FIRST_PERIOD,
        FIRST_PERIOD + PERIODS - 1,
        PREEMPTED.count()
    );
    exit(report.ok)
}

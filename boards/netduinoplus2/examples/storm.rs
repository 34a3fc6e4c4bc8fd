//! Scenario: TIM2's interrupt storm while thread mode submits, cancels and
//! reaps (the shared `aiopoll_scenarios::storm`). TIM2 runs at 0x00, a
//! value below the context's ceiling 0x20, so it lands inside the context
//! lock and its completions are deferred to TIM3's line (0xF0; the timer
//! itself is left stopped). The period is swept across `PERIODS` values so
//! that, under `-icount` (deterministic), the interrupt lands at many
//! different instructions; TIM2's vector records each one.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, frame_vector, interrupted_pc, storm, Preempted, Timer};
use cortex_m_rt::entry;
use netduinoplus2::{interrupt, Interrupt, Tim2};

/// The first timer period, in steps of [`STEP`] TIM2 ticks.
const FIRST_PERIOD: u32 = 2_500;
/// TIM2 ticks per step of the sweep: in QEMU TIM2 counts at 1 GHz, and
/// under `-icount shift=3` an instruction takes 8 ns, so a sweep in single
/// ticks would land on the same instruction eight periods in a row.
const STEP: u32 = 8;
/// How many periods the sweep walks through (one each 400 requests).
const PERIODS: u32 = 32;

static TIMER: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::TIM3));
static PREEMPTED: Preempted = Preempted::new();

frame_vector!(TIM2 => timer_interrupt);

/// TIM2's handler, with the interrupted thread's frame.
extern "C" fn timer_interrupt(frame: *const u32) {
    Tim2::acknowledge();
    // SAFETY: `frame` comes from `frame_vector!`.
    PREEMPTED.record(unsafe { interrupted_pc(frame) });
    TIMER.raise(Events::IN);
}

#[interrupt]
fn TIM3() {
    CONTEXT.run_deferred();
}

/// TIM2 counted in steps of [`STEP`] ticks: one instruction under
/// `-icount shift=3`.
struct Tim2Steps;

impl Timer for Tim2Steps {
    fn start(period: u32) {
        Tim2::start(period * STEP);
    }
    fn stop() {
        Tim2::stop();
    }
}

#[entry]
fn main() -> ! {
    enable(Interrupt::TIM2, 0x00);
    enable(Interrupt::TIM3, 0xF0);
    let report =
        storm::<Tim2Steps, 8, _, _, _>(Pin::static_ref(&CONTEXT), &TIMER, FIRST_PERIOD, PERIODS);
    defmt::info!(
        "sweep: {} timer periods ({}..{} ticks), {} distinct thread-mode instructions interrupted",
        PERIODS,
        FIRST_PERIOD * STEP,
        (FIRST_PERIOD + PERIODS - 1) * STEP,
        PREEMPTED.count()
    );
    exit(report.ok)
}

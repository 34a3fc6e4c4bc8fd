//! Scenario: a timer interrupt storm while thread mode submits, cancels and
//! reaps (the shared `aiopoll_scenarios::storm`). The timer runs at 0x00,
//! above the context's ceiling 0x20, so it lands inside the context lock and
//! its completions are deferred to GPIOB. The period is swept across 32
//! values so that, under `-icount` (deterministic), the interrupt lands at
//! many different instructions; the timer's vector records each one.
#![no_std]
#![no_main]

use core::pin::Pin;

use aiopoll::{Context, Events};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use aiopoll_scenarios::{enable, exit, frame_vector, interrupted_pc, storm, Preempted};
use cortex_m_rt::entry;
use lm3s6965::interrupt;
use lm3s6965evb::{timer0, Interrupt, Timer0};

const FIRST_PERIOD: u32 = 300;
const PERIODS: u32 = 32;

static TIMER: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
static PREEMPTED: Preempted = Preempted::new();

frame_vector!(TIMER_0A => timer_interrupt);

extern "C" fn timer_interrupt(frame: *const u32) {
    timer0::acknowledge();
    // SAFETY: `frame` comes from `frame_vector!`.
    PREEMPTED.record(unsafe { interrupted_pc(frame) });
    TIMER.raise(Events::IN);
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

#[entry]
fn main() -> ! {
    enable(Interrupt::TIMER_0A, 0x00);
    enable(Interrupt::GPIOB, 0xE0);
    let report =
        storm::<Timer0, 8, _, _, _>(Pin::static_ref(&CONTEXT), &TIMER, FIRST_PERIOD, PERIODS);
    defmt::info!(
        "sweep: {} timer periods ({}..{} cycles), {} distinct thread-mode instructions interrupted",
        PERIODS,
        FIRST_PERIOD,
        FIRST_PERIOD + PERIODS - 1,
        PREEMPTED.count()
    );
    exit(report.ok)
}

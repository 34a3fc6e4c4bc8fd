//! Where deferred work runs: [`Notify`] hooks that pend an interrupt.

use aiopoll::Notify;
use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::{NVIC, SCB};

/// Pends the interrupt `I` when a wakeup defers a completion; its handler
/// calls [`Context::run_deferred`](aiopoll::Context::run_deferred). Give that
/// interrupt a priority at or below the context's ceiling (so the context
/// lock can be taken there) and unmask it in the NVIC.
///
/// Signals `SEV` on every completion, for a reaper on another core waiting
/// in `WFE`.
#[derive(Clone, Copy, Debug)]
pub struct PendInterrupt<I: InterruptNumber>(pub I);

impl<I: InterruptNumber> Notify for PendInterrupt<I> {
    fn deferred_work(&self) {
        NVIC::pend(self.0);
    }

    fn completed(&self) {
        cortex_m::asm::sev();
    }
}

/// Pends PendSV when a wakeup defers a completion; the `PendSV` exception
/// handler calls [`Context::run_deferred`](aiopoll::Context::run_deferred).
///
/// PendSV resets to priority 0, the most urgent of the configurable ones:
/// give it the least urgent priority at start-up (with
/// `cortex_m::peripheral::SCB::set_priority(SystemHandler::PendSV, 0xFF)`),
/// so that deferred work runs after the interrupts that cause it, and at or
/// below a `CeilingLock`'s ceiling.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendSv;

impl Notify for PendSv {
    fn deferred_work(&self) {
        SCB::set_pendsv();
    }

    fn completed(&self) {
        cortex_m::asm::sev();
    }
}

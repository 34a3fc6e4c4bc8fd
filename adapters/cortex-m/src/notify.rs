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
/// PendSV has the lowest priority by default, which is what deferred work
/// wants.
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

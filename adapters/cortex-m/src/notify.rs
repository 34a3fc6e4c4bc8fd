//! Where deferred work runs: [`Notify`] hooks that pend an interrupt.

use aiopoll::Notify;
use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::{NVIC, SCB};

/// Pends the interrupt `I` when a wakeup defers a completion; its handler
/// calls [`Context::run_deferred`](aiopoll::Context::run_deferred). Pick a
/// line nothing else raises (an unused peripheral's), unmask it in the
/// NVIC, and with `CeilingLocks<C>` (v7-M and v8-M) give it a
/// priority value of at least `C` (lower values are more urgent: the
/// context lock can only be taken at `C` or a larger value); best the
/// largest value of all, so that it runs after the interrupts that hand it
/// work.
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
/// so that deferred work runs after the interrupts that cause it, and with
/// a value of at least a `CeilingLock`'s ceiling.
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

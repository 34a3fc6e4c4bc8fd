//! [`MultiCoreLock`]: this core's PRIMASK and a flag the cores share, for
//! parts with several cores.

use core::cell::Cell;

use aiopoll::SpinLock;
use cortex_m::interrupt;
use cortex_m::register::primask;
use lock_api::{GuardNoSend, RawMutex};

/// A lock for parts with more than one core (the SSE-200's two
/// Cortex-M33, the RP2040's two M0+): masks this core's interrupts
/// (PRIMASK), then claims a flag shared by the cores, spinning while
/// another core holds it. The flag is the core's [`SpinLock`] (the `spin`
/// crate's mutex, on `portable-atomic`: it also works on thumbv6m, whose
/// compare-and-swap goes through the critical section).
///
/// So while it is held nothing on this core preempts the holder, and the
/// other cores wait. Right for the wait queues whatever core or interrupt
/// wakes them, and for the context: a wakeup on another core that finds
/// the context held fails its try-lock and defers its completion, as an
/// interrupt above a `CeilingLock` does on one
/// core. A hold should be short: the other cores spin, with their own
/// interrupts masked, for as long as it lasts.
///
/// Unlike [`CriticalSectionLock`](super::CriticalSectionLock) it needs
/// no critical section that spans cores, and the cores only exclude each
/// other on the same lock. Taking it again on the core that holds it (a
/// hook or a source's `poll` that calls back into aiopoll) spins for
/// ever: nothing can release it there.
pub struct MultiCoreLock {
    flag: SpinLock,
    /// Whether interrupts were enabled when the holder took the lock.
    enabled: Cell<bool>,
}

// SAFETY: `flag` is atomic; `enabled` is written by the holder after it
// has won `flag` and read by the holder in `unlock`, before it releases
// `flag`: no other core can win `flag` meanwhile, and no interrupt on
// the holder's core runs while it is held (PRIMASK), so only the holder
// touches it.
unsafe impl Sync for MultiCoreLock {}
// SAFETY: as above; nothing in it is tied to a core.
unsafe impl Send for MultiCoreLock {}

/// The PRIMASK register. (A trait so that the unit tests can run the
/// claim logic against a model of it, threads playing cores: cortex-m's
/// register access panics off a Cortex-M core.)
trait Primask {
    /// Masks every interrupt of this core (but faults and NMI); returns
    /// whether they were enabled.
    fn mask() -> bool;
    /// Unmasks them again if `enabled`.
    ///
    /// # Safety
    /// Unmasking lets interrupts into a section that relies on the mask:
    /// only restore what a `mask` returned, in reverse order.
    unsafe fn restore(enabled: bool);
}

/// This core's own PRIMASK.
struct Hardware;

impl Primask for Hardware {
    fn mask() -> bool {
        let enabled = primask::read().is_active();
        interrupt::disable();
        enabled
    }

    unsafe fn restore(enabled: bool) {
        if enabled {
            // SAFETY: the caller's contract: interrupts were enabled
            // when the matching `mask` ran.
            unsafe { interrupt::enable() };
        }
    }
}

impl MultiCoreLock {
    /// Masks this core's interrupts, then claims the flag; spins while
    /// another core holds it if `wait`, else gives up (and unmasks).
    fn enter<P: Primask>(&self, wait: bool) -> bool {
        let enabled = P::mask();
        while !RawMutex::try_lock(&self.flag) {
            if !wait {
                // SAFETY: restores what the `mask` above found.
                unsafe { P::restore(enabled) };
                return false;
            }
            while RawMutex::is_locked(&self.flag) {
                core::hint::spin_loop();
            }
        }
        self.enabled.set(enabled);
        true
    }

    /// # Safety
    /// The caller holds the lock (its `enter` returned true).
    unsafe fn exit<P: Primask>(&self) {
        let enabled = self.enabled.get();
        // SAFETY: the caller holds the flag (this function's contract).
        unsafe { RawMutex::unlock(&self.flag) };
        // SAFETY: restores what the matching `enter` found; locks are
        // released in the reverse order of taking them (aiopoll's guards
        // are scoped).
        unsafe { P::restore(enabled) };
    }
}

// SAFETY: `flag` (spin's mutex: an Acquire compare-and-swap to claim, a
// Release store to free) lets at most one holder in across cores, and
// PRIMASK keeps everything else on the holder's core out until `unlock`.
unsafe impl RawMutex for MultiCoreLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = MultiCoreLock {
        flag: <SpinLock as RawMutex>::INIT,
        enabled: Cell::new(false),
    };
    // PRIMASK is per core: released where it was taken.
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        self.enter::<Hardware>(true);
    }

    fn try_lock(&self) -> bool {
        self.enter::<Hardware>(false)
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (`RawMutex::unlock`'s
        // contract).
        unsafe { self.exit::<Hardware>() };
    }
}

/// [`MultiCoreLock`] for the context and its wait queues: requests
/// submitted, cancelled and reaped on one core, woken from interrupts on
/// any core.
pub type MultiCoreLocks = (MultiCoreLock, MultiCoreLock);

/// The claim logic of [`MultiCoreLock`] against a model of PRIMASK, one
/// register per thread (a thread plays a core). The real register is not
/// reachable off a Cortex-M core, so only `Hardware`'s forwards are left
/// untested.
#[cfg(test)]
mod tests {
    extern crate std;

    use core::pin::pin;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::thread;
    use std::vec::Vec;

    use aiopoll::{Completion, Context, Events, Outcome, SubmitError};

    use super::*;
    use crate::IrqEvent;

    std::thread_local! {
        /// This thread's PRIMASK: `true` while interrupts are enabled.
        static ENABLED: Cell<bool> = const { Cell::new(true) };
    }

    struct Model;

    impl Primask for Model {
        fn mask() -> bool {
            ENABLED.with(|enabled| enabled.replace(false))
        }

        unsafe fn restore(enabled: bool) {
            if enabled {
                ENABLED.with(|register| register.set(true));
            }
        }
    }

    fn enabled() -> bool {
        ENABLED.with(Cell::get)
    }

    /// A [`MultiCoreLock`] on the model register.
    struct ModelLock(MultiCoreLock);

    // SAFETY: forwards to `MultiCoreLock`'s claim logic, whose exclusion
    // comes from its flag (the register only masks).
    unsafe impl RawMutex for ModelLock {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = ModelLock(MultiCoreLock::INIT);
        type GuardMarker = GuardNoSend;

        fn lock(&self) {
            self.0.enter::<Model>(true);
        }

        fn try_lock(&self) -> bool {
            self.0.enter::<Model>(false)
        }

        unsafe fn unlock(&self) {
            // SAFETY: the caller holds the lock.
            unsafe { self.0.exit::<Model>() };
        }
    }

    #[test]
    fn masks_while_held_and_restores() {
        let lock = MultiCoreLock::INIT;
        assert!(lock.enter::<Model>(false));
        assert!(!enabled());
        // SAFETY: held since the `enter` above.
        unsafe { lock.exit::<Model>() };
        assert!(enabled());
    }

    #[test]
    fn nested_locks_unmask_only_at_the_outer_release() {
        let outer = MultiCoreLock::INIT;
        let inner = MultiCoreLock::INIT;
        assert!(outer.enter::<Model>(true));
        assert!(inner.enter::<Model>(true));
        // SAFETY: held since the `enter` above.
        unsafe { inner.exit::<Model>() };
        assert!(!enabled(), "the outer lock still masks");
        // SAFETY: held since the first `enter`.
        unsafe { outer.exit::<Model>() };
        assert!(enabled());
    }

    #[test]
    fn a_failed_try_on_another_core_leaves_its_mask_as_it_found_it() {
        let lock = MultiCoreLock::INIT;
        assert!(lock.enter::<Model>(false));
        let other = thread::scope(|scope| {
            scope
                .spawn(|| (lock.enter::<Model>(false), enabled()))
                .join()
                .unwrap()
        });
        assert_eq!(other, (false, true));
        // SAFETY: held since the first `enter`.
        unsafe { lock.exit::<Model>() };
    }

    #[test]
    fn cores_exclude_each_other() {
        const CORES: usize = 2;
        // Miri interprets every step: fewer rounds, still interleaved.
        const ROUNDS: u32 = if cfg!(miri) { 300 } else { 50_000 };
        let lock = ModelLock::INIT;
        // Read and written non-atomically in two steps under the lock: a
        // second holder in between would lose an increment.
        let counter = AtomicU32::new(0);
        thread::scope(|scope| {
            for _ in 0..CORES {
                scope.spawn(|| {
                    for _ in 0..ROUNDS {
                        lock.lock();
                        assert!(!enabled());
                        let value = counter.load(Ordering::Relaxed);
                        core::hint::spin_loop();
                        counter.store(value + 1, Ordering::Relaxed);
                        // SAFETY: locked just above.
                        unsafe { lock.unlock() };
                        assert!(enabled());
                    }
                });
            }
        });
        assert_eq!(counter.load(Ordering::Relaxed), CORES as u32 * ROUNDS);
    }

    #[test]
    fn one_core_submits_cancels_and_reaps_while_another_wakes() {
        const REQUESTS: u64 = if cfg!(miri) { 200 } else { 5_000 };
        let event: IrqEvent<ModelLock> = IrqEvent::new();
        let context = pin!(Context::<'_, 8, (ModelLock, ModelLock), 1>::new());
        let context = context.as_ref();
        let done = AtomicBool::new(false);
        let mut seen = std::vec![0u8; REQUESTS as usize];
        thread::scope(|scope| {
            // Core 1: raises the event until core 0 is done.
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    event.raise(Events::IN);
                    thread::yield_now();
                }
            });
            // Core 0: submits, cancels one in five, reaps.
            let mut next = 0;
            let mut reaped = 0;
            let mut handles = Vec::new();
            let mut out = [Completion::EMPTY; 8];
            while reaped < REQUESTS {
                if next < REQUESTS {
                    match context.submit(&event, Events::IN, next) {
                        Ok(handle) => {
                            if next % 5 == 0 {
                                handles.push(handle);
                            }
                            next += 1;
                        }
                        Err(SubmitError::Busy) => {}
                        Err(other) => panic!("submit failed: {other}"),
                    }
                }
                for handle in handles.drain(..) {
                    let _ = context.cancel(handle);
                }
                event.clear(Events::IN);
                let count = context.reap(&mut out);
                for completion in &out[..count] {
                    assert!(matches!(
                        completion.outcome,
                        Outcome::Ready(Events::IN) | Outcome::Cancelled
                    ));
                    seen[completion.user_data as usize] += 1;
                }
                reaped += count as u64;
                if count == 0 && next == REQUESTS {
                    // Only waiting requests left: let core 1 run.
                    thread::yield_now();
                }
            }
            done.store(true, Ordering::Relaxed);
        });
        assert!(seen.iter().all(|&count| count == 1));
        assert_eq!(context.in_use(), 0);
        let stats = context.stats();
        assert_eq!(stats.submitted, REQUESTS as u32);
        assert_eq!(stats.reaped, REQUESTS as u32);
        assert!(enabled());
    }
}

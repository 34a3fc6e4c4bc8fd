//! [`CeilingLock`]: a BASEPRI priority ceiling, for the context on v7-M
//! and v8-M.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::register::{basepri, basepri_max};
use lock_api::{GuardNoSend, RawMutex};

use super::CriticalSectionLock;

/// A priority-ceiling lock (v7-M, v8-M): while held, BASEPRI masks every
/// interrupt whose priority is `CEILING` or less urgent; more urgent
/// interrupts keep running. `CEILING` is a hardware priority value, as
/// written to the NVIC (the top bits count: with 3 priority bits,
/// 0x00, 0x20, .., 0xE0; lower is more urgent), and must not be 0.
///
/// Single core only (BASEPRI is per core). Use it from thread mode and
/// from interrupts whose priority value is `>= CEILING` (as urgent as the
/// ceiling, or less); an interrupt whose value is `< CEILING` (more urgent)
/// may only *try* it, which is all a wakeup does. The value must be one the
/// part implements: with 3 priority bits, `CeilingLock<0x10>` reads as 0
/// and masks nothing. Taking it with `lock`
/// from above the ceiling while it is held would deadlock; it panics
/// with an explanation instead.
pub struct CeilingLock<const CEILING: u8> {
    held: AtomicBool,
    previous: Cell<u8>,
}

// SAFETY: `held` is atomic; `previous` is written by the holder after it
// has won `held` and read by the holder in `unlock`, and an interrupt
// that preempts the holder cannot win `held`, so only the holder touches
// it.
unsafe impl<const CEILING: u8> Sync for CeilingLock<CEILING> {}
// SAFETY: as above.
unsafe impl<const CEILING: u8> Send for CeilingLock<CEILING> {}

/// The BASEPRI register. (A trait so that the unit tests can run the
/// claim logic against a model of it: cortex-m's register access
/// panics off a Cortex-M core.)
trait Basepri {
    /// Reads BASEPRI.
    fn read() -> u8;
    /// Writes BASEPRI_MAX: raises the mask to `value` unless it masks
    /// more already.
    fn raise(value: u8);
    /// Writes BASEPRI.
    ///
    /// # Safety
    /// Lowering the mask may let a preempting interrupt run inside a
    /// section that relies on it: only restore a value read before.
    unsafe fn write(value: u8);
}

/// The core's own BASEPRI.
struct Hardware;

impl Basepri for Hardware {
    fn read() -> u8 {
        basepri::read()
    }

    fn raise(value: u8) {
        basepri_max::write(value);
    }

    unsafe fn write(value: u8) {
        // SAFETY: the caller restores a value it read before.
        unsafe { basepri::write(value) };
    }
}

impl<const CEILING: u8> CeilingLock<CEILING> {
    const VALID: () = assert!(CEILING != 0, "a ceiling of 0 would mask nothing");

    fn enter<B: Basepri>(&self) -> bool {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        let previous = B::read();
        // Raise first, then claim: an interrupt that preempts between
        // the two is above the ceiling, runs to completion (taking and
        // releasing the lock, or failing a try) before we go on.
        B::raise(CEILING);
        if self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: restores the BASEPRI this call found.
            unsafe { B::write(previous) };
            return false;
        }
        self.previous.set(previous);
        true
    }

    /// # Safety
    /// The caller holds the lock (its `enter` returned true).
    unsafe fn exit<B: Basepri>(&self) {
        let previous = self.previous.get();
        self.held.store(false, Ordering::Release);
        // SAFETY: restores the BASEPRI the matching `enter` found.
        unsafe { B::write(previous) };
    }
}

// SAFETY: `held` is claimed with an Acquire compare-and-swap and released
// with a Release store, so at most one context holds the lock; BASEPRI
// keeps every interrupt at or below the ceiling from preempting the
// holder.
unsafe impl<const CEILING: u8> RawMutex for CeilingLock<CEILING> {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CeilingLock {
        held: AtomicBool::new(false),
        previous: Cell::new(0),
    };
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        if !self.enter::<Hardware>() {
            // Single core: the holder is preempted by us, so we run above
            // the ceiling. Waiting would never end.
            super::used_above_the_ceiling();
        }
    }

    fn try_lock(&self) -> bool {
        self.enter::<Hardware>()
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (`RawMutex::unlock`'s
        // contract).
        unsafe { self.exit::<Hardware>() };
    }
}

/// A [`CeilingLock`] for the context, the critical section for its wait
/// queues.
pub type CeilingLocks<const CEILING: u8> = (CeilingLock<CEILING>, CriticalSectionLock);

/// The claim logic of [`CeilingLock`] against a model of BASEPRI, one
/// register per thread (a thread plays an execution context: thread
/// mode, or an interrupt above the ceiling). The real register is not
/// reachable off a Cortex-M core (cortex-m's access
/// panics there), so `CeilingLock`'s `RawMutex` impl itself,
/// and with it `CeilingLocks`, cannot run on the host; only
/// `Hardware`'s three one-line forwards are left untested.
#[cfg(test)]
mod tests {
    extern crate std;

    use core::pin::pin;
    use std::sync::Barrier;
    use std::thread;

    use aiopoll::{Context, Events, PollTable, Source, WaitQueue};

    use super::*;
    use crate::IrqEvent;

    std::thread_local! {
        static REGISTER: Cell<u8> = const { Cell::new(0) };
    }

    /// This thread's BASEPRI, with the architecture's rules.
    struct Model;

    impl Basepri for Model {
        fn read() -> u8 {
            REGISTER.with(Cell::get)
        }

        fn raise(value: u8) {
            // BASEPRI_MAX: only ever masks more (lower is more urgent;
            // 0 masks nothing).
            let current = Self::read();
            if value != 0 && (current == 0 || value < current) {
                REGISTER.with(|register| register.set(value));
            }
        }

        unsafe fn write(value: u8) {
            REGISTER.with(|register| register.set(value));
        }
    }

    fn basepri() -> u8 {
        Model::read()
    }

    fn set_basepri(value: u8) {
        // SAFETY: a model register; nothing depends on it.
        unsafe { Model::write(value) };
    }

    #[test]
    fn enter_raises_to_the_ceiling_and_exit_restores() {
        set_basepri(0);
        let lock = CeilingLock::<0x40>::INIT;
        assert!(lock.enter::<Model>());
        assert_eq!(basepri(), 0x40);
        // SAFETY: held since the `enter` above.
        unsafe { lock.exit::<Model>() };
        assert_eq!(basepri(), 0);
        // Free again.
        assert!(lock.enter::<Model>());
        // SAFETY: held since the `enter` above.
        unsafe { lock.exit::<Model>() };
    }

    #[test]
    fn a_failed_try_leaves_the_mask_as_it_found_it() {
        set_basepri(0);
        let lock = CeilingLock::<0x40>::INIT;
        assert!(lock.enter::<Model>());
        // Thread mode already below a less urgent mask of its own.
        set_basepri(0x80);
        assert!(!lock.enter::<Model>());
        assert_eq!(basepri(), 0x80);
        // An interrupt above the ceiling (its own register) tries: fails
        // without touching its mask, and does not wait.
        let other = thread::scope(|scope| {
            scope
                .spawn(|| {
                    set_basepri(0);
                    let entered = lock.enter::<Model>();
                    (entered, basepri())
                })
                .join()
                .unwrap()
        });
        assert_eq!(other, (false, 0));
        set_basepri(0x40);
        // SAFETY: held since the first `enter`.
        unsafe { lock.exit::<Model>() };
        assert_eq!(basepri(), 0, "restores what the winning enter found");
    }

    #[test]
    fn a_mask_that_is_higher_already_is_kept() {
        set_basepri(0x20);
        let lock = CeilingLock::<0x40>::INIT;
        assert!(lock.enter::<Model>());
        assert_eq!(basepri(), 0x20);
        // SAFETY: held since the `enter` above.
        unsafe { lock.exit::<Model>() };
        assert_eq!(basepri(), 0x20);
    }

    #[test]
    fn ceilings_nest_and_unwind_in_order() {
        set_basepri(0);
        let low = CeilingLock::<0x80>::INIT;
        let high = CeilingLock::<0x40>::INIT;
        assert!(low.enter::<Model>());
        assert_eq!(basepri(), 0x80);
        assert!(high.enter::<Model>());
        assert_eq!(basepri(), 0x40);
        // SAFETY: held since the `enter` above.
        unsafe { high.exit::<Model>() };
        assert_eq!(basepri(), 0x80);
        // SAFETY: held since the first `enter`.
        unsafe { low.exit::<Model>() };
        assert_eq!(basepri(), 0);
    }

    /// A [`CeilingLock`] on the model register, as a context lock.
    struct ModelCeiling<const CEILING: u8>(CeilingLock<CEILING>);

    // SAFETY: forwards to `CeilingLock`'s claim logic, whose exclusion
    // comes from its atomic `held` flag (the register only masks).
    unsafe impl<const CEILING: u8> RawMutex for ModelCeiling<CEILING> {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = ModelCeiling(CeilingLock::INIT);
        type GuardMarker = GuardNoSend;

        fn lock(&self) {
            assert!(
                self.0.enter::<Model>(),
                "the tests never contend for lock()"
            );
        }

        fn try_lock(&self) -> bool {
            self.0.enter::<Model>()
        }

        unsafe fn unlock(&self) {
            // SAFETY: the caller holds the lock.
            unsafe { self.0.exit::<Model>() };
        }
    }

    /// A source whose `poll` (run with the context lock held) lets
    /// another thread raise an event, and waits for it to be done.
    struct LetsOthersRaise<'a> {
        queue: WaitQueue<CriticalSectionLock>,
        barrier: &'a Barrier,
    }

    impl Source<CriticalSectionLock> for LetsOthersRaise<'_> {
        fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, CriticalSectionLock>) -> Events {
            table.wait(&self.queue);
            if table.is_registering() {
                self.barrier.wait(); // the other thread raises now
                self.barrier.wait(); // and is done
            }
            Events::empty()
        }
    }

    #[test]
    fn a_wakeup_from_another_thread_while_the_context_is_held_defers() {
        set_basepri(0);
        let event: IrqEvent = IrqEvent::new();
        let barrier = Barrier::new(2);
        let holder = LetsOthersRaise {
            queue: WaitQueue::new(),
            barrier: &barrier,
        };
        let context = pin!(Context::<'_, 4, (ModelCeiling<0x40>, CriticalSectionLock), 1>::new());
        context.as_ref().submit(&event, Events::IN, 1).unwrap();
        let woken = thread::scope(|scope| {
            let raiser = scope.spawn(|| {
                barrier.wait();
                // Unlike the critical section, the ceiling does not
                // hold this thread back: the raise runs while the
                // submit below holds the context lock, fails its
                // try-lock and defers.
                let woken = event.raise(Events::IN);
                barrier.wait();
                woken
            });
            context.as_ref().submit(&holder, Events::IN, 2).unwrap();
            raiser.join().unwrap()
        });
        assert_eq!(woken, 1);
        assert_eq!(context.completions(), 0);
        assert!(context.has_deferred_work());
        assert_eq!(context.stats().deferrals, 1);
        assert_eq!(context.stats().completed_by_wakeup, 0);
        assert_eq!(context.run_deferred(), 1);
        assert_eq!(context.completions(), 1);
        assert_eq!(basepri(), 0);
    }
}

//! Locks for Cortex-M, as `lock_api::RawMutex` types.
//!
//! - [`CriticalSectionLock`]: masks every interrupt while held (through the
//!   `critical-section` crate, so it also excludes the other core on parts
//!   whose critical-section implementation spans cores, like the RP2040's).
//!   Right for every wait queue: no waker can preempt a holder, whatever its
//!   priority. Right for a context on any part.
//! - `CeilingLock` (v7-M and v8-M; v6-M has no BASEPRI): raises BASEPRI to a ceiling, as RTIC's
//!   Stack Resource Policy does, so interrupts more urgent than the ceiling
//!   are never masked by aiopoll. Meant for the context: an urgent interrupt
//!   that wakes a queue while thread mode holds the context meets a failed
//!   try-lock and defers its completion, exactly the seed mail's path.
//!
//! - [`MultiCoreLock`] (parts with several cores whose critical section
//!   does not span them, like the SSE-200's two Cortex-M33): masks this
//!   core's interrupts (PRIMASK) and spins on a flag shared by the cores
//!   (the `spin` crate's mutex), so the cores exclude each other only on the
//!   same lock, not on every critical section.
//!
//! The pairing is fixed by type: [`CortexMLocks`] (critical section for
//! both), `CeilingLocks` (ceiling for the context, critical section for
//! the queues) and [`MultiCoreLocks`] (the multi-core lock for both). A queue
//! lock must mask every interrupt that wakes the queue: the critical section
//! and the multi-core lock mask every interrupt of the holder's core (and
//! keep the other cores out), a ceiling does not, so no pairing puts a
//! ceiling on the queues.

use core::cell::Cell;
use core::mem::MaybeUninit;

use critical_section::RestoreState;
use lock_api::{GuardNoSend, RawMutex};

/// A lock that masks every interrupt while held: a critical section with a
/// "held" flag, so that a nested `try_lock` (a wakeup from inside a source's
/// `poll`, say) fails instead of deadlocking.
pub struct CriticalSectionLock {
    held: Cell<bool>,
    restore: Cell<MaybeUninit<RestoreState>>,
}

// SAFETY: both cells are only touched inside the critical section this lock
// acquires, which excludes every other execution context (interrupts, and
// the other core where the critical-section implementation spans cores).
unsafe impl Sync for CriticalSectionLock {}
// SAFETY: as above; nothing in it is tied to a thread or core.
unsafe impl Send for CriticalSectionLock {}

impl CriticalSectionLock {
    /// Acquires the critical section and tries to set the flag.
    fn enter(&self) -> bool {
        // SAFETY: every acquire is paired with exactly one release: in
        // `unlock` when we take the lock, right here when we do not. Locks
        // are released in the reverse order of taking them (aiopoll's guards
        // are scoped), as nested critical sections require.
        let restore = unsafe { critical_section::acquire() };
        if self.held.get() {
            // SAFETY: releases the section acquired just above.
            unsafe { critical_section::release(restore) };
            return false;
        }
        self.held.set(true);
        self.restore.set(MaybeUninit::new(restore));
        true
    }
}

// SAFETY: `lock` and `try_lock` return with the flag set only by the one
// execution context that set it inside the critical section; `unlock`
// clears it before leaving the section. Nothing else can observe the flag
// between, since every interrupt is masked while it is set.
unsafe impl RawMutex for CriticalSectionLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CriticalSectionLock {
        held: Cell::new(false),
        restore: Cell::new(MaybeUninit::uninit()),
    };
    // Must be released where it was taken (same core, same context).
    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        if !self.enter() {
            // With every interrupt masked nobody else can hold it: this
            // context holds it already. A hook or source that calls back into
            // aiopoll does this; it is a bug, and the alternative is a hang.
            panic!("aiopoll: a lock was taken again by its own holder (a hook or a source's poll called back into aiopoll)");
        }
    }

    fn try_lock(&self) -> bool {
        self.enter()
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock, so `restore` was written by the
        // `enter` that took it.
        let restore = unsafe { self.restore.get().assume_init() };
        self.held.set(false);
        // SAFETY: releases the section the matching `enter` acquired.
        unsafe { critical_section::release(restore) };
    }
}

/// The critical-section lock for the context and its wait queues: correct
/// on every part, single- or multi-core.
pub type CortexMLocks = (CriticalSectionLock, CriticalSectionLock);

#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
pub use ceiling::{CeilingLock, CeilingLocks};

#[cfg(any(not(target_arch = "arm"), target_has_atomic = "32"))]
mod ceiling {
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
    /// from interrupts at `CEILING` or below; an interrupt above the ceiling
    /// may only *try* it, which is all a wakeup does. Taking it with `lock`
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
                panic!("aiopoll: the context was used from an interrupt above its CeilingLock's ceiling: raise the ceiling (CEILING) to that interrupt's priority, or only wake queues from there");
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
            let context =
                pin!(Context::<'_, 4, (ModelCeiling<0x40>, CriticalSectionLock), 1>::new());
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
}

pub use multicore::{MultiCoreLock, MultiCoreLocks};

mod multicore {
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
}

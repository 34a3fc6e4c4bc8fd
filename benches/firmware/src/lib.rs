//! What the bench firmware's programs share: an interrupt-masking lock for
//! aiopoll (a stand-in until the Cortex-M adapter lands), the smallest
//! source, and the CMSDK timer that counts instructions under `-icount`.
#![no_std]

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicBool, Ordering};

use aiopoll::{Events, PollTable, Source, WaitQueue};
use critical_section::RestoreState;

/// A lock that masks interrupts (through `critical-section`) while held:
/// on a single core that excludes every interrupt handler that could wake a
/// queue. Locks nest in last-in, first-out order, as aiopoll takes them.
pub struct IrqLock {
    held: Cell<bool>,
    restore: UnsafeCell<RestoreState>,
}

// SAFETY: single core only (the firmware runs on one Cortex-M3): the fields
// are touched only inside the critical section the lock itself opened, so
// no other context can see them change.
unsafe impl Sync for IrqLock {}
// SAFETY: as above; nothing in the lock is tied to a thread.
unsafe impl Send for IrqLock {}

// SAFETY: `lock` and `try_lock` enter a critical section before looking at
// `held`, so with one core at most one holder exists at a time; `unlock`
// leaves the critical section its `lock` opened.
unsafe impl lock_api::RawMutex for IrqLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqLock {
        held: Cell::new(false),
        restore: UnsafeCell::new(RestoreState::invalid()),
    };
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        // On one core a held lock with interrupts masked can never be
        // released while we wait: treat it as the bug it is.
        if !self.try_lock() {
            cortex_m::asm::udf();
        }
    }

    fn try_lock(&self) -> bool {
        // SAFETY: released in `unlock`, or right here when already held.
        let restore = unsafe { critical_section::acquire() };
        if self.held.get() {
            // SAFETY: the state `acquire` just returned, released once.
            unsafe { critical_section::release(restore) };
            return false;
        }
        self.held.set(true);
        // SAFETY: inside our critical section: nobody else touches it.
        unsafe { *self.restore.get() = restore };
        true
    }

    unsafe fn unlock(&self) {
        self.held.set(false);
        // SAFETY: the caller holds the lock, so `restore` is the state of
        // the critical section `lock` opened; locks are released in
        // reverse order, so the states nest.
        unsafe { critical_section::release(*self.restore.get()) };
    }
}

/// The context and queue locks of the firmware.
pub type IrqLocks = (IrqLock, IrqLock);

/// A flag an interrupt handler raises: the smallest honest source.
pub struct Flag {
    raised: AtomicBool,
    /// The queue its waiters sit on.
    pub queue: WaitQueue<IrqLock>,
}

impl Flag {
    /// A lowered flag.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Flag {
            raised: AtomicBool::new(false),
            queue: WaitQueue::new(),
        }
    }

    /// Raises the flag and wakes its waiters with `IN` (the interrupt side).
    #[inline(always)]
    pub fn raise(&self) -> usize {
        self.raised.store(true, Ordering::Release);
        self.queue.wake(Events::IN)
    }

    /// Lowers it again.
    #[inline(always)]
    pub fn lower(&self) {
        self.raised.store(false, Ordering::Relaxed);
    }
}

impl Source<IrqLock> for Flag {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, IrqLock>) -> Events {
        table.wait(&self.queue);
        if self.raised.load(Ordering::Acquire) {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

/// CMSDK timer 1 of the mps2-an385: a 32-bit down-counter at 25 MHz. Under
/// `-icount shift=0` one instruction takes 1 ns, so one tick is 40
/// instructions.
pub mod timer {
    const BASE: usize = 0x4000_1000;
    const CTRL: *mut u32 = BASE as *mut u32;
    const VALUE: *mut u32 = (BASE + 4) as *mut u32;
    const RELOAD: *mut u32 = (BASE + 8) as *mut u32;

    /// Instructions per timer tick under `-icount shift=0` at 25 MHz.
    pub const INSTRUCTIONS_PER_TICK: u64 = 40;

    /// Starts the timer counting down from `u32::MAX`.
    pub fn start() {
        // SAFETY: the CMSDK timer's registers on the mps2-an385 memory map;
        // nothing else in the firmware uses timer 1.
        unsafe {
            CTRL.write_volatile(0);
            RELOAD.write_volatile(u32::MAX);
            VALUE.write_volatile(u32::MAX);
            CTRL.write_volatile(1);
        }
    }

    /// The counter now (it counts down).
    #[inline(always)]
    pub fn now() -> u32 {
        // SAFETY: a read of the timer's VALUE register.
        unsafe { VALUE.read_volatile() }
    }
}

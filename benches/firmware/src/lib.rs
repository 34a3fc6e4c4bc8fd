//! What the bench firmware's programs share: the Cortex-M adapter's locks
//! and interrupt source (re-exported), and the CMSDK timer that counts
//! instructions under `-icount`.
#![no_std]

pub use aiopoll_cortex_m::{CortexMLocks, IrqEvent};

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

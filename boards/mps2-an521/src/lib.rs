//! Board support for Arm's MPS2 with the AN521 image (SSE-200: two
//! Cortex-M33), as QEMU's `mps2-an521` machine emulates it, both cores
//! running: the SSE-200's memory map (timers, the message handling unit,
//! the system control block that starts core 1), a critical section that
//! spans both cores, core 1's start-up, and what every MPS2 board shares
//! ([`mps2`]).
//!
//! The shared MPS2 examples (`demo`, `storm`) run on core 0 alone;
//! `cross_core` (this crate's `examples/`) runs both: `cargo xtask qemu
//! mps2-an521 cross_core`.
//!
//! The cores start in the Secure state (QEMU loads the image and sets no
//! SAU), so every peripheral is used at its Secure alias (`0x5xxx_xxxx`):
//! QEMU's peripheral protection controllers reset with every port Secure.
#![no_std]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

use cortex_m::interrupt;
use cortex_m::register::primask;

pub use mps2::{active_irq, ApbTimer, Irq};

/// This board's name, as `cargo xtask qemu` knows it.
pub const NAME: &str = "mps2-an521";

/// SSE-200 timer 0 (CMSDK APB timer, Secure alias of `0x4000_0000`),
/// counting the 20 MHz system clock.
pub type Timer0 = ApbTimer<0x5000_0000>;
/// Timer 0's interrupt line: SSE-200 internal line 3, wired to both cores'
/// NVICs (QEMU splits it); the core that unmasks it takes it.
pub const TIMER0_IRQ: Irq = Irq(3);
/// Timer 1's line (4): the single-core examples leave timer 1 stopped and
/// pend this line for deferred work.
pub const SPARE_IRQ: Irq = Irq(4);
/// MHU 0's line (6), a per-core line: MHU 0 raises core 0's line 6 while
/// its `CPU0INTR` bits are set, core 1's line 6 while its `CPU1INTR` bits
/// are.
pub const DOORBELL_IRQ: Irq = Irq(6);

/// Which core runs this code: 0 or 1, from the SSE-200's CPU_IDENTITY
/// block (`0x5001_F000`, a per-core region: each core reads its own
/// number).
pub fn core_id() -> u8 {
    // SAFETY: CPU_IDENTITY.CPUID is a read-only register of the SSE-200;
    // reading it has no side effect.
    let id = unsafe { core::ptr::read_volatile(0x5001_F000 as *const u32) };
    (id & 0xF) as u8
}

/// The SSE-200's message handling unit 0 (`0x5000_3000`): a doorbell for
/// each core. Setting a bit of a core's `INTR` register raises that core's
/// line 6 ([`DOORBELL_IRQ`]) until the bit is cleared.
pub struct Mhu0;

impl Mhu0 {
    const BASE: usize = 0x5000_3000;

    /// `CPUnINTR_SET`'s address for `core`.
    fn set_register(core: u8) -> usize {
        Self::BASE + 0x4 + 0x10 * usize::from(core & 1)
    }

    /// Rings `core`'s doorbell (from any core or interrupt).
    pub fn ring(core: u8) {
        // SAFETY: CPUnINTR_SET of MHU 0, write-one-to-set: it only raises
        // the doorbell line, which is what this type is for.
        unsafe { core::ptr::write_volatile(Self::set_register(core) as *mut u32, 1) }
    }

    /// Clears `core`'s doorbell (in its handler, before doing the work, so
    /// that a ring during the work raises the line again).
    pub fn clear(core: u8) {
        // SAFETY: CPUnINTR_CLR of MHU 0, write-one-to-clear: it only
        // lowers the doorbell line.
        unsafe { core::ptr::write_volatile((Self::set_register(core) + 4) as *mut u32, 1) }
    }
}

/// A context's [`Notify`](aiopoll::Notify) hooks for work that another core
/// hands over: deferred work rings the doorbell of core `CORE` (whose
/// [`DOORBELL_IRQ`] handler calls `Context::run_deferred`), and every
/// completion signals `SEV`, for a reaper waiting in `WFE`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Doorbell<const CORE: u8>;

impl<const CORE: u8> aiopoll::Notify for Doorbell<CORE> {
    fn deferred_work(&self) {
        Mhu0::ring(CORE);
    }

    fn completed(&self) {
        cortex_m::asm::sev();
    }
}

/// The critical section of this board: masks this core's interrupts
/// (PRIMASK), then claims a flag shared by both cores, so that it excludes
/// interrupts *and* the other core, as `critical_section` requires on a
/// multi-core part (cortex-m's `critical-section-single-core` would let the
/// other core in). Nested sections on the core that holds it pass through.
///
/// `IrqEvent`'s event bits and defmt's logger rely on it from both cores.
/// It is always the innermost lock: nothing takes an aiopoll lock inside
/// it, so it cannot deadlock with them.
struct DualCoreCriticalSection;

/// The core holding the section, plus one; 0 when free.
static OWNER: AtomicU8 = AtomicU8::new(0);

/// Restore state: interrupts were enabled when the section was entered.
const WAS_ENABLED: u8 = 1 << 0;
/// Restore state: this acquire claimed `OWNER` (the outermost one).
const CLAIMED: u8 = 1 << 1;

critical_section::set_impl!(DualCoreCriticalSection);

// SAFETY: `acquire` returns with this core's interrupts masked and `OWNER`
// naming this core; only the outermost `release` (CLAIMED) frees `OWNER`,
// and every `release` restores the mask its `acquire` found, so sections
// nest. `OWNER` equals this core's number only while this core holds it
// (only this core writes its own number), so the nesting test is exact.
unsafe impl critical_section::Impl for DualCoreCriticalSection {
    unsafe fn acquire() -> u8 {
        let enabled = primask::read().is_active();
        interrupt::disable();
        let me = core_id() + 1;
        let mut state = if enabled { WAS_ENABLED } else { 0 };
        if OWNER.load(Ordering::Relaxed) != me {
            while OWNER
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            state |= CLAIMED;
        }
        state
    }

    unsafe fn release(state: u8) {
        if state & CLAIMED != 0 {
            OWNER.store(0, Ordering::Release);
        }
        if state & WAS_ENABLED != 0 {
            // SAFETY: interrupts were enabled when the matching `acquire`
            // ran, and sections are released in reverse order.
            unsafe { interrupt::enable() };
        }
    }
}

/// A stack for core 1: `WORDS` 64-bit words, 8-byte aligned as the AAPCS
/// requires at public interfaces. Lives in `.bss`.
#[repr(C, align(8))]
pub struct Stack<const WORDS: usize>(UnsafeCell<[u64; WORDS]>);

// SAFETY: only core 1 touches the memory, through its stack pointer; Rust
// code never reads or writes it as a value.
unsafe impl<const WORDS: usize> Sync for Stack<WORDS> {}

impl<const WORDS: usize> Stack<WORDS> {
    /// A zeroed stack.
    pub const fn new() -> Self {
        Stack(UnsafeCell::new([0; WORDS]))
    }

    /// The initial stack pointer: one past the top (stacks grow down).
    pub const fn top(&'static self) -> *const u64 {
        // SAFETY: one past the end of the array is in bounds for `add`.
        unsafe { self.0.get().cast_const().cast::<u64>().add(WORDS) }
    }
}

impl<const WORDS: usize> Default for Stack<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

/// An exception handler in core 1's vector table.
pub type Handler = unsafe extern "C" fn();

/// How many interrupt lines core 1's table covers: the SSE-200's internal
/// lines 0..31 (timers, MHUs, ...). Core 1 must not unmask a line above.
pub const CORE1_LINES: usize = 32;

/// Core 1's own vector table (core 0 uses cortex-m-rt's): its initial
/// stack pointer, its reset handler (its `main`), a handler for every
/// system exception and one per interrupt line. Aligned to 1 KiB, more
/// than the architecture asks for a table of this size.
///
/// Core 1 starts with VTOR = INITSVTOR1; [`start_core1`] points INITSVTOR1
/// here before releasing the core, so that core 1 never runs core 0's
/// reset handler (which would zero `.bss` under core 0's feet) and never
/// shares its stack.
#[repr(C, align(1024))]
pub struct VectorTable {
    stack: *const u64,
    reset: unsafe extern "C" fn() -> !,
    /// NMI .. SysTick (exceptions 2..15; reserved ones included).
    exceptions: [Handler; 14],
    lines: [Handler; CORE1_LINES],
}

// SAFETY: read-only after construction (it lives in flash); the pointer is
// core 1's stack top, which only core 1 uses.
unsafe impl Sync for VectorTable {}

impl VectorTable {
    /// A table whose system exceptions all go to `fault` and whose lines
    /// go to `lines[n]`.
    pub const fn new(
        stack: *const u64,
        reset: unsafe extern "C" fn() -> !,
        fault: Handler,
        lines: [Handler; CORE1_LINES],
    ) -> Self {
        VectorTable {
            stack,
            reset,
            exceptions: [fault; 14],
            lines,
        }
    }
}

/// The secure system control block (`0x5002_1000`).
const SYSCTL: usize = 0x5002_1000;
/// INITSVTOR1: core 1's initial Secure VTOR, read when it leaves reset.
const INITSVTOR1: usize = SYSCTL + 0x114;
/// CPUWAIT: bit n holds core n in reset (QEMU: powered off) while set.
/// Reset value on the SSE-200: 0b10, core 1 waits.
const CPUWAIT: usize = SYSCTL + 0x118;

/// Starts core 1 at `table`: INITSVTOR1 = `table`, then clears core 1's
/// CPUWAIT bit. Call it once, from core 0, after everything core 1's code
/// uses is initialised. Returns CPUWAIT as it was (0b10: core 1 was
/// waiting).
pub fn start_core1(table: &'static VectorTable) -> u32 {
    let address = table as *const VectorTable as u32;
    // SAFETY: INITSVTOR1 and CPUWAIT are registers of the secure system
    // control block, which only this function writes. Core 1 is held in
    // CPUWAIT, so changing its initial VTOR disturbs nothing; clearing its
    // bit releases it (QEMU resets it, reading SP and PC from `table`), and
    // `table` is 'static, valid for as long as core 1 runs.
    unsafe {
        let before = core::ptr::read_volatile(CPUWAIT as *const u32);
        core::ptr::write_volatile(INITSVTOR1 as *mut u32, address);
        core::ptr::write_volatile(CPUWAIT as *mut u32, before & !0b10);
        before
    }
}

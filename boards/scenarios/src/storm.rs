//! The interrupt storm, and what the scenarios use to watch it: the
//! board's timer ([`Timer`]), the instructions it interrupted
//! ([`Preempted`], [`frame_vector!`]), and the stall bound ([`Stall`]).

use core::cell::RefCell;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Handle, Kinds, Locks, Notify, SubmitError};
use aiopoll_cortex_m::IrqEvent;
use critical_section::Mutex;

use crate::Ledger;

/// A board's periodic timer interrupt.
pub trait Timer {
    /// Starts it: an interrupt every `period` timer ticks.
    fn start(period: u32);
    /// Stops it.
    fn stop();
}

/// The distinct thread-mode instructions an interrupt preempted (an
/// open-addressing set of program counters).
pub struct Preempted(Mutex<RefCell<[u32; 2048]>>);

impl Preempted {
    /// Empty.
    pub const fn new() -> Self {
        Preempted(Mutex::new(RefCell::new([0; 2048])))
    }

    /// Records the interrupted instruction `pc` (from an interrupt handler).
    pub fn record(&self, pc: u32) {
        critical_section::with(|cs| {
            let mut set = self.0.borrow(cs).borrow_mut();
            let mut index = (pc.wrapping_mul(0x9e37_79b1) >> 21) as usize % set.len();
            for _ in 0..set.len() {
                match set[index] {
                    0 => {
                        set[index] = pc;
                        return;
                    }
                    seen if seen == pc => return,
                    _ => index = (index + 1) % set.len(),
                }
            }
        });
    }

    /// How many distinct instructions were recorded.
    pub fn count(&self) -> usize {
        critical_section::with(|cs| {
            self.0
                .borrow(cs)
                .borrow()
                .iter()
                .filter(|pc| **pc != 0)
                .count()
        })
    }
}

impl Default for Preempted {
    fn default() -> Self {
        Self::new()
    }
}

/// Defines the interrupt vector `$vector` as a trampoline that passes the
/// stacked exception frame to `$handler(frame: *const u32)`: word 6 of the
/// frame is the interrupted instruction's address.
#[macro_export]
macro_rules! frame_vector {
    ($vector:ident => $handler:path) => {
        /// The interrupt's vector: hands the exception frame on.
        ///
        /// # Safety
        /// Only the hardware calls it, on exception entry.
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $vector() {
            // SAFETY: on exception entry SP points at the frame the hardware
            // just pushed (r0-r3, r12, lr, pc, xpsr); this passes it on in r0
            // and tail-calls the handler.
            core::arch::naked_asm!("mov r0, sp", "b {handler}", handler = sym $handler);
        }
    };
}

/// The interrupted instruction's address in an exception frame.
///
/// # Safety
/// `frame` is the frame [`frame_vector!`] passed on.
pub unsafe fn interrupted_pc(frame: *const u32) -> u32 {
    // SAFETY: the caller's contract; word 6 is the stacked PC.
    unsafe { frame.add(6).read_volatile() }
}

/// Turns a stranded request into a failing run instead of a hung one:
/// thread mode reports each round of its loop, and a run of `limit` rounds
/// in a row without progress (nothing submitted, nothing reaped) while the
/// timer keeps firing means some request will never complete. A bound on
/// rounds, not on time: it holds under `-icount` and on a loaded machine.
pub struct Stall {
    idle: u32,
    limit: u32,
}

impl Stall {
    /// Gives up after `limit` rounds in a row without progress.
    pub const fn new(limit: u32) -> Self {
        Stall { idle: 0, limit }
    }

    /// Reports one round; returns `true` once the run has stalled.
    pub fn stalled(&mut self, progress: bool) -> bool {
        self.idle = if progress { 0 } else { self.idle + 1 };
        self.idle >= self.limit
    }
}

/// Rounds without progress after which [`storm`] reports a stranded
/// request: far more than the few timer periods any waiting request needs.
pub const STALL_ROUNDS: u32 = 1_000_000;

/// Requests per timer period in [`storm`].
pub const PER_PERIOD: u32 = 400;

/// Counts of one [`storm`] run.
pub struct StormReport {
    /// Requests submitted (all completed exactly once when `ok`).
    pub requests: u32,
    /// Whether every request completed exactly once and no slot leaked.
    pub ok: bool,
}

/// The interrupt storm: thread mode submits `periods × PER_PERIOD` requests
/// on `source`, cancels one in seven, and reaps, while the timer fires every
/// `first_period`, `first_period + 1`, .. ticks (one period per 400
/// requests) and raises `source`. Checks that every request completes
/// exactly once, that no slot leaks and that wakeups were deferred;
/// prints the counts through defmt.
pub fn storm<T: Timer, const N: usize, L: Locks, H: Notify, K: Kinds>(
    context: Pin<&Context<'static, N, L, 1, H, K>>,
    source: &'static IrqEvent<L::Queue>,
    first_period: u32,
    periods: u32,
) -> StormReport
where
    L::Queue: Send + Sync,
{
    const WORDS: usize = 512;
    let requests = (periods * PER_PERIOD).min(32 * WORDS as u32);
    let mut ledger = Ledger::<WORDS>::new();
    let mut handles: [Option<Handle>; 8] = [None; 8];
    let mut out = [Completion::EMPTY; 8];
    let mut next = 0u32;
    let mut stall = Stall::new(STALL_ROUNDS);
    // The period the timer runs at: restarted once per period, not on every
    // round that finds all slots busy (a restart before the timer expires
    // would keep it from ever firing).
    let mut running = None;
    while ledger.completed < requests {
        let submitted_before = next;
        let period = next / PER_PERIOD;
        if next < requests && running != Some(period) {
            T::start(first_period + period);
            running = Some(period);
        }
        if next < requests {
            match context.submit(source, Events::IN, u64::from(next)) {
                Ok(handle) => {
                    handles[next as usize % handles.len()] = Some(handle);
                    next += 1;
                }
                Err(SubmitError::Busy) => {}
                Err(other) => {
                    defmt::error!("submit failed: {}", other);
                    T::stop();
                    return StormReport {
                        requests,
                        ok: false,
                    };
                }
            }
            if next.is_multiple_of(7) {
                if let Some(handle) = handles[(next as usize + 3) % handles.len()].take() {
                    let _ = context.cancel(handle);
                }
            }
        }
        source.clear(Events::IN);
        let count = ledger.reap(&context, &mut out);
        if stall.stalled(count > 0 || next != submitted_before) {
            defmt::error!(
                "stalled: {} of {} requests never completed",
                next - ledger.completed,
                requests
            );
            T::stop();
            return StormReport {
                requests,
                ok: false,
            };
        }
        if count == 0 && next == requests {
            // Only waiting requests left: let the timer complete them.
            cortex_m::asm::wfi();
        }
    }
    T::stop();
    let stats = context.stats();
    let all_once = ledger.all_once(requests) && ledger.gone == 0;
    defmt::info!(
        "storm: {} requests: {} ready, {} cancelled; each completed exactly once: {}; slots in use at the end: {}",
        requests, ledger.ready, ledger.cancelled, all_once, context.in_use()
    );
    defmt::info!(
        "deferred path: {} wakeups deferred, {} completions by deferred work, {} spurious re-polls",
        stats.deferrals,
        stats.completed_by_deferred_work,
        stats.spurious
    );
    StormReport {
        requests,
        // The deferred path must have been taken; how many of its re-polls
        // completed a request depends on where the interrupts landed (the
        // -icount runs pin that count in their expected output; a run
        // without -icount may see every deferred wakeup beaten by thread
        // mode's clear, a reap or a cancel).
        ok: all_once && context.in_use() == 0 && stats.deferrals > 0,
    }
}

//! Scenario: a timer interrupt storm while thread mode submits, cancels and
//! reaps in a loop. Every request must complete exactly once, no slot may
//! leak, and the deferred path (the interrupt finds the context locked) must
//! be taken. The run sweeps the timer period so that, under `-icount`
//! (deterministic), the interrupt lands at many different instructions of
//! the submit, cancel and reap paths; it counts the distinct thread-mode
//! instructions it interrupted.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::pin::Pin;

use aiopoll::{Completion, Context, Events, Handle, Outcome, SubmitError};
use aiopoll_cortex_m::{CeilingLocks, IrqEvent, PendInterrupt};
use cortex_m_rt::entry;
use critical_section::Mutex;
use lm3s6965::interrupt;
use lm3s6965evb::{exit, timer0, Interrupt};

/// Timer periods swept, in clock cycles: one more each round.
const FIRST_PERIOD: u32 = 300;
const PERIODS: u32 = 32;
/// Requests per period.
const PER_PERIOD: u32 = 400;
const REQUESTS: u32 = PERIODS * PER_PERIOD;

static TIMER: IrqEvent = IrqEvent::new();
static CONTEXT: Context<'static, 8, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>> =
    Context::with_hooks(PendInterrupt(Interrupt::GPIOB));

/// Distinct thread-mode program counters the timer interrupted (an
/// open-addressing set).
static PREEMPTED: Mutex<RefCell<[u32; 2048]>> = Mutex::new(RefCell::new([0; 2048]));

/// The timer's vector: hands the stacked exception frame to the handler, so
/// it can see where thread mode was interrupted.
///
/// # Safety
/// Only the hardware calls it, on exception entry.
#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn TIMER_0A() {
    // SAFETY: on exception entry SP points at the frame the hardware just
    // pushed (r0-r3, r12, lr, pc, xpsr); this passes it on and tail-calls.
    core::arch::naked_asm!("mov r0, sp", "b {handler}", handler = sym timer_interrupt);
}

extern "C" fn timer_interrupt(frame: *const u32) {
    timer0::acknowledge();
    // SAFETY: `frame` is the exception frame (see `TIMER_0A`); word 6 is the
    // interrupted instruction's address.
    let pc = unsafe { frame.add(6).read_volatile() };
    critical_section::with(|cs| {
        let mut set = PREEMPTED.borrow(cs).borrow_mut();
        let mut index = (pc.wrapping_mul(0x9e37_79b1) >> 21) as usize;
        for _ in 0..set.len() {
            match set[index] {
                0 => {
                    set[index] = pc;
                    break;
                }
                seen if seen == pc => break,
                _ => index = (index + 1) % set.len(),
            }
        }
    });
    TIMER.raise(Events::IN);
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

/// Marks `user_data` completed; false if it already was.
fn account(seen: &mut [u32], user_data: u64) -> bool {
    let (word, bit) = ((user_data / 32) as usize, 1 << (user_data % 32));
    let first = seen[word] & bit == 0;
    seen[word] |= bit;
    first
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0);

    let mut seen = [0u32; (REQUESTS as usize).div_ceil(32)];
    let mut handles: [Option<Handle>; 8] = [None; 8];
    let mut out = [Completion::EMPTY; 8];
    let (mut next, mut completed, mut cancelled, mut ready) = (0u32, 0u32, 0u32, 0u32);
    while completed < REQUESTS {
        if next < REQUESTS && next % PER_PERIOD == 0 {
            timer0::start(FIRST_PERIOD + next / PER_PERIOD);
        }
        if next < REQUESTS {
            match context.submit(&TIMER, Events::IN, u64::from(next)) {
                Ok(handle) => {
                    handles[next as usize % handles.len()] = Some(handle);
                    next += 1;
                }
                Err(SubmitError::Busy) => {}
                Err(other) => {
                    defmt::error!("submit failed: {}", other);
                    exit(false);
                }
            }
            // Cancel one request in seven, some already completed.
            if next % 7 == 0 {
                if let Some(handle) = handles[(next as usize + 3) % handles.len()].take() {
                    let _ = context.cancel(handle);
                }
            }
        }
        TIMER.clear(Events::IN);
        let count = context.reap(&mut out);
        for completion in &out[..count] {
            if !account(&mut seen, completion.user_data) {
                defmt::error!("request {} completed twice", completion.user_data);
                exit(false);
            }
            match completion.outcome {
                Outcome::Cancelled => cancelled += 1,
                Outcome::Ready(events) if events == Events::IN => ready += 1,
                other => {
                    defmt::error!("unexpected outcome {}", other);
                    exit(false);
                }
            }
        }
        completed += count as u32;
        if count == 0 && next == REQUESTS {
            // Only waiting requests left: let the timer complete them.
            cortex_m::asm::wfi();
        }
    }
    timer0::stop();

    let stats = context.stats();
    let all_once = seen[..(REQUESTS as usize) / 32]
        .iter()
        .all(|word| *word == u32::MAX);
    let points = critical_section::with(|cs| {
        PREEMPTED
            .borrow(cs)
            .borrow()
            .iter()
            .filter(|pc| **pc != 0)
            .count()
    });
    defmt::info!(
        "storm: {} requests: {} ready, {} cancelled; each completed exactly once: {}; slots in use at the end: {}",
        REQUESTS, ready, cancelled, all_once, context.in_use()
    );
    defmt::info!(
        "deferred path: {} wakeups deferred, {} completions by deferred work, {} spurious re-polls",
        stats.deferrals,
        stats.completed_by_deferred_work,
        stats.spurious
    );
    defmt::info!(
        "sweep: {} timer periods ({}..{} cycles), {} distinct thread-mode instructions interrupted",
        PERIODS,
        FIRST_PERIOD,
        FIRST_PERIOD + PERIODS - 1,
        points
    );
    exit(all_once && context.in_use() == 0 && stats.completed_by_deferred_work > 0)
}

//! Scenario: the interrupt storm, awaited. Four embassy-executor tasks each
//! await 3,000 requests (12,000 in all) on an event that the timer
//! interrupt raises, each raced against a timeout of 1 to 4 ticks:
//! `select(context.request(..), delay.delay_ticks(..))`, the loser dropped
//! (a dropped request is cancelled). The timeouts are requests too, on the
//! timer's tick count (`Ticks`), so every wait in the run is an aiopoll
//! request and the timer interrupt wakes them all.
//!
//! - The timer runs at 0x00, above the context's ceiling 0x20: when it
//!   lands while a task holds the context, its wakeups defer to GPIOB
//!   (0xE0), which runs the deferred work and wakes the tasks from there.
//!   Its period is swept across 16 values, so that under `-icount` it lands
//!   at many different places.
//! - Five request slots for up to eight requests in flight: a future that
//!   finds every slot in use waits for one (counted: a slot is only freed
//!   by a future in thread mode, so one that finds the context full just
//!   before its first poll waits).
//! - Every request must be accounted for once: each task's ready and timed
//!   out add up to its 3,000, and the context's counts show every aiopoll
//!   request completed once and was taken by its future once, with no slot
//!   left in use.
#![no_std]
#![no_main]

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aiopoll::{Context, Events, Outcome};
use aiopoll_cortex_m::{AsyncDelay, CeilingLocks, IrqEvent, PendInterrupt, Ticks};
use aiopoll_scenarios::{frame_vector, interrupted_pc, Preempted};
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use lm3s6965::interrupt;
use lm3s6965evb::{exit, timer0, Interrupt};

const TASKS: usize = 4;
const PER_TASK: u32 = 3_000;
/// The timer's first period in clock cycles (at 12.5 MHz, under
/// `-icount shift=3` ten instructions a cycle), and how many consecutive
/// periods the sweep runs through, `SWEEP_TICKS` ticks each.
const FIRST_PERIOD: u32 = 150;
const PERIODS: u32 = 16;
const SWEEP_TICKS: u32 = 1_024;
/// Ticks without a single request finished after which the run has
/// stalled (some request will never complete): a bound on ticks, not on
/// time, so it holds under `-icount` and on a loaded machine.
const STALL_TICKS: u32 = 10_000;

type StormContext = Context<'static, 5, CeilingLocks<0x20>, 1, PendInterrupt<Interrupt>>;

static CONTEXT: StormContext = Context::with_hooks(PendInterrupt(Interrupt::GPIOB));
/// One event per task, raised by the timer in turn (one tick in five
/// raises none).
static EVENTS: [IrqEvent; TASKS] = [const { IrqEvent::new() }; TASKS];
/// The timer as a source: the timeouts wait on it.
static TICKS: Ticks = Ticks::new();
static TICK: AtomicU32 = AtomicU32::new(0);
static PREEMPTED: Preempted = Preempted::new();

/// Requests finished (ready or timed out), for the stall check.
static FINISHED: AtomicU32 = AtomicU32::new(0);
static FINISHED_AT_CHECK: AtomicU32 = AtomicU32::new(0);
static READY: [AtomicU32; TASKS] = [const { AtomicU32::new(0) }; TASKS];
static TIMED_OUT: [AtomicU32; TASKS] = [const { AtomicU32::new(0) }; TASKS];
static SLOT_WAITS: AtomicU32 = AtomicU32::new(0);
static TASKS_DONE: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicBool = AtomicBool::new(false);

frame_vector!(TIMER_0A => timer_interrupt);

extern "C" fn timer_interrupt(frame: *const u32) {
    timer0::acknowledge();
    // SAFETY: `frame` comes from `frame_vector!`.
    PREEMPTED.record(unsafe { interrupted_pc(frame) });
    let tick = TICK.fetch_add(1, Ordering::Relaxed) + 1;
    TICKS.tick();
    if let Some(event) = EVENTS.get((tick % 5) as usize) {
        event.raise(Events::IN);
    }
    if tick.is_multiple_of(SWEEP_TICKS) {
        timer0::start(FIRST_PERIOD + (tick / SWEEP_TICKS) % PERIODS);
    }
    if tick.is_multiple_of(STALL_TICKS) {
        let finished = FINISHED.load(Ordering::Relaxed);
        if FINISHED_AT_CHECK.swap(finished, Ordering::Relaxed) == finished {
            defmt::error!(
                "stalled: no request finished in {} ticks ({} of {} finished)",
                STALL_TICKS,
                finished,
                PER_TASK * TASKS as u32
            );
            exit(false);
        }
    }
}

#[interrupt]
fn GPIOB() {
    CONTEXT.run_deferred();
}

/// Task `index`: `PER_TASK` requests on its event, each against a timeout
/// of 1 to 4 ticks (plus the tick under way).
#[embassy_executor::task(pool_size = TASKS)]
async fn worker(index: usize) {
    let context = Pin::static_ref(&CONTEXT);
    let delay = AsyncDelay::new(context, &TICKS, 1);
    let event = &EVENTS[index];
    for round in 0..PER_TASK {
        let timeout = 1 + (round + index as u32) % 4;
        match select(
            counting_slot_waits(context.request(event, Events::IN)),
            counting_slot_waits(delay.delay_ticks(timeout)),
        )
        .await
        {
            Either::First(Ok(Outcome::Ready(Events::IN))) => {
                event.clear(Events::IN);
                READY[index].fetch_add(1, Ordering::Relaxed);
            }
            Either::First(other) => {
                defmt::error!("task {}: unexpected {}", index, other);
                FAILED.store(true, Ordering::Relaxed);
            }
            Either::Second(()) => {
                TIMED_OUT[index].fetch_add(1, Ordering::Relaxed);
            }
        }
        FINISHED.fetch_add(1, Ordering::Relaxed);
    }
    if TASKS_DONE.fetch_add(1, Ordering::Relaxed) + 1 == TASKS as u32 {
        timer0::stop();
        exit(report());
    }
}

/// `future`, counted in `SLOT_WAITS` if it will wait for a slot: the
/// context is full just before its first poll (interrupts complete
/// requests but never free a slot, so nothing frees one in between).
async fn counting_slot_waits<F: Future>(future: F) -> F::Output {
    if CONTEXT.in_use() == CONTEXT.capacity() {
        SLOT_WAITS.fetch_add(1, Ordering::Relaxed);
    }
    future.await
}

/// Prints the counts; whether every request was accounted for once.
fn report() -> bool {
    let context = Pin::static_ref(&CONTEXT);
    let load = |counts: &[AtomicU32; TASKS], index: usize| counts[index].load(Ordering::Relaxed);
    let (mut ready, mut timed_out, mut each_task) = (0, 0, true);
    for index in 0..TASKS {
        let (task_ready, task_timed_out) = (load(&READY, index), load(&TIMED_OUT, index));
        defmt::info!(
            "task {}: {} ready, {} timed out",
            index,
            task_ready,
            task_timed_out
        );
        each_task &= task_ready + task_timed_out == PER_TASK;
        ready += task_ready;
        timed_out += task_timed_out;
    }
    let stats = context.stats();
    let completed = stats.completed_at_submit
        + stats.completed_by_wakeup
        + stats.completed_by_deferred_work
        + stats.cancelled;
    let accounted = each_task
        && !FAILED.load(Ordering::Relaxed)
        && completed == stats.submitted
        && stats.awaited == stats.submitted
        && context.in_use() == 0;
    defmt::info!(
        "async storm: {} requests awaited across {} tasks: {} ready, {} timed out (dropped, so cancelled); each accounted for once: {}; slots in use at the end: {}",
        ready + timed_out,
        TASKS,
        ready,
        timed_out,
        accounted,
        context.in_use()
    );
    defmt::info!(
        "aiopoll requests (events and timeouts): {} submitted: {} completed in the timer interrupt, {} by deferred work in GPIOB, {} at submit, {} cancelled",
        stats.submitted,
        stats.completed_by_wakeup,
        stats.completed_by_deferred_work,
        stats.completed_at_submit,
        stats.cancelled
    );
    defmt::info!(
        "deferred path: {} wakeups deferred, {} spurious re-polls; {} futures waited for a slot",
        stats.deferrals,
        stats.spurious,
        SLOT_WAITS.load(Ordering::Relaxed)
    );
    defmt::info!(
        "sweep: {} timer interrupts, {} periods ({}..{} cycles), {} distinct instructions interrupted",
        TICK.load(Ordering::Relaxed),
        PERIODS,
        FIRST_PERIOD,
        FIRST_PERIOD + PERIODS - 1,
        PREEMPTED.count()
    );
    accounted
        && timed_out > 0
        && ready > 0
        && stats.completed_by_wakeup > 0
        && stats.completed_by_deferred_work > 0
        && SLOT_WAITS.load(Ordering::Relaxed) > 0
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0);
    for index in 0..TASKS {
        spawner.spawn(worker(index).unwrap());
    }
    timer0::start(FIRST_PERIOD);
}

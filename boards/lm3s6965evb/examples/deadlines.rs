//! Scenario: every request has a deadline, and one hardware timer interrupt
//! drives them all (`DeadlineTimer`). Thread mode keeps 16 requests in
//! flight, each on a source of its own with a deadline 1,500 to 25,500
//! cycles ahead, and cancels one in seven; timer 0 (above the context's
//! ceiling, so its wakeups defer when they land inside the context lock)
//! raises one source per tick in turn, every fourth time unkeyed, so some
//! requests are made ready before their deadline and the others time out.
//! Timer 1 is the alarm: one-shot, always set for the earliest deadline by
//! the deferred work (GPIOB), and its interrupt only pends that work.
//! SysTick extends the clock to 64 bits. Thread mode waits for completions
//! by spinning, not sleeping (see why in `main`).
//!
//! Checks: each request is accounted for once, as `Ready`, `Cancelled`
//! (exactly when cancel said so) or `TimedOut` (never before its deadline);
//! no alarm fires before its time; no run of the deferred work leaves a
//! deadline that had passed when it started; no slot is left in use.
#![no_std]
#![no_main]

use core::cell::Cell;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use aiopoll::{Completion, Context, Events, Handle, Outcome};
use aiopoll_cortex_m::{Alarm, CeilingLocks, DeadlineTimer, IrqEvent, PendInterrupt};
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use critical_section::Mutex;
use lm3s6965::interrupt;
use lm3s6965evb::{clock, exit, timer0, timer1, Interrupt};

/// Requests in the run.
const REQUESTS: u32 = 10_000;
/// Requests in flight: one per slot, one source each.
const SLOTS: usize = 16;
/// Deadlines are this many cycles ahead, plus up to `SPREAD`.
const SHORTEST: u64 = 1_500;
const SPREAD: u32 = 24_000;
/// Timer 0's period in cycles: each source is raised every
/// `SLOTS × RAISE_PERIOD` cycles, so about half the requests are made
/// ready before their deadline.
const RAISE_PERIOD: u32 = 1_009;

/// Timer 1 as the alarm, on SysTick's 64-bit clock.
struct Timer1;

/// When the alarm is set for (`u64::MAX`: not set), for its handler to
/// check that it never fires early.
static ALARM_AT: Mutex<Cell<u64>> = Mutex::new(Cell::new(u64::MAX));

impl Timer1 {
    /// Stops the timer and forgets a time-out it may already have raised
    /// (the alarm is being replaced).
    fn disarm() {
        timer1::stop();
        timer1::acknowledge();
        NVIC::unpend(Interrupt::TIMER_1A);
    }
}

impl Alarm for Timer1 {
    fn now(&self) -> u64 {
        clock::now()
    }

    fn set_alarm(&self, at: u64) {
        Timer1::disarm();
        critical_section::with(|cs| ALARM_AT.borrow(cs).set(at));
        let cycles = at.saturating_sub(clock::now()).min(u64::from(u32::MAX));
        timer1::start(cycles as u32);
    }

    fn clear_alarm(&self) {
        Timer1::disarm();
        critical_section::with(|cs| ALARM_AT.borrow(cs).set(u64::MAX));
    }
}

type Hooks = DeadlineTimer<PendInterrupt<Interrupt>, Timer1>;

static CONTEXT: Context<'static, SLOTS, CeilingLocks<0x20>, 1, Hooks> =
    Context::with_hooks(DeadlineTimer::new(PendInterrupt(Interrupt::GPIOB), Timer1));
static SOURCES: [IrqEvent; SLOTS] = [const { IrqEvent::new() }; SLOTS];

static RAISES: AtomicU32 = AtomicU32::new(0);
static ALARMS: AtomicU32 = AtomicU32::new(0);
static EARLY_ALARMS: AtomicU32 = AtomicU32::new(0);
static LATEST_ALARM: AtomicU32 = AtomicU32::new(0);
static RUNS: AtomicU32 = AtomicU32::new(0);
static OVERDUE_LEFT: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    clock::wrapped();
}

/// Makes the requests ready: one source per tick, in turn.
#[interrupt]
fn TIMER_0A() {
    timer0::acknowledge();
    let tick = RAISES.fetch_add(1, Ordering::Relaxed);
    let source = &SOURCES[tick as usize % SLOTS];
    if tick % 4 == 3 {
        source.raise_unkeyed(Events::IN);
    } else {
        source.raise(Events::IN);
    }
}

/// The alarm: checks its time, then only pends the deferred work.
#[interrupt]
fn TIMER_1A() {
    timer1::acknowledge();
    let now = clock::now();
    let at = critical_section::with(|cs| ALARM_AT.borrow(cs).get());
    ALARMS.fetch_add(1, Ordering::Relaxed);
    if now < at {
        EARLY_ALARMS.fetch_add(1, Ordering::Relaxed);
        defmt::error!("alarm for {} fired at {}", at, now);
    } else {
        let late = (now - at).min(u64::from(u32::MAX)) as u32;
        LATEST_ALARM.fetch_max(late, Ordering::Relaxed);
    }
    CONTEXT.hooks().alarm_fired();
}

/// The deferred work: expires, runs the deferred wakeups, sets the alarm.
#[interrupt]
fn GPIOB() {
    let started = clock::now();
    DeadlineTimer::run_deferred(&CONTEXT);
    RUNS.fetch_add(1, Ordering::Relaxed);
    // Nobody submits while this runs (thread mode cannot): every deadline
    // that had passed when it started has been dealt with.
    if CONTEXT.next_deadline().is_some_and(|next| next <= started) {
        OVERDUE_LEFT.fetch_add(1, Ordering::Relaxed);
    }
}

/// The request in flight on one source.
#[derive(Clone, Copy)]
struct InFlight {
    number: u32,
    handle: Handle,
    deadline: u64,
    /// Cancel said the request was still pending (its outcome must be
    /// `Cancelled`).
    cancelled: bool,
}

/// A small deterministic generator (xorshift32).
struct Random(u32);

impl Random {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

#[entry]
fn main() -> ! {
    let context = Pin::static_ref(&CONTEXT);
    clock::start();
    timer1::init();
    lm3s6965evb::enable(Interrupt::TIMER_0A, 0x00);
    lm3s6965evb::enable(Interrupt::TIMER_1A, 0x00);
    lm3s6965evb::enable(Interrupt::GPIOB, 0xE0);
    timer0::start(RAISE_PERIOD);

    let mut in_flight: [Option<InFlight>; SLOTS] = [None; SLOTS];
    let mut seen = [0u32; REQUESTS.div_ceil(32) as usize];
    let mut out = [Completion::EMPTY; SLOTS];
    let mut random = Random(0x1234_5678);
    let (mut next, mut reaped) = (0u32, 0u32);
    let (mut ready, mut cancelled, mut timed_out) = (0u32, 0u32, 0u32);
    let mut early_timeouts = 0u32;
    let mut latest_reap = 0u64;
    let mut ok = true;

    while reaped < REQUESTS {
        let free = in_flight.iter().position(Option::is_none);
        let mut submitted = false;
        if let (true, Some(source)) = (next < REQUESTS, free) {
            SOURCES[source].clear(Events::IN);
            let deadline = clock::now() + SHORTEST + u64::from(random.next() % SPREAD);
            let user_data = u64::from(next) << 8 | source as u64;
            match context.submit_with_deadline(&SOURCES[source], Events::IN, user_data, deadline) {
                Ok(handle) => {
                    in_flight[source] = Some(InFlight {
                        number: next,
                        handle,
                        deadline,
                        cancelled: false,
                    });
                    next += 1;
                    submitted = true;
                }
                Err(error) => {
                    defmt::error!("submit failed: {}", error);
                    exit(false);
                }
            }
            if next % 7 == 0 {
                if let Some(request) = &mut in_flight[(source + 5) % SLOTS] {
                    if !request.cancelled {
                        request.cancelled = context.cancel(request.handle).is_ok();
                    }
                }
            }
        }
        // Nothing to submit: every request in flight ends by itself (made
        // ready, or timed out), so wait until one does. The wait spins
        // instead of sleeping in `reap_blocking`: this scenario reads the
        // clock, and under QEMU's `-icount sleep=off` the virtual time a
        // sleeping core wakes at varies with the host's load, which would
        // change the run's counts from run to run (docs/porting.md,
        // section 10). Firmware on hardware calls `reap_blocking` here.
        let count = loop {
            let count = context.reap(&mut out);
            if count > 0 || submitted {
                break count;
            }
            core::hint::spin_loop();
        };
        let now = clock::now();
        for completion in &out[..count] {
            let source = (completion.user_data & 0xFF) as usize;
            let number = (completion.user_data >> 8) as u32;
            let Some(request) = in_flight[source]
                .take()
                .filter(|request| request.number == number)
            else {
                defmt::error!("request {} is not in flight", number);
                exit(false);
            };
            let (word, bit) = ((number / 32) as usize, 1 << (number % 32));
            if seen[word] & bit != 0 {
                defmt::error!("request {} completed twice", number);
                ok = false;
            }
            seen[word] |= bit;
            match (completion.outcome, request.cancelled) {
                (Outcome::Cancelled, true) => cancelled += 1,
                (Outcome::Ready(Events::IN), false) => ready += 1,
                (Outcome::TimedOut, false) if request.deadline <= now => {
                    timed_out += 1;
                    latest_reap = latest_reap.max(now - request.deadline);
                }
                (Outcome::TimedOut, false) => {
                    defmt::error!(
                        "request {} timed out {} cycles before its deadline",
                        number,
                        request.deadline - now
                    );
                    early_timeouts += 1;
                }
                (outcome, cancelled) => {
                    defmt::error!(
                        "request {} ended {} (cancel said pending: {})",
                        number,
                        outcome,
                        cancelled
                    );
                    ok = false;
                }
            }
        }
        reaped += count as u32;
    }
    timer0::stop();

    let all_once =
        (0..REQUESTS).all(|number| seen[(number / 32) as usize] & 1 << (number % 32) != 0);
    let stats = context.stats();
    let alarms = ALARMS.load(Ordering::Relaxed);
    let early = EARLY_ALARMS.load(Ordering::Relaxed);
    let overdue = OVERDUE_LEFT.load(Ordering::Relaxed);
    defmt::info!(
        "deadlines: {} requests: {} ready, {} cancelled, {} timed out ({} before the deadline); each accounted for once: {}; slots in use at the end: {}",
        REQUESTS,
        ready,
        cancelled,
        timed_out,
        early_timeouts,
        all_once && ok,
        context.in_use()
    );
    defmt::info!(
        "one timer: {} alarm interrupts ({} early, the latest {} cycles after its time), {} deferred-work runs ({} left a passed deadline), timeouts reaped at most {} cycles after the deadline",
        alarms,
        early,
        LATEST_ALARM.load(Ordering::Relaxed),
        RUNS.load(Ordering::Relaxed),
        overdue,
        latest_reap
    );
    defmt::info!(
        "deferred path: {} wakeups deferred, {} completions by deferred work, {} spurious re-polls",
        stats.deferrals,
        stats.completed_by_deferred_work,
        stats.spurious
    );
    exit(
        ok && all_once
            && context.in_use() == 0
            && ready > 0
            && cancelled > 0
            && timed_out > 0
            && stats.timed_out == timed_out
            && early_timeouts == 0
            && early == 0
            && overdue == 0
            && alarms > 0,
    )
}

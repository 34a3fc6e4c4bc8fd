//! `DeadlineTimer`: every deadline of a context from one timer interrupt,
//! with the test playing the hardware: the clock and the alarm ([`Clock`]),
//! the timer's interrupt (`alarm_fired` once the alarm is due) and the
//! pended deferred-work interrupt (`DeadlineTimer::run_deferred` while
//! [`Pended`] was pended).
//!
//! What must hold: a request that times out does so at the first run of
//! the deferred work at or after its deadline, never before; after each
//! run nothing overdue is left; between runs, every armed deadline is
//! covered by the alarm or by pended deferred work; a wakeup that came
//! first wins; every request is accounted for once.

mod support;

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::thread;

use aiopoll_cortex_m::aiopoll::{Completion, Context, Events, Handle, Notify, Outcome};
use aiopoll_cortex_m::{Alarm, CortexMLocks, DeadlineTimer, IrqEvent};
use support::reap_all;
use support::task::Task;

/// The deferred-work interrupt's pending bit, and how often it was pended.
struct Pended {
    pending: AtomicBool,
    count: AtomicUsize,
}

impl Pended {
    const fn new() -> Self {
        Pended {
            pending: AtomicBool::new(false),
            count: AtomicUsize::new(0),
        }
    }

    /// Clears the pending bit; whether it was set (the interrupt runs).
    fn take(&self) -> bool {
        self.pending.swap(false, Ordering::SeqCst)
    }

    fn is_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Notify for Pended {
    fn deferred_work(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.pending.store(true, Ordering::SeqCst);
    }
}

/// The timer: a clock the test sets, and a one-shot alarm.
struct Clock {
    now: AtomicU64,
    /// The alarm's time; `NO_ALARM`: none.
    alarm: AtomicU64,
    /// Ticks that pass while the alarm is being set (a slow timer).
    lag: AtomicU64,
    sets: AtomicUsize,
}

const NO_ALARM: u64 = u64::MAX;

impl Clock {
    const fn at(now: u64) -> Self {
        Clock {
            now: AtomicU64::new(now),
            alarm: AtomicU64::new(NO_ALARM),
            lag: AtomicU64::new(0),
            sets: AtomicUsize::new(0),
        }
    }

    fn set_now(&self, now: u64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// The alarm's time, if set.
    fn alarm_at(&self) -> Option<u64> {
        Some(self.alarm.load(Ordering::SeqCst)).filter(|at| *at != NO_ALARM)
    }

    /// The timer's interrupt: whether the alarm is due (it fires once).
    fn fire(&self) -> bool {
        let now = self.now();
        self.alarm
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |at| {
                (at != NO_ALARM && at <= now).then_some(NO_ALARM)
            })
            .is_ok()
    }
}

impl Alarm for Clock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn set_alarm(&self, at: u64) {
        self.sets.fetch_add(1, Ordering::SeqCst);
        self.alarm.store(at, Ordering::SeqCst);
        self.now
            .fetch_add(self.lag.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn clear_alarm(&self) {
        self.alarm.store(NO_ALARM, Ordering::SeqCst);
    }
}

type Timer = DeadlineTimer<Pended, Clock>;
type TimerContext<'s, const N: usize> = Context<'s, N, CortexMLocks, 1, Timer>;

fn timer_at(now: u64) -> Timer {
    DeadlineTimer::new(Pended::new(), Clock::at(now))
}

/// The interrupts, as the hardware would take them now: the timer's (if
/// its alarm is due), then the deferred work for as long as it is pended.
/// Returns how many requests timed out.
fn interrupts<const N: usize>(context: &TimerContext<'_, N>) -> usize {
    let timer = context.hooks();
    if timer.alarm().fire() {
        timer.alarm_fired();
    }
    let mut timed_out = 0;
    while timer.hooks().take() {
        timed_out += DeadlineTimer::run_deferred(context);
    }
    timed_out
}

/// Every armed deadline is covered: by the alarm, or by pended work.
fn covered<const N: usize>(context: &TimerContext<'_, N>) -> bool {
    let timer = context.hooks();
    context.next_deadline().is_none_or(|next| {
        timer.hooks().is_pending() || timer.alarm().alarm_at().is_some_and(|at| at <= next)
    })
}

#[test]
fn the_timer_follows_the_earliest_deadline() {
    let sources: [IrqEvent; 3] = [const { IrqEvent::new() }; 3];
    let context = pin!(TimerContext::<'_, 4>::with_hooks(timer_at(100)));
    let context = context.as_ref();
    let timer = context.hooks();

    // The first deadline: no alarm yet, so the deferred work is pended,
    // and it sets the alarm.
    let far = context
        .submit_with_deadline(&sources[0], Events::IN, 0, 150)
        .unwrap();
    assert!(timer.hooks().is_pending());
    assert_eq!(interrupts(&context), 0);
    assert_eq!(timer.alarm().alarm_at(), Some(150));
    // A later deadline is covered by that alarm: nothing pended.
    context
        .submit_with_deadline(&sources[1], Events::IN, 1, 200)
        .unwrap();
    assert!(!timer.hooks().is_pending());
    // An earlier one pends the deferred work, which moves the alarm.
    context
        .submit_with_deadline(&sources[2], Events::IN, 2, 120)
        .unwrap();
    assert!(timer.hooks().is_pending());
    assert!(covered(&context));
    interrupts(&context);
    assert_eq!(timer.alarm().alarm_at(), Some(120));
    assert_eq!(timer.hooks().count(), 2);

    // One tick before the deadline: nothing; at it: request 2 only.
    timer.alarm().set_now(119);
    assert_eq!(interrupts(&context), 0);
    timer.alarm().set_now(120);
    assert_eq!(interrupts(&context), 1);
    assert_eq!(
        reap_all(&context),
        [Completion {
            user_data: 2,
            outcome: Outcome::TimedOut,
            ..Completion::EMPTY
        }]
    );
    assert_eq!(timer.alarm().alarm_at(), Some(150));

    // Request 0 is cancelled: its alarm fires for nothing, and the timer
    // moves on to request 1's deadline.
    context.cancel(far).unwrap();
    timer.alarm().set_now(150);
    assert_eq!(interrupts(&context), 0);
    assert_eq!(timer.alarm().alarm_at(), Some(200));
    // Request 1 is made ready: the alarm fires for nothing again, and is
    // cleared: no deadline is left.
    sources[1].raise(Events::IN);
    timer.alarm().set_now(200);
    assert_eq!(interrupts(&context), 0);
    assert_eq!(timer.alarm().alarm_at(), None);
    let mut rest = reap_all(&context);
    rest.sort_by_key(|completion| completion.user_data);
    assert_eq!(
        rest.iter()
            .map(|completion| (completion.user_data, completion.outcome))
            .collect::<Vec<_>>(),
        [(0, Outcome::Cancelled), (1, Outcome::Ready(Events::IN))]
    );
    assert_eq!(context.stats().timed_out, 1);
    assert_eq!(context.in_use(), 0);
    // Nothing is armed: the next deadline pends the deferred work again.
    context
        .submit_with_deadline(&sources[0], Events::IN, 3, 500)
        .unwrap();
    assert!(timer.hooks().is_pending());
}

#[test]
fn the_timer_interrupt_only_pends_the_deferred_work() {
    let source = IrqEvent::new();
    let context = pin!(TimerContext::<'_, 2>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    context
        .submit_with_deadline(&source, Events::IN, 0, 10)
        .unwrap();
    interrupts(&context);
    context.hooks().alarm().set_now(10);
    assert!(context.hooks().alarm().fire());
    context.hooks().alarm_fired();
    // Pended, and nothing completed until the deferred work runs.
    assert!(context.hooks().hooks().is_pending());
    assert_eq!(context.stats().timed_out, 0);
    assert_eq!(context.in_use(), 1);
    assert_eq!(interrupts(&context), 1);
    assert_eq!(context.stats().timed_out, 1);
}

#[test]
fn a_deadline_that_passes_while_the_timer_is_set_expires_at_once() {
    let source = IrqEvent::new();
    let context = pin!(TimerContext::<'_, 2>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    let clock = context.hooks().alarm();
    context
        .submit_with_deadline(&source, Events::IN, 0, 3)
        .unwrap();
    // Setting the timer takes 10 ticks: the deadline has passed when it is
    // set, so the run expires the request itself.
    clock.lag.store(10, Ordering::SeqCst);
    assert!(context.hooks().hooks().take());
    assert_eq!(DeadlineTimer::run_deferred(&context), 1);
    assert_eq!(clock.sets.load(Ordering::SeqCst), 1);
    assert_eq!(clock.alarm_at(), None, "cleared: nothing left");
    assert_eq!(reap_all(&context)[0].outcome, Outcome::TimedOut);
}

#[test]
fn a_deadline_already_passed_at_submit_times_out_at_the_next_run() {
    let source = IrqEvent::new();
    let context = pin!(TimerContext::<'_, 2>::with_hooks(timer_at(50)));
    let context = context.as_ref();
    context
        .submit_with_deadline(&source, Events::IN, 0, 20)
        .unwrap();
    assert!(context.hooks().hooks().is_pending());
    assert_eq!(interrupts(&context), 1);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::TimedOut);
    // A request ready at submit never reaches the timer.
    source.raise(Events::IN);
    let pended = context.hooks().hooks().count();
    context
        .submit_with_deadline(&source, Events::IN, 1, 20)
        .unwrap();
    assert_eq!(context.hooks().hooks().count(), pended);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
}

#[test]
fn a_deferred_wakeup_before_the_deadline_wins_over_the_timer() {
    let source = IrqEvent::new();
    let context = pin!(TimerContext::<'_, 2>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    context
        .submit_with_deadline(&source, Events::IN, 0, 10)
        .unwrap();
    interrupts(&context);
    // An unkeyed wakeup at tick 9 is handed to deferred work, which has not
    // run when the deadline comes: the run at tick 10 finds both.
    context.hooks().alarm().set_now(9);
    source.raise_unkeyed(Events::IN);
    context.hooks().alarm().set_now(10);
    assert_eq!(interrupts(&context), 0);
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
    assert_eq!(context.stats().timed_out, 0);
}

#[test]
fn an_awaited_request_with_a_deadline_resolves_timed_out() {
    let source = IrqEvent::new();
    let context = pin!(TimerContext::<'_, 2>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    let task = Task::new();
    let mut request = pin!(context.request(&source, Events::IN).deadline(30));
    assert!(task.poll(request.as_mut()).is_pending());
    assert!(context.hooks().hooks().is_pending());
    interrupts(&context);
    assert_eq!(context.hooks().alarm().alarm_at(), Some(30));
    context.hooks().alarm().set_now(29);
    interrupts(&context);
    assert_eq!(task.wakes(), 0);
    context.hooks().alarm().set_now(30);
    interrupts(&context);
    assert_eq!(task.wakes(), 1);
    assert_eq!(
        task.poll(request.as_mut()),
        Poll::Ready(Ok(Outcome::TimedOut))
    );
    assert_eq!(context.in_use(), 0);
}

/// A timer that plays a higher-priority interrupt submitting a request at
/// the worst moment: while the deferred work sets the alarm, after it has
/// read the earliest deadline.
struct InterleavingClock {
    clock: Clock,
    /// The deadline the interleaved request gets; `NO_ALARM` once done.
    interleave: AtomicU64,
}

static INTERLEAVED: IrqEvent = IrqEvent::new();
static FIRST: IrqEvent = IrqEvent::new();
static LATER: IrqEvent = IrqEvent::new();
static INTERLEAVING: Context<
    'static,
    4,
    CortexMLocks,
    1,
    DeadlineTimer<Pended, InterleavingClock>,
> = Context::with_hooks(DeadlineTimer::new(
    Pended::new(),
    InterleavingClock {
        clock: Clock::at(0),
        interleave: AtomicU64::new(NO_ALARM),
    },
));

impl Alarm for InterleavingClock {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn set_alarm(&self, at: u64) {
        self.clock.set_alarm(at);
        let deadline = self.interleave.swap(NO_ALARM, Ordering::SeqCst);
        if deadline != NO_ALARM {
            Pin::static_ref(&INTERLEAVING)
                .submit_with_deadline(&INTERLEAVED, Events::IN, 9, deadline)
                .unwrap();
        }
    }

    fn clear_alarm(&self) {
        self.clock.clear_alarm();
    }
}

#[test]
fn a_deadline_armed_while_the_timer_is_set_is_not_lost() {
    let context = Pin::static_ref(&INTERLEAVING);
    let timer = context.hooks();
    let clock = &timer.alarm().clock;
    context
        .submit_with_deadline(&FIRST, Events::IN, 1, 50)
        .unwrap();
    context
        .submit_with_deadline(&LATER, Events::IN, 2, 100)
        .unwrap();
    assert!(timer.hooks().take());
    DeadlineTimer::run_deferred(&context);
    assert_eq!(clock.alarm_at(), Some(50));
    // At 50 the run expires request 1 and reads 100 as the earliest
    // deadline; while it sets the alarm, request 9 arms for 95: after the
    // last promise (50), before the next (100). It must pend the work.
    timer.alarm().interleave.store(95, Ordering::SeqCst);
    clock.set_now(50);
    assert!(clock.fire());
    timer.alarm_fired();
    assert!(timer.hooks().take());
    assert_eq!(DeadlineTimer::run_deferred(&context), 1);
    assert_eq!(clock.alarm_at(), Some(100));
    assert!(timer.hooks().take(), "the interleaved deadline was lost");
    DeadlineTimer::run_deferred(&context);
    assert_eq!(clock.alarm_at(), Some(95));
    clock.set_now(95);
    assert!(clock.fire());
    timer.alarm_fired();
    assert!(timer.hooks().take());
    assert_eq!(DeadlineTimer::run_deferred(&context), 1);
    let mut out = [Completion::EMPTY; 4];
    let count = context.reap(&mut out);
    let timed_out: Vec<u64> = out[..count]
        .iter()
        .filter(|completion| completion.outcome == Outcome::TimedOut)
        .map(|completion| completion.user_data)
        .collect();
    assert_eq!(timed_out, [1, 9]);
    assert_eq!(clock.alarm_at(), Some(100));
}

/// A small deterministic generator (xorshift64).
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// What the test does with a request before its deadline.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    /// Raise its source (keyed: completes inline) at this tick.
    Raise(u64),
    /// Raise it unkeyed (through deferred work) at this tick.
    RaiseUnkeyed(u64),
    /// Cancel it at this tick.
    Cancel(u64),
    /// Leave it to time out.
    TimeOut,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    handle: Handle,
    source: usize,
    deadline: u64,
    plan: Plan,
}

#[test]
fn every_deadline_times_out_exactly_on_time_in_a_long_run() {
    const SLOTS: usize = 8;
    let requests: u64 = if cfg!(miri) { 150 } else { 20_000 };
    let sources: [IrqEvent; SLOTS] = [const { IrqEvent::new() }; SLOTS];
    let context = pin!(TimerContext::<'_, SLOTS>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    let timer = context.hooks();
    let clock = timer.alarm();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut planned: Vec<Option<Planned>> = vec![None; requests as usize];
    let mut free_sources: Vec<usize> = (0..SLOTS).collect();
    let (mut next, mut reaped, mut oldest) = (0u64, 0u64, 0u64);
    let (mut ready, mut cancelled, mut timed_out) = (0u64, 0u64, 0u64);
    let mut now = 0u64;
    while reaped < requests {
        clock.set_now(now);
        interrupts(&context);
        // Nothing overdue is left after the interrupts.
        assert!(
            context.next_deadline().is_none_or(|next| next > now),
            "tick {now}: an overdue deadline was left"
        );
        for completion in reap_all(&context) {
            let request = planned[completion.user_data as usize]
                .take()
                .expect("completed twice");
            match (completion.outcome, request.plan) {
                (Outcome::Ready(Events::IN), Plan::Raise(_) | Plan::RaiseUnkeyed(_)) => ready += 1,
                (Outcome::Cancelled, Plan::Cancel(_)) => cancelled += 1,
                (Outcome::TimedOut, Plan::TimeOut) => {
                    // Not early, not late: at the first run at its deadline.
                    assert_eq!(request.deadline, now, "{request:?}");
                    timed_out += 1;
                }
                (outcome, _) => panic!("{request:?} ended {outcome:?}"),
            }
            sources[request.source].clear(Events::IN);
            free_sources.push(request.source);
            reaped += 1;
        }
        // What the "device" and thread mode do at this tick.
        // (Only the requests from the oldest one still pending on.)
        while oldest < next && planned[oldest as usize].is_none() {
            oldest += 1;
        }
        for request in planned[oldest as usize..next as usize].iter().flatten() {
            match request.plan {
                Plan::Raise(at) if at == now => {
                    sources[request.source].raise(Events::IN);
                }
                Plan::RaiseUnkeyed(at) if at == now => {
                    sources[request.source].raise_unkeyed(Events::IN);
                }
                Plan::Cancel(at) if at == now => {
                    context.cancel(request.handle).unwrap();
                }
                _ => {}
            }
        }
        while next < requests && !free_sources.is_empty() && random.below(3) != 0 {
            let source = free_sources.pop().unwrap();
            let deadline = now + 1 + random.below(40);
            let before = now + random.below(deadline - now);
            let plan = match random.below(8) {
                0 | 1 => Plan::Raise(before),
                2 => Plan::RaiseUnkeyed(before),
                3 => Plan::Cancel(before),
                _ => Plan::TimeOut,
            };
            let handle = context
                .submit_with_deadline(&sources[source], Events::IN, next, deadline)
                .unwrap();
            planned[next as usize] = Some(Planned {
                handle,
                source,
                deadline,
                plan,
            });
            // Planned for this very tick: now.
            match plan {
                Plan::Raise(at) if at == now => {
                    sources[source].raise(Events::IN);
                }
                Plan::RaiseUnkeyed(at) if at == now => {
                    sources[source].raise_unkeyed(Events::IN);
                }
                Plan::Cancel(at) if at == now => {
                    context.cancel(handle).unwrap();
                }
                _ => {}
            }
            next += 1;
        }
        assert!(covered(&context), "tick {now}: a deadline is not covered");
        now += 1;
    }
    assert_eq!(ready + cancelled + timed_out, requests);
    assert_eq!(u64::from(context.stats().timed_out), timed_out);
    assert!(ready > 0 && cancelled > 0 && timed_out > 0);
    assert_eq!(context.in_use(), 0);
    // One timer for every deadline: fewer alarms than requests.
    assert!(clock.sets.load(Ordering::SeqCst) < requests as usize);
}

/// Tells the other threads to stop when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn threads_play_thread_mode_the_timer_and_the_deferred_work() {
    const SLOTS: usize = 8;
    let requests: u64 = if cfg!(miri) { 40 } else { 3_000 };
    // Every deadline is before this tick, where the clock stops.
    let end: u64 = if cfg!(miri) { 400 } else { 30_000 };
    let sources: [IrqEvent; SLOTS] = [const { IrqEvent::new() }; SLOTS];
    let context = pin!(TimerContext::<'_, SLOTS>::with_hooks(timer_at(0)));
    let context = context.as_ref();
    let timer = context.hooks();
    let clock = timer.alarm();
    let stopped = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    // Set while the deferred work may be running.
    let busy = AtomicBool::new(false);
    let deadlines = Mutex::new(vec![0u64; requests as usize]);

    thread::scope(|scope| {
        // The timer: advances the clock and fires the alarm when due.
        scope.spawn(|| {
            for now in 1..=end {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                clock.set_now(now);
                if clock.fire() {
                    timer.alarm_fired();
                }
                thread::yield_now();
            }
            stopped.store(true, Ordering::SeqCst);
        });
        // The deferred-work interrupt: runs while pended.
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                busy.store(true, Ordering::SeqCst);
                if timer.hooks().take() {
                    DeadlineTimer::run_deferred(&context);
                }
                busy.store(false, Ordering::SeqCst);
                thread::yield_now();
            }
        });
        // Thread mode: submits with deadlines, makes one in five ready,
        // cancels one in five, reaps. (If it fails, the other threads stop
        // too, so that the failure is reported rather than waited for.)
        let _stop = StopOnDrop(&done);
        let mut seen = vec![false; requests as usize];
        let mut handles: Vec<Option<(Handle, usize)>> = vec![None; SLOTS];
        let (mut next, mut reaped) = (0u64, 0u64);
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        while reaped < requests {
            if next < requests {
                if let Some(slot) = handles.iter().position(Option::is_none) {
                    let deadline = (clock.now() + 1 + random.below(200)).min(end - 1);
                    deadlines.lock().unwrap()[next as usize] = deadline;
                    sources[slot].clear(Events::IN);
                    let handle = context
                        .submit_with_deadline(&sources[slot], Events::IN, next, deadline)
                        .unwrap();
                    handles[slot] = Some((handle, next as usize));
                    match next % 15 {
                        0 | 5 | 10 => {
                            sources[slot].raise(Events::IN);
                        }
                        3 | 6 | 12 => {
                            let _ = context.cancel(handle);
                        }
                        _ => {}
                    }
                    next += 1;
                }
            }
            // Read before reaping: once the clock has stopped (past every
            // deadline) and everything is submitted, nothing pends the
            // deferred work any more; if it is idle then, a reap that finds
            // nothing means a request was lost.
            let idle = next == requests
                && stopped.load(Ordering::SeqCst)
                && !timer.hooks().is_pending()
                && !busy.load(Ordering::SeqCst);
            let completions = reap_all(&context);
            let now = clock.now();
            for completion in &completions {
                let index = completion.user_data as usize;
                assert!(!seen[index], "request {index} completed twice");
                seen[index] = true;
                let deadline = deadlines.lock().unwrap()[index];
                match completion.outcome {
                    Outcome::TimedOut => {
                        assert!(deadline <= now, "request {index} timed out early");
                    }
                    Outcome::Ready(_) | Outcome::Cancelled => {}
                    other => panic!("request {index} ended {other:?}"),
                }
                let slot = handles
                    .iter()
                    .position(|entry| entry.is_some_and(|(_, user)| user == index))
                    .unwrap();
                handles[slot] = None;
            }
            reaped += completions.len() as u64;
            if idle && completions.is_empty() {
                assert_eq!(context.in_use(), 0, "a deadline was never expired");
            }
            thread::yield_now();
        }
        assert!(seen.iter().all(|seen| *seen));
    });
    assert_eq!(context.in_use(), 0);
    assert!(context.stats().timed_out > 0);
}

//! The cases: each sets up its peer, then hands one iteration to a
//! [`Runner`] as a closure (monomorphised, so the harness adds no indirect
//! call to what is measured).

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Poll, Waker};

use crate::threads::Placement;
use crate::{scale, threads};
use aiopoll::{Completion, Events, Outcome, PollTable, Source, WaitQueue};

/// Runs one iteration of a case many times.
pub trait Runner {
    /// Runs `op` as often as the runner wants.
    fn run<T>(&mut self, op: impl FnMut() -> T);

    /// Runs `before`, `part` and `after` in turn on `state` as often as the
    /// runner wants, and measures only `part` (a [`Kind::UserPart`] case).
    fn run_part<S, T>(
        &mut self,
        state: &mut S,
        before: impl FnMut(&mut S),
        part: impl FnMut(&mut S) -> T,
        after: impl FnMut(&mut S),
    );
}

/// Sets a case up without running it: tells whether it is available here.
struct Probe;

impl Runner for Probe {
    fn run<T>(&mut self, _op: impl FnMut() -> T) {}

    fn run_part<S, T>(
        &mut self,
        _state: &mut S,
        _before: impl FnMut(&mut S),
        _part: impl FnMut(&mut S) -> T,
        _after: impl FnMut(&mut S),
    ) {
    }
}

/// Where a case spends its time.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Single thread, user space only: instruction counts mean something.
    User,
    /// As `User`, but only a part of each iteration is measured (timed,
    /// and counted: callgrind collects inside [`crate::measured_part`]
    /// only), the rest sets it up and takes it down.
    UserPart,
    /// Single thread, through system calls.
    Kernel,
    /// Several threads.
    Threads,
}

impl Kind {
    /// The name `AIOPOLL_BENCH_LIST` prints.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::UserPart => "user-part",
            Kind::Kernel => "kernel",
            Kind::Threads => "threads",
        }
    }
}

/// One case of one peer.
pub struct Case {
    /// The comparison it belongs to.
    pub group: &'static str,
    /// Who is measured.
    pub peer: &'static str,
    /// Operations per iteration (fan-out: requests per iteration).
    pub per: u64,
    /// Where it spends its time.
    pub kind: Kind,
}

const fn case(group: &'static str, peer: &'static str, per: u64, kind: Kind) -> Case {
    Case {
        group,
        peer,
        per,
        kind,
    }
}

/// Requests per fan-out iteration.
pub const FAN_OUT: usize = 1000;

/// Every case, grouped: the order is the table's.
pub const CASES: &[Case] = &[
    case("round-trip", "aiopoll", 1, Kind::User),
    case("round-trip", "maitake-sync", 1, Kind::User),
    case("round-trip", "embassy-sync", 1, Kind::User),
    case("round-trip", "event-listener", 1, Kind::User),
    case("round-trip", "linux-aio", 1, Kind::Kernel),
    case("round-trip", "io-uring", 1, Kind::Kernel),
    case("round-trip", "floor", 1, Kind::User),
    case("awaited-round-trip", "aiopoll", 1, Kind::User),
    case("awaited-round-trip", "maitake-sync", 1, Kind::User),
    case("awaited-round-trip", "embassy-sync", 1, Kind::User),
    case("awaited-cancel", "aiopoll", 1, Kind::User),
    case("awaited-cancel", "maitake-sync", 1, Kind::User),
    case("cancel", "aiopoll", 1, Kind::User),
    case("cancel", "maitake-sync", 1, Kind::User),
    case("cancel", "event-listener", 1, Kind::User),
    case("cancel", "linux-aio", 1, Kind::Kernel),
    case("cancel", "io-uring", 1, Kind::Kernel),
    case("fan-out", "aiopoll", FAN_OUT as u64, Kind::User),
    case("fan-out", "maitake-sync", FAN_OUT as u64, Kind::User),
    case("fan-out", "event-listener", FAN_OUT as u64, Kind::User),
    case("fan-out", "linux-aio", FAN_OUT as u64, Kind::Kernel),
    case("fan-out", "io-uring", FAN_OUT as u64, Kind::Kernel),
    case("ping-pong", "aiopoll-std", 1, Kind::Threads),
    case("ping-pong", "condvar", 1, Kind::Threads),
    case("ping-pong", "linux-aio", 1, Kind::Threads),
    case("ping-pong-one-cpu", "aiopoll-std", 1, Kind::Threads),
    case("ping-pong-one-cpu", "condvar", 1, Kind::Threads),
    case("ping-pong-one-cpu", "linux-aio", 1, Kind::Threads),
    case("contention", "aiopoll-std", 1, Kind::Threads),
    case("contention", "maitake-sync", 1, Kind::Threads),
    case("contention", "linux-aio", 1, Kind::Threads),
    case("tokio-round-trip", "aiopoll-std", 1, Kind::Threads),
    case("tokio-round-trip", "aiopoll-std-counter", 1, Kind::Threads),
    case("tokio-round-trip", "tokio-notify", 1, Kind::Threads),
    case("tokio-round-trip-one-cpu", "aiopoll-std", 1, Kind::Threads),
    case(
        "tokio-round-trip-one-cpu",
        "aiopoll-std-counter",
        1,
        Kind::Threads,
    ),
    case("tokio-round-trip-one-cpu", "tokio-notify", 1, Kind::Threads),
    case("scale-wake-1", "aiopoll", 1, Kind::UserPart),
    case("scale-wake-1", "maitake-sync", 1, Kind::UserPart),
    case("scale-wake-16", "aiopoll", 16, Kind::UserPart),
    case("scale-wake-16", "maitake-sync", 16, Kind::UserPart),
    case("scale-wake-256", "aiopoll", 256, Kind::UserPart),
    case("scale-wake-256", "maitake-sync", 256, Kind::UserPart),
    case("scale-wake-4096", "aiopoll", 4096, Kind::UserPart),
    case("scale-wake-4096", "maitake-sync", 4096, Kind::UserPart),
    case("scale-cancel-1", "aiopoll", 1, Kind::UserPart),
    case("scale-cancel-1", "maitake-sync", 1, Kind::UserPart),
    case("scale-cancel-16", "aiopoll", 1, Kind::UserPart),
    case("scale-cancel-16", "maitake-sync", 1, Kind::UserPart),
    case("scale-cancel-256", "aiopoll", 1, Kind::UserPart),
    case("scale-cancel-256", "maitake-sync", 1, Kind::UserPart),
    case("scale-cancel-4096", "aiopoll", 1, Kind::UserPart),
    case("scale-cancel-4096", "maitake-sync", 1, Kind::UserPart),
];

/// The numbers of requests pending on one wait queue in the scale cases.
pub const SCALE: [usize; 4] = [1, 16, 256, 4096];

impl Case {
    /// Sets the case up and hands its iteration to `runner`.
    pub fn run<R: Runner>(&self, runner: &mut R) -> Result<(), String> {
        match (self.group, self.peer) {
            ("round-trip", "aiopoll") => round_trip_aiopoll(runner),
            ("round-trip", "maitake-sync") => round_trip_maitake(runner),
            ("round-trip", "embassy-sync") => round_trip_embassy(runner),
            ("round-trip", "event-listener") => round_trip_event_listener(runner),
            ("round-trip", "floor") => floor(runner),
            ("awaited-round-trip", "aiopoll") => awaited_round_trip_aiopoll(runner),
            ("awaited-round-trip", "maitake-sync") => round_trip_maitake(runner),
            ("awaited-round-trip", "embassy-sync") => round_trip_embassy(runner),
            ("awaited-cancel", "aiopoll") => awaited_cancel_aiopoll(runner),
            ("awaited-cancel", "maitake-sync") => cancel_maitake(runner),
            ("cancel", "aiopoll") => cancel_aiopoll(runner),
            ("cancel", "maitake-sync") => cancel_maitake(runner),
            ("cancel", "event-listener") => cancel_event_listener(runner),
            ("fan-out", "aiopoll") => fan_out_aiopoll(runner),
            ("fan-out", "maitake-sync") => fan_out_maitake(runner),
            ("fan-out", "event-listener") => fan_out_event_listener(runner),
            (group @ ("ping-pong" | "ping-pong-one-cpu"), peer) => {
                let placement = Placement::of_group(group);
                match peer {
                    "aiopoll-std" => threads::ping_pong_aiopoll(runner, placement),
                    "condvar" => threads::ping_pong_condvar(runner, placement),
                    #[cfg(target_os = "linux")]
                    "linux-aio" => threads::ping_pong_aio(runner, placement),
                    _ => Err(format!("{group}/{peer} is not built on this platform")),
                }
            }
            ("contention", "aiopoll-std") => threads::contention_aiopoll(runner),
            ("contention", "maitake-sync") => threads::contention_maitake(runner),
            (group @ ("tokio-round-trip" | "tokio-round-trip-one-cpu"), peer) => {
                let placement = Placement::of_group(group);
                match peer {
                    "aiopoll-std" => threads::tokio_round_trip_aiopoll(runner, placement),
                    "aiopoll-std-counter" => threads::tokio_round_trip_counter(runner, placement),
                    "tokio-notify" => threads::tokio_round_trip_notify(runner, placement),
                    _ => Err(format!("{group}/{peer} is not built on this platform")),
                }
            }
            #[cfg(target_os = "linux")]
            ("contention", "linux-aio") => threads::contention_aio(runner),
            #[cfg(target_os = "linux")]
            ("round-trip", "linux-aio") => kernel::round_trip_aio(runner),
            #[cfg(target_os = "linux")]
            ("round-trip", "io-uring") => kernel::round_trip_uring(runner),
            #[cfg(target_os = "linux")]
            ("cancel", "linux-aio") => kernel::cancel_aio(runner),
            #[cfg(target_os = "linux")]
            ("cancel", "io-uring") => kernel::cancel_uring(runner),
            #[cfg(target_os = "linux")]
            ("fan-out", "linux-aio") => kernel::fan_out_aio(runner),
            #[cfg(target_os = "linux")]
            ("fan-out", "io-uring") => kernel::fan_out_uring(runner),
            (group, peer) if group.starts_with("scale-") => scale::run(group, peer, runner),
            (group, peer) => Err(format!("{group}/{peer} is not built on this platform")),
        }
    }

    /// What a reader of the table should know about how this peer is set
    /// up (empty when nothing).
    pub fn note(&self) -> &'static str {
        match (self.group, self.peer) {
            ("round-trip", "embassy-sync") => {
                "NoopRawMutex: single-thread flavour, no atomics (the compiler sees a Cell)"
            }
            ("round-trip", "floor") => "spin lock/unlock + one CAS + heapless spsc push/pop",
            ("round-trip" | "cancel" | "fan-out", "aiopoll") => {
                "Context<N> with spin locks, a flag source, keyed wake"
            }
            ("awaited-round-trip", "aiopoll") => {
                "Context::request future: poll (submit), keyed wake, poll (ready); spin locks"
            }
            ("awaited-cancel", "aiopoll") => "Context::request future: poll (submit), drop",
            ("awaited-round-trip", "embassy-sync") => {
                "NoopRawMutex Signal: single-thread flavour, no atomics"
            }
            ("contention", "maitake-sync") => "wait, poll once, drop on the measured thread",
            ("contention", "linux-aio") => {
                "one shared aio context; wakers write+read eventfds; io_submit+io_cancel+io_getevents"
            }
            (group, "aiopoll") if group.starts_with("scale-wake-") => {
                "one keyed wake of every request pending on one queue (each completes inline); per request woken"
            }
            (group, "maitake-sync") if group.starts_with("scale-wake-") => {
                "WaitQueue::wake_all of every waiter (each polled once before); per waiter woken"
            }
            (group, "aiopoll") if group.starts_with("scale-cancel-") => {
                "cancel of one request among that many pending on one queue"
            }
            (group, "maitake-sync") if group.starts_with("scale-cancel-") => {
                "drop of one waiter among that many on one WaitQueue"
            }
            (_, "maitake-sync") => "WaitQueue with its default spin mutex; cancel = drop",
            (_, "event-listener") => "listen() (boxed listener); cancel = drop",
            ("cancel", "linux-aio") => "io_submit + io_cancel (EINPROGRESS) + io_getevents",
            ("cancel", "io-uring") => "POLL_ADD, then POLL_REMOVE, wait for both",
            ("ping-pong", "aiopoll-std") => {
                "StdContext + EventCounter per side, blocking get_events_into, the threads pinned to CPUs 0 and 1; per round trip"
            }
            ("ping-pong-one-cpu", "aiopoll-std") => {
                "the same with both threads pinned to CPU 0; per round trip"
            }
            ("ping-pong" | "ping-pong-one-cpu", _) => "per round trip (two cross-thread wakeups)",
            ("contention", "aiopoll-std") => {
                "one shared StdContext; submit+cancel+get_events on the measured thread"
            }
            ("tokio-round-trip", "aiopoll-std") => {
                "StdContext::request on a flag source, awaited in a current-thread runtime per thread, the threads pinned to CPUs 0 and 1; per round trip"
            }
            ("tokio-round-trip" | "tokio-round-trip-one-cpu", "aiopoll-std-counter") => {
                "the same on EventCounters (write and read, each under the counter's wait-queue lock); per round trip"
            }
            ("tokio-round-trip" | "tokio-round-trip-one-cpu", "tokio-notify") => {
                "tokio::sync::Notify per direction, same runtimes and CPUs; per round trip"
            }
            ("tokio-round-trip-one-cpu", "aiopoll-std") => {
                "the same with both threads pinned to CPU 0 (each wakeup a context switch); per round trip"
            }
            _ => "",
        }
    }

    /// Whether the case can run here (the kernel peers may be refused by the
    /// kernel or a sandbox), and if not, why.
    pub fn available(&self) -> Result<(), String> {
        self.run(&mut Probe)
    }
}

/// A flag raised by "an interrupt handler": the smallest honest source. Its
/// `poll` registers, then reads the flag, as the contract requires.
pub(crate) struct Flag {
    raised: AtomicBool,
    queue: WaitQueue,
}

impl Flag {
    pub(crate) fn new() -> Self {
        Flag {
            raised: AtomicBool::new(false),
            queue: WaitQueue::new(),
        }
    }

    /// Raises the flag and wakes its waiters with the key `IN`.
    pub(crate) fn raise(&self) -> usize {
        self.raised.store(true, Ordering::Release);
        self.queue.wake(Events::IN)
    }

    /// How many requests wait on the flag's queue.
    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Lowers the flag (the consumer took what it signalled).
    pub(crate) fn lower(&self) {
        self.raised.store(false, Ordering::Relaxed);
    }
}

impl Source for Flag {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, aiopoll::SpinLock>) -> Events {
        table.wait(&self.queue);
        if self.raised.load(Ordering::Acquire) {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

fn round_trip_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = pin!(aiopoll::Context::<'_, 4>::new());
    let context = context.into_ref();
    let mut out = [Completion::EMPTY; 1];
    runner.run(|| {
        let (flag, context) = black_box((&flag, context));
        let handle = context.submit(flag, Events::IN, 1);
        assert!(handle.is_ok());
        flag.raise();
        assert_eq!(context.reap(&mut out), 1);
        flag.lower();
        out[0].outcome
    });
    Ok(())
}

fn cancel_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = pin!(aiopoll::Context::<'_, 4>::new());
    let context = context.into_ref();
    let mut out = [Completion::EMPTY; 1];
    runner.run(|| {
        let (flag, context) = black_box((&flag, context));
        let handle = context.submit(flag, Events::IN, 1).map_err(|_| ());
        let cancelled = handle.and_then(|handle| context.cancel(handle).map_err(|_| ()));
        assert!(cancelled.is_ok());
        assert_eq!(context.reap(&mut out), 1);
        assert_eq!(out[0].outcome, Outcome::Cancelled);
    });
    Ok(())
}

fn fan_out_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    // Too big for comfort on the stack of criterion's thread: on the heap.
    let context = Box::pin(aiopoll::Context::<'_, FAN_OUT>::new());
    let context = context.as_ref();
    let mut out = vec![Completion::EMPTY; FAN_OUT];
    runner.run(|| {
        let (flag, context) = black_box((&flag, context));
        for user_data in 0..FAN_OUT as u64 {
            assert!(context.submit(flag, Events::IN, user_data).is_ok());
        }
        assert_eq!(flag.raise(), FAN_OUT);
        assert_eq!(context.reap(&mut out), FAN_OUT);
        flag.lower();
    });
    Ok(())
}

fn awaited_round_trip_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = pin!(aiopoll::Context::<'_, 4>::new());
    let context = context.into_ref();
    runner.run(|| {
        let (flag, context) = black_box((&flag, context));
        let mut request = pin!(context.request(flag, Events::IN));
        assert!(poll_once(request.as_mut()).is_pending());
        flag.raise();
        let outcome = poll_once(request.as_mut());
        assert!(outcome.is_ready());
        flag.lower();
        outcome
    });
    Ok(())
}

fn awaited_cancel_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = pin!(aiopoll::Context::<'_, 4>::new());
    let context = context.into_ref();
    runner.run(|| {
        let (flag, context) = black_box((&flag, context));
        let mut request = pin!(context.request(flag, Events::IN));
        // Submitted; dropping it at the end of the closure cancels it.
        assert!(poll_once(request.as_mut()).is_pending());
    });
    Ok(())
}

/// Polls `future` once with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(Waker::noop()))
}

fn round_trip_maitake<R: Runner>(runner: &mut R) -> Result<(), String> {
    let queue = maitake_sync::WaitQueue::new();
    runner.run(|| {
        let queue = black_box(&queue);
        let mut wait = pin!(queue.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        queue.wake();
        assert!(poll_once(wait.as_mut()).is_ready());
    });
    Ok(())
}

fn cancel_maitake<R: Runner>(runner: &mut R) -> Result<(), String> {
    let queue = maitake_sync::WaitQueue::new();
    runner.run(|| {
        let queue = black_box(&queue);
        let mut wait = pin!(queue.wait());
        // Registered; dropping it at the end of the closure cancels it.
        assert!(poll_once(wait.as_mut()).is_pending());
    });
    Ok(())
}

fn fan_out_maitake<R: Runner>(runner: &mut R) -> Result<(), String> {
    let queue = maitake_sync::WaitQueue::new();
    let mut waits = Vec::with_capacity(FAN_OUT);
    runner.run(|| {
        let queue = black_box(&queue);
        waits.extend((0..FAN_OUT).map(|_| queue.wait()));
        for wait in waits.iter_mut() {
            // SAFETY: the vector has room for all FAN_OUT futures, so it does
            // not reallocate while they are pinned, and they are dropped in
            // place by `clear` below, never moved.
            let wait = unsafe { Pin::new_unchecked(wait) };
            assert!(poll_once(wait).is_pending());
        }
        queue.wake_all();
        for wait in waits.iter_mut() {
            // SAFETY: as above.
            let wait = unsafe { Pin::new_unchecked(wait) };
            assert!(poll_once(wait).is_ready());
        }
        waits.clear();
    });
    Ok(())
}

fn round_trip_embassy<R: Runner>(runner: &mut R) -> Result<(), String> {
    // The cheapest flavour: a single-thread mutex (no atomics at all).
    let signal =
        embassy_sync::signal::Signal::<embassy_sync::blocking_mutex::raw::NoopRawMutex, ()>::new();
    runner.run(|| {
        let signal = black_box(&signal);
        let mut wait = pin!(signal.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
        signal.signal(());
        assert!(poll_once(wait.as_mut()).is_ready());
    });
    Ok(())
}

fn round_trip_event_listener<R: Runner>(runner: &mut R) -> Result<(), String> {
    let event = event_listener::Event::new();
    runner.run(|| {
        let event = black_box(&event);
        let mut listener = event.listen();
        assert!(poll_once(Pin::new(&mut listener)).is_pending());
        event.notify(1);
        assert!(poll_once(Pin::new(&mut listener)).is_ready());
    });
    Ok(())
}

fn cancel_event_listener<R: Runner>(runner: &mut R) -> Result<(), String> {
    let event = event_listener::Event::new();
    runner.run(|| {
        let event = black_box(&event);
        let mut listener = event.listen();
        // Registered; dropping it cancels it.
        assert!(poll_once(Pin::new(&mut listener)).is_pending());
    });
    Ok(())
}

fn fan_out_event_listener<R: Runner>(runner: &mut R) -> Result<(), String> {
    let event = event_listener::Event::new();
    let mut listeners = Vec::with_capacity(FAN_OUT);
    runner.run(|| {
        let event = black_box(&event);
        listeners.extend((0..FAN_OUT).map(|_| event.listen()));
        for listener in listeners.iter_mut() {
            assert!(poll_once(Pin::new(listener)).is_pending());
        }
        assert_eq!(event.notify(usize::MAX), FAN_OUT);
        for listener in listeners.iter_mut() {
            assert!(poll_once(Pin::new(listener)).is_ready());
        }
        listeners.clear();
    });
    Ok(())
}

/// The fewest operations any such design needs: a lock and unlock, one
/// compare-and-swap, a ring push and pop.
fn floor<R: Runner>(runner: &mut R) -> Result<(), String> {
    let lock = aiopoll::SpinLock::new(());
    let word = AtomicU32::new(0);
    let mut ring = heapless::spsc::Queue::<u16, 8>::new();
    let mut expected = 0;
    runner.run(|| {
        let (lock, word, ring) = black_box((&lock, &word, &mut ring));
        drop(lock.lock());
        let swapped =
            word.compare_exchange(expected, expected ^ 1, Ordering::AcqRel, Ordering::Acquire);
        assert!(swapped.is_ok());
        expected ^= 1;
        assert!(ring.enqueue(1).is_ok());
        ring.dequeue()
    });
    Ok(())
}

#[cfg(target_os = "linux")]
mod kernel {
    use super::{Runner, FAN_OUT};
    use crate::linux_aio::{Aio, IoEvent, Iocb};
    use crate::uring::Uring;

    pub fn round_trip_aio<R: Runner>(runner: &mut R) -> Result<(), String> {
        let aio = Aio::new(4)?;
        let mut iocb = Iocb::poll(aio.eventfd, libc::POLLIN, 1);
        let mut events = [IoEvent::default(); 1];
        let mut failure = None;
        runner.run(|| {
            let result = (|| {
                aio.submit(&mut [&mut iocb])?;
                aio.signal();
                let got = aio.get_events(1, &mut events)?;
                aio.drain();
                Ok::<_, String>(got)
            })();
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }

    pub fn cancel_aio<R: Runner>(runner: &mut R) -> Result<(), String> {
        let aio = Aio::new(4)?;
        let mut iocb = Iocb::poll(aio.eventfd, libc::POLLIN, 1);
        let mut events = [IoEvent::default(); 1];
        let mut failure = None;
        runner.run(|| {
            let result = (|| {
                aio.submit(&mut [&mut iocb])?;
                aio.cancel(&mut iocb)?;
                aio.get_events(1, &mut events)
            })();
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }

    pub fn fan_out_aio<R: Runner>(runner: &mut R) -> Result<(), String> {
        let aio = Aio::new(FAN_OUT as u32)?;
        let mut iocbs: Vec<Iocb> = (0..FAN_OUT as u64)
            .map(|data| Iocb::poll(aio.eventfd, libc::POLLIN, data))
            .collect();
        let mut events = vec![IoEvent::default(); FAN_OUT];
        let mut failure = None;
        runner.run(|| {
            let result = (|| {
                let mut pointers: Vec<&mut Iocb> = iocbs.iter_mut().collect();
                aio.submit(&mut pointers)?;
                aio.signal();
                let mut got = 0;
                while got < FAN_OUT {
                    got += aio.get_events(FAN_OUT - got, &mut events[got..])?;
                }
                aio.drain();
                Ok::<_, String>(got)
            })();
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }

    pub fn round_trip_uring<R: Runner>(runner: &mut R) -> Result<(), String> {
        let mut uring = Uring::new(8)?;
        let mut failure = None;
        runner.run(|| {
            if let Err(error) = uring.round_trip() {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }

    pub fn cancel_uring<R: Runner>(runner: &mut R) -> Result<(), String> {
        let mut uring = Uring::new(8)?;
        let mut failure = None;
        runner.run(|| {
            if let Err(error) = uring.cancel() {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }

    pub fn fan_out_uring<R: Runner>(runner: &mut R) -> Result<(), String> {
        let mut uring = Uring::new(FAN_OUT as u32)?;
        let mut failure = None;
        runner.run(|| {
            if let Err(error) = uring.fan_out(FAN_OUT) {
                failure.get_or_insert(error);
            }
        });
        failure.map_or(Ok(()), Err)
    }
}

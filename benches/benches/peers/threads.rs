//! The cross-thread cases: ping-pong between two threads that block,
//! contention of two waking and two submitting/cancelling threads, and a
//! round trip between tasks of two tokio runtimes on two threads. The
//! machines have 2 cores: the contention threads share them.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::thread;

use aiopoll::{Outcome, PollTable};
use aiopoll_std::{AsSource, Completion, EventCounter, Events, StdContext, WaitQueue};

use crate::cases::Runner;

/// One side of the aiopoll ping-pong: a context, and the counter the other
/// side writes to wake it.
struct Side {
    context: StdContext<4>,
    counter: EventCounter,
}

impl Side {
    fn new() -> Self {
        Side {
            context: StdContext::new(),
            counter: EventCounter::new(),
        }
    }

    /// Submits a request for the counter's `IN`, blocks in `get_events`
    /// until it completes, and takes the count.
    fn wait(&self, buffer: &mut [Completion; 1]) {
        assert!(self.context.submit(&self.counter, Events::IN, 0).is_ok());
        assert_eq!(self.context.get_events_into(1, buffer, None), Ok(1));
        assert_eq!(self.counter.read(), Ok(1));
    }
}

/// One iteration: wake the partner, block until it wakes us back.
pub fn ping_pong_aiopoll<R: Runner>(runner: &mut R, placement: Placement) -> Result<(), String> {
    let [our_cpu, their_cpu] = placement.cpus()?;
    let _pinned = Pinned::to(our_cpu)?;
    let (near, far) = (Side::new(), Side::new());
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            let _pinned = Pinned::to(their_cpu);
            let mut buffer = [Completion::EMPTY; 1];
            loop {
                far.wait(&mut buffer);
                if stop.load(Ordering::Acquire) {
                    break;
                }
                assert!(near.counter.write(1).is_ok());
            }
        });
        let mut buffer = [Completion::EMPTY; 1];
        runner.run(|| {
            assert!(near.context.submit(&near.counter, Events::IN, 0).is_ok());
            assert!(far.counter.write(1).is_ok());
            assert_eq!(near.context.get_events_into(1, &mut buffer, None), Ok(1));
            assert_eq!(near.counter.read(), Ok(1));
        });
        stop.store(true, Ordering::Release);
        assert!(far.counter.write(1).is_ok());
    });
    Ok(())
}

/// A one-way gate: a flag under a mutex and a condition variable.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    condvar: Condvar,
}

impl Gate {
    fn open(&self) {
        *self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = true;
        self.condvar.notify_one();
    }

    fn pass(&self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while !*open {
            open = self
                .condvar
                .wait(open)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *open = false;
    }
}

/// The same ping-pong with a `Mutex<bool>` + `Condvar` pair per direction.
pub fn ping_pong_condvar<R: Runner>(runner: &mut R, placement: Placement) -> Result<(), String> {
    let [our_cpu, their_cpu] = placement.cpus()?;
    let _pinned = Pinned::to(our_cpu)?;
    let (near, far) = (Gate::default(), Gate::default());
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            let _pinned = Pinned::to(their_cpu);
            loop {
                far.pass();
                if stop.load(Ordering::Acquire) {
                    break;
                }
                near.open();
            }
        });
        runner.run(|| {
            far.open();
            near.pass();
        });
        stop.store(true, Ordering::Release);
        far.open();
    });
    Ok(())
}

/// The same ping-pong with Linux aio: a poll request on an eventfd and a
/// blocking `io_getevents` per side.
#[cfg(target_os = "linux")]
pub fn ping_pong_aio<R: Runner>(runner: &mut R, placement: Placement) -> Result<(), String> {
    use crate::linux_aio::{Aio, IoEvent, Iocb};
    let [our_cpu, their_cpu] = placement.cpus()?;
    let _pinned = Pinned::to(our_cpu)?;
    let (near, far) = (Aio::new(4)?, Aio::new(4)?);
    let stop = AtomicBool::new(false);
    let wait = |side: &Aio| -> Result<(), String> {
        let mut iocb = Iocb::poll(side.eventfd, libc::POLLIN, 0);
        side.submit(&mut [&mut iocb])?;
        let mut events = [IoEvent::default(); 1];
        side.get_events(1, &mut events)?;
        side.drain();
        Ok(())
    };
    thread::scope(|scope| {
        let partner = scope.spawn(|| -> Result<(), String> {
            let _pinned = Pinned::to(their_cpu);
            loop {
                wait(&far)?;
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                near.signal();
            }
        });
        let mut failure = None;
        runner.run(|| {
            let mut iocb = Iocb::poll(near.eventfd, libc::POLLIN, 0);
            let result = near.submit(&mut [&mut iocb]).and_then(|()| {
                far.signal();
                let mut events = [IoEvent::default(); 1];
                near.get_events(1, &mut events)
            });
            near.drain();
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        });
        stop.store(true, Ordering::Release);
        far.signal();
        let partner = partner
            .join()
            .unwrap_or_else(|_| Err("the partner thread panicked".into()));
        failure.map_or(partner, Err)
    })
}

/// A source that is never ready by itself: only keyed wakeups complete its
/// requests.
struct Pulse {
    queue: WaitQueue,
}

impl aiopoll::Source<aiopoll_std::Lock> for Pulse {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, aiopoll_std::Lock>) -> Events {
        table.wait(&self.queue);
        Events::empty()
    }
}

/// Runs `waker` on two threads and `submitter` on one more, until the
/// runner is done with the measured submitter on this thread.
fn contended<R: Runner, T>(
    runner: &mut R,
    waker: impl Fn() + Sync,
    submitter: impl Fn(usize) -> T + Sync,
) {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    waker();
                }
            });
        }
        scope.spawn(|| {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                submitter(round);
                round += 1;
            }
        });
        let mut round = 0;
        runner.run(|| {
            round += 2;
            submitter(round)
        });
        stop.store(true, Ordering::Relaxed);
    });
}

/// Two threads wake two shared sources; two submit a request on one of them,
/// cancel it (a wakeup may win), and reap its one completion, on one shared
/// context.
pub fn contention_aiopoll<R: Runner>(runner: &mut R) -> Result<(), String> {
    let sources: [Arc<Pulse>; 2] = [(); 2].map(|()| {
        Arc::new(Pulse {
            queue: WaitQueue::new(),
        })
    });
    let context = StdContext::<8>::new();
    contended(
        runner,
        || {
            for source in &sources {
                source.queue.wake(Events::IN);
            }
        },
        |round| {
            match context.submit(&sources[round % 2], Events::IN, 0) {
                // A wakeup may have won: then cancel finds nothing.
                Ok(handle) => drop(context.cancel(handle)),
                Err(error) => panic!("submit: {error}"),
            }
            let mut buffer = [Completion::EMPTY; 1];
            assert_eq!(context.get_events_into(1, &mut buffer, None), Ok(1));
        },
    );
    Ok(())
}

/// The same with maitake-sync: two threads `wake_all` two shared queues; two
/// create a waiter on one, register it, and drop it (its cancel).
pub fn contention_maitake<R: Runner>(runner: &mut R) -> Result<(), String> {
    let queues = [(); 2].map(|()| maitake_sync::WaitQueue::new());
    contended(
        runner,
        || {
            for queue in &queues {
                queue.wake_all();
            }
        },
        |round| {
            let mut wait = std::pin::pin!(queues[round % 2].wait());
            crate::cases::poll_once(wait.as_mut()).is_ready()
        },
    );
    Ok(())
}

/// The same with Linux aio: two threads make two shared eventfds readable
/// and unreadable again (a write, a read); two submit a poll request on one
/// of them to a shared aio context, `io_cancel` it (a wakeup may win), and
/// reap one completion with a blocking `io_getevents`.
#[cfg(target_os = "linux")]
pub fn contention_aio<R: Runner>(runner: &mut R) -> Result<(), String> {
    use crate::linux_aio::{drain, signal, Aio, IoEvent, Iocb};
    let aio = Aio::new(8)?;
    let second = Aio::new(1)?;
    let eventfds = [aio.eventfd, second.eventfd];
    let failure = Mutex::new(None);
    contended(
        runner,
        || {
            for eventfd in eventfds {
                signal(eventfd);
                drain(eventfd);
            }
        },
        |round| {
            let mut iocb = Iocb::poll(eventfds[round % 2], libc::POLLIN, 0);
            let result = aio.submit(&mut [&mut iocb]).and_then(|()| {
                // NotFound-like answers (EINVAL) mean a wakeup completed it.
                let _cancelled_or_woken = aio.cancel(&mut iocb);
                let mut events = [IoEvent::default(); 1];
                aio.get_events(1, &mut events)
            });
            if let Err(error) = result {
                let mut failure = failure.lock().unwrap_or_else(|poison| poison.into_inner());
                failure.get_or_insert(error);
            }
        },
    );
    let failure = failure
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    failure.map_or(Ok(()), Err)
}

/// A current-thread tokio runtime without I/O or timer drivers: a task
/// that waits parks its thread, and a wake from another thread unparks it.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| format!("tokio runtime: {error}"))
}

/// Polls `wait` once (so that it waits before the other side is told),
/// calls `tell`, then awaits `wait`.
async fn wait_then_tell<F: Future>(wait: F, tell: impl FnOnce()) -> F::Output {
    let mut wait = pin!(wait);
    let first = poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
    tell();
    match first {
        Poll::Ready(output) => output,
        Poll::Pending => wait.await,
    }
}

/// A signal for the tokio round trip: raised by one side, taken by the
/// other; a keyed wakeup, no lock but the wait queue's (the smallest honest
/// source, like the core cases' flag).
struct Signal {
    raised: AtomicBool,
    queue: WaitQueue,
}

impl Signal {
    fn new() -> Arc<Signal> {
        Arc::new(Signal {
            raised: AtomicBool::new(false),
            queue: WaitQueue::new(),
        })
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.queue.wake(Events::IN);
    }

    fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }
}

impl aiopoll::Source<aiopoll_std::Lock> for Signal {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, aiopoll_std::Lock>) -> Events {
        table.wait(&self.queue);
        if self.raised.load(Ordering::Acquire) {
            Events::IN
        } else {
            Events::empty()
        }
    }
}

/// Where the two threads of a cross-thread round trip run. Left to the
/// scheduler, the same program's threads sometimes share a CPU (a wakeup
/// is then a context switch, about 4 us a round trip on these VMs) and
/// sometimes not (a wakeup then waits for an idle CPU to come out of its
/// halt, about 35 us): one run compared a peer placed one way with aiopoll
/// placed the other (4.5 against 33.5 us). Each side is pinned, so peers
/// are compared placed alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Each thread on a CPU of its own (the first two the process may use).
    TwoCpus,
    /// Both threads on the first CPU the process may use.
    OneCpu,
}

impl Placement {
    /// The placement a case group names: its `-one-cpu` twin, or a CPU
    /// each.
    pub fn of_group(group: &str) -> Placement {
        if group.ends_with("-one-cpu") {
            Placement::OneCpu
        } else {
            Placement::TwoCpus
        }
    }

    /// The CPU of the measured thread and of its partner.
    fn cpus(self) -> Result<[usize; 2], String> {
        let allowed = allowed_cpus()?;
        match (self, allowed.as_slice()) {
            (Placement::OneCpu, &[first, ..]) => Ok([first, first]),
            (Placement::TwoCpus, &[first, second, ..]) => Ok([first, second]),
            _ => Err(format!(
                "{self:?} needs more CPUs than the {} allowed",
                allowed.len()
            )),
        }
    }
}

/// The CPUs the calling thread may run on, lowest first.
fn allowed_cpus() -> Result<Vec<usize>, String> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is plain data (all zeros is the empty set);
        // the call fills the set of the size it is given with the calling
        // thread's (pid 0) affinity.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
                return Err(format!(
                    "sched_getaffinity: {}",
                    std::io::Error::last_os_error()
                ));
            }
            set
        };
        Ok((0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below the set's size.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect())
    }
    #[cfg(not(target_os = "linux"))]
    Err("placing threads on CPUs is only done on Linux".to_string())
}

/// The calling thread pinned to one CPU until this is dropped (Linux;
/// elsewhere, and where the CPU cannot be had, the thread stays where the
/// scheduler puts it and this reports it).
struct Pinned {
    #[cfg(target_os = "linux")]
    previous: Option<libc::cpu_set_t>,
}

impl Pinned {
    fn to(cpu: usize) -> Result<Pinned, String> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `cpu_set_t` is plain data (all zeros is the empty
            // set); the calls get and set the calling thread's (pid 0)
            // affinity from sets of the size they are given, and touch
            // nothing else.
            unsafe {
                let mut previous: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, std::mem::size_of_val(&previous), &mut previous) != 0
                {
                    return Err(format!(
                        "sched_getaffinity: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                    return Err(format!(
                        "pinning a thread to CPU {cpu}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(Pinned {
                    previous: Some(previous),
                })
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = cpu;
            Err("pinning threads is only done on Linux".to_string())
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous.take() {
            // SAFETY: as in `to`: the calling thread's affinity, restored
            // from the set it had.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&previous), &previous) };
        }
    }
}

/// A tokio cross-thread round trip with aiopoll-std: on each side a task
/// in a current-thread runtime of its own thread awaits a request on its
/// signal (`StdContext::request`, one shared context); an iteration arms
/// the near request, raises the far signal, and awaits the partner's
/// raise back.
pub fn tokio_round_trip_aiopoll<R: Runner>(
    runner: &mut R,
    placement: Placement,
) -> Result<(), String> {
    let (near, far) = (Signal::new(), Signal::new());
    tokio_round_trip(
        runner,
        placement,
        [&near, &far],
        |signal| signal.raise(),
        |signal| signal.take(),
    )
}

/// The same with `EventCounter`s: a write changes the count and sends its
/// key under the wait queue's lock (as Linux does under the eventfd's),
/// and the woken task runs once the write has let go of every lock.
pub fn tokio_round_trip_counter<R: Runner>(
    runner: &mut R,
    placement: Placement,
) -> Result<(), String> {
    let (near, far) = (EventCounter::new(), EventCounter::new());
    tokio_round_trip(
        runner,
        placement,
        [&near, &far],
        |counter| assert!(counter.write(1).is_ok()),
        |counter| counter.read() == Ok(1),
    )
}

fn tokio_round_trip<R: Runner, S: AsSource + Sync>(
    runner: &mut R,
    placement: Placement,
    [near, far]: [&S; 2],
    raise: impl Fn(&S) + Sync,
    take: impl Fn(&S) -> bool + Sync,
) -> Result<(), String> {
    let context = StdContext::<4>::new();
    let stop = AtomicBool::new(false);
    let (ours, theirs) = (runtime()?, runtime()?);
    let [our_cpu, their_cpu] = placement.cpus()?;
    let _pinned = Pinned::to(our_cpu)?;
    thread::scope(|scope| {
        scope.spawn(|| {
            let _pinned = Pinned::to(their_cpu);
            theirs.block_on(async {
                loop {
                    let outcome = context.request(far, Events::IN).await;
                    assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
                    assert!(take(far));
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    raise(near);
                }
            });
        });
        runner.run(|| {
            let request = context.request(near, Events::IN);
            let outcome = ours.block_on(wait_then_tell(request, || raise(far)));
            assert_eq!(outcome, Ok(Outcome::Ready(Events::IN)));
            assert!(take(near));
        });
        stop.store(true, Ordering::Release);
        raise(far);
    });
    Ok(())
}

/// The same round trip with `tokio::sync::Notify`, one per direction.
pub fn tokio_round_trip_notify<R: Runner>(
    runner: &mut R,
    placement: Placement,
) -> Result<(), String> {
    let (near, far) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
    let stop = AtomicBool::new(false);
    let (ours, theirs) = (runtime()?, runtime()?);
    let [our_cpu, their_cpu] = placement.cpus()?;
    let _pinned = Pinned::to(our_cpu)?;
    thread::scope(|scope| {
        scope.spawn(|| {
            let _pinned = Pinned::to(their_cpu);
            theirs.block_on(async {
                loop {
                    far.notified().await;
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    near.notify_one();
                }
            });
        });
        runner.run(|| {
            ours.block_on(wait_then_tell(near.notified(), || far.notify_one()));
        });
        stop.store(true, Ordering::Release);
        far.notify_one();
    });
    Ok(())
}

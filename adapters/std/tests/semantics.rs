//! The std adapter's behaviour without the OS: sources, blocking reaping,
//! teardown. These run under Miri too.

use std::sync::Arc;
use std::time::Duration;

/// User data and outcome of each completion (the handle and `more` have
/// tests of their own).
fn pairs(completions: &[Completion]) -> Vec<(u64, Outcome)> {
    completions
        .iter()
        .map(|completion| (completion.user_data, completion.outcome))
        .collect()
}

use aiopoll_std::{
    pipe, pipe_with_capacity, CancelError, Completion, EventCounter, Events, GetEventsError,
    Outcome, SourceError, StdContext, SubmitError, Timer, PIPE_BUF,
};

const NOW: Option<Duration> = Some(Duration::ZERO);

fn reap_all<const N: usize>(context: &StdContext<N>) -> Vec<Completion> {
    context.get_events(0, N, NOW).unwrap()
}

#[test]
fn counter_has_eventfd_readiness_and_keys() {
    let context = StdContext::<8>::new();
    let counter = EventCounter::new();
    assert_eq!(counter.readiness(), Events::OUT);
    // IN waits; RDNORM alone never completes (eventfd never reports it).
    context.submit(&counter, Events::IN, 1).unwrap();
    context.submit(&counter, Events::RDNORM, 2).unwrap();
    assert!(reap_all(&context).is_empty());
    counter.write(3).unwrap();
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::IN))]
    );
    assert_eq!(counter.read(), Ok(3));
    assert_eq!(counter.read(), Err(SourceError::WouldBlock));
    assert_eq!(counter.write(u64::MAX), Err(SourceError::InvalidValue));
    counter.write(u64::MAX - 1).unwrap();
    assert_eq!(counter.readiness(), Events::IN);
    assert_eq!(counter.write(1), Err(SourceError::WouldBlock));
    // OUT waits while full, a read wakes it with key OUT.
    context.submit(&counter, Events::OUT, 3).unwrap();
    assert!(reap_all(&context).is_empty());
    assert_eq!(counter.read(), Ok(u64::MAX - 1));
    assert_eq!(
        pairs(&reap_all(&context)),
        [(3, Outcome::Ready(Events::OUT))]
    );
    drop(counter);
    // The RDNORM request sees its source go.
    assert_eq!(pairs(&reap_all(&context)), [(2, Outcome::SourceGone)]);
}

#[test]
fn pipe_has_pipe7_semantics() {
    let context = StdContext::<8>::new();
    let (reader, writer) = pipe_with_capacity(2 * PIPE_BUF);
    assert_eq!(reader.readiness(), Events::empty());
    assert_eq!(writer.readiness(), Events::OUT | Events::WRNORM);
    assert_eq!(reader.read(&mut [0; 4]), Err(SourceError::WouldBlock));
    context.submit(&reader, Events::RDNORM, 1).unwrap();
    assert_eq!(writer.write(&[7; PIPE_BUF + 10]), Ok(PIPE_BUF + 10));
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::RDNORM))]
    );
    // Small writes are atomic, large ones partial.
    assert_eq!(writer.write(&[1; PIPE_BUF]), Err(SourceError::WouldBlock));
    assert_eq!(writer.write(&[1; PIPE_BUF * 2]), Ok(PIPE_BUF - 10));
    assert_eq!(writer.write(&[1; 1]), Err(SourceError::WouldBlock));
    context.submit(&writer, Events::OUT, 2).unwrap();
    let mut buf = vec![0; 20];
    assert_eq!(reader.read(&mut buf), Ok(20));
    assert_eq!(buf, [7; 20]);
    assert_eq!(
        pairs(&reap_all(&context)),
        [(2, Outcome::Ready(Events::OUT))]
    );
    // Closing the write end: the reader's request re-polls and sees HUP.
    context.submit(&reader, Events::PRI, 3).unwrap();
    drop(writer);
    assert_eq!(
        pairs(&reap_all(&context)),
        [(3, Outcome::Ready(Events::HUP))]
    );
    let mut rest = vec![0; 4 * PIPE_BUF];
    assert_eq!(reader.read(&mut rest), Ok(2 * PIPE_BUF - 20));
    assert_eq!(reader.read(&mut rest), Ok(0), "end of file");
}

#[test]
fn closing_the_read_end_breaks_the_pipe() {
    let context = StdContext::<8>::new();
    let (reader, writer) = pipe_with_capacity(4);
    writer.write(&[1; 4]).unwrap();
    context.submit(&writer, Events::OUT, 1).unwrap();
    context.submit(&reader, Events::PRI, 2).unwrap();
    drop(reader);
    let mut done = reap_all(&context);
    done.sort_by_key(|c| c.user_data);
    assert_eq!(
        pairs(&done),
        [(1, Outcome::Ready(Events::ERR)), (2, Outcome::SourceGone)]
    );
    assert_eq!(writer.write(&[1]), Err(SourceError::BrokenPipe));
    assert_eq!(writer.readiness(), Events::ERR);
}

#[test]
fn get_events_rejects_min_above_max() {
    let context = StdContext::<4>::new();
    assert_eq!(
        context.get_events(3, 2, None),
        Err(GetEventsError::MinAboveMax { min: 3, max: 2 })
    );
    let mut out = [Completion::EMPTY; 1];
    assert_eq!(
        context.get_events_into(2, &mut out, None),
        Err(GetEventsError::MinAboveMax { min: 2, max: 1 })
    );
    assert_eq!(context.get_events(0, 0, None), Ok(vec![]));
}

#[test]
fn get_events_times_out_with_what_it_has() {
    let context = StdContext::<4>::new();
    let counter = EventCounter::with_count(1);
    context.submit(&counter, Events::IN, 9).unwrap();
    let done = context
        .get_events(2, 4, Some(Duration::from_millis(1)))
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        context
            .get_events(1, 4, Some(Duration::from_millis(1)))
            .unwrap(),
        []
    );
}

#[test]
fn get_events_wakes_for_another_threads_completion() {
    let context = StdContext::<4>::new();
    let counter = EventCounter::new();
    let (reader, writer) = pipe();
    context.submit(&counter, Events::IN, 1).unwrap();
    context.submit(&reader, Events::IN, 2).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            counter.write(1).unwrap();
            writer.write(b"x").unwrap();
        });
        let mut done = context.get_events(2, 4, None).unwrap();
        done.sort_by_key(|c| c.user_data);
        assert_eq!(
            pairs(&done),
            [
                (1, Outcome::Ready(Events::IN)),
                (2, Outcome::Ready(Events::IN))
            ]
        );
    });
}

#[test]
fn deferred_completions_reach_a_blocked_reaper() {
    // Closing the write end wakes the reader unkeyed: only deferred work
    // (a re-poll) completes it, and the blocked reaper runs that work.
    let context = StdContext::<4>::new();
    let (reader, writer) = pipe();
    context.submit(&reader, Events::IN, 5).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || drop(writer));
        let done = context.get_events(1, 4, None).unwrap();
        assert_eq!(pairs(&done), [(5, Outcome::Ready(Events::HUP))]);
    });
    assert!(context.stats().completed_by_deferred_work >= 1);
}

#[test]
fn cancel_queues_the_completion_and_handles_go_stale() {
    let context = StdContext::<2>::new();
    let counter = EventCounter::new();
    let handle = context.submit(&counter, Events::IN, 1).unwrap();
    context.submit(&counter, Events::IN, 2).unwrap();
    assert_eq!(
        context.submit(&counter, Events::IN, 3),
        Err(SubmitError::Busy)
    );
    assert!(context.cancel(handle).is_ok());
    assert!(context.cancel(handle).is_err());
    assert_eq!(pairs(&reap_all(&context)), [(1, Outcome::Cancelled)]);
    assert_eq!(context.in_use(), 1);
}

#[test]
fn a_context_keeps_its_sources_alive_and_lets_go_when_dropped() {
    let counter = Arc::new(EventCounter::new());
    let (reader, writer) = pipe();
    {
        let context = StdContext::<4>::new();
        context.submit(&*counter, Events::IN, 1).unwrap();
        context.submit(&reader, Events::IN, 2).unwrap();
        // Dropping the context detaches both requests.
    }
    counter.write(1).unwrap();
    writer.write(b"ok").unwrap();
    assert_eq!(Arc::strong_count(&counter), 1);
    // A source whose owner dropped it still completes the request
    // (SourceGone) and is then released.
    let context = StdContext::<4>::new();
    let gone = EventCounter::new();
    context.submit(&gone, Events::IN, 3).unwrap();
    drop(gone);
    assert_eq!(pairs(&reap_all(&context)), [(3, Outcome::SourceGone)]);
    assert_eq!(context.in_use(), 0);
}

#[test]
fn a_timer_expires_once() {
    let context = StdContext::<4>::new();
    let timer = Timer::new();
    timer.arm(Duration::from_millis(1)).unwrap();
    context.submit(&timer, Events::IN, 1).unwrap();
    let done = context.get_events(1, 4, None).unwrap();
    assert_eq!(pairs(&done), [(1, Outcome::Ready(Events::IN))]);
    assert!(timer.is_expired());
    assert_eq!(timer.read(), Ok(1));
    assert_eq!(timer.read(), Err(SourceError::WouldBlock));
    // Re-armed far away, then disarmed: nothing fires; dropping it ends
    // the request.
    timer.arm(Duration::from_secs(3600)).unwrap();
    context.submit(&timer, Events::IN, 2).unwrap();
    timer.disarm();
    assert_eq!(timer.readiness(), Events::empty());
    drop(timer);
    assert_eq!(pairs(&reap_all(&context)), [(2, Outcome::SourceGone)]);
}

#[test]
fn a_zero_timer_is_ready_at_once() {
    let context = StdContext::<4>::new();
    let timer = Timer::new();
    timer.arm(Duration::ZERO).unwrap();
    context.submit(&timer, Events::IN, 1).unwrap();
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::IN))]
    );
}

#[test]
fn errors_say_what_to_do() {
    assert!(SourceError::WouldBlock.to_string().contains("retry"));
    let io: std::io::Error = SourceError::BrokenPipe.into();
    assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(GetEventsError::MinAboveMax { min: 2, max: 1 }
        .to_string()
        .contains("min <= max"));
}

#[test]
fn dropping_a_source_releases_a_blocked_reaper() {
    // Teardown leaves no thread blocked: the request completes SourceGone
    // and wakes the thread waiting for it.
    let context = StdContext::<4>::new();
    let counter = EventCounter::new();
    let timer = Timer::new();
    context.submit(&counter, Events::IN, 1).unwrap();
    context.submit(&timer, Events::IN, 2).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || drop((counter, timer)));
        let mut done = context.get_events(2, 4, None).unwrap();
        done.sort_by_key(|c| c.user_data);
        assert_eq!(
            pairs(&done),
            [(1, Outcome::SourceGone), (2, Outcome::SourceGone)]
        );
    });
}

#[test]
fn custom_sources_plug_in_through_arc() {
    use aiopoll_std::aiopoll::{PollTable, Source};
    use aiopoll_std::{Lock, WaitQueue};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A flag another thread raises.
    struct Flag {
        raised: AtomicBool,
        queue: WaitQueue,
    }
    impl Source<Lock> for Flag {
        fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
            table.wait(&self.queue);
            if self.raised.load(Ordering::Acquire) {
                Events::PRI
            } else {
                Events::empty()
            }
        }
    }
    let flag = Arc::new(Flag {
        raised: AtomicBool::new(false),
        queue: WaitQueue::new(),
    });
    let context = StdContext::<2>::new();
    context.submit(&flag, Events::PRI, 1).unwrap();
    flag.raised.store(true, Ordering::Release);
    flag.queue.wake(Events::PRI);
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::PRI))]
    );
    assert_eq!(Arc::strong_count(&flag), 1, "released at reap");
}

#[test]
fn deferred_work_runs_on_the_contexts_thread_without_a_reaper() {
    use aiopoll_std::aiopoll::{PollTable, Source};
    use aiopoll_std::{Lock, WaitQueue};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// A flag whose re-polls report the thread they run on.
    struct Probe {
        raised: AtomicBool,
        queue: WaitQueue,
        repolled_on: parking_lot::Mutex<mpsc::Sender<Option<String>>>,
    }
    impl Source<Lock> for Probe {
        fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
            table.wait(&self.queue);
            if !table.is_registering() {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = self.repolled_on.lock().send(name);
            }
            if self.raised.load(Ordering::Acquire) {
                Events::IN
            } else {
                Events::empty()
            }
        }
    }
    let (sender, repolls) = mpsc::channel();
    let probe = Arc::new(Probe {
        raised: AtomicBool::new(false),
        queue: WaitQueue::new(),
        repolled_on: parking_lot::Mutex::new(sender),
    });
    let context = StdContext::<2>::new();
    context.submit(&probe, Events::IN, 1).unwrap();
    probe.raised.store(true, Ordering::Release);
    // Unkeyed: only a re-poll can complete it, and this thread never reaps
    // before the re-poll has run.
    probe.queue.wake(Events::empty());
    assert_eq!(repolls.recv().unwrap().as_deref(), Some("aiopoll-deferred"));
    // The re-poll found IN: the context's thread completed the request
    // under the context lock, which this reap waits for.
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::IN))]
    );
    let stats = context.stats();
    assert_eq!(stats.completed_by_deferred_work, 1);
    assert_eq!(stats.reaped, 1);
}

#[test]
fn a_cancel_right_after_a_close_finds_the_request_completed() {
    // Issue 10's scenario: closing the write end wakes the reader unkeyed
    // (deferred work re-polls); a cancel before anything reaps must not beat
    // that wakeup. Linux: the request completes HUP, io_cancel says EINVAL.
    let context = StdContext::<4>::new();
    let (reader, writer) = pipe();
    let handle = context.submit(&reader, Events::IN, 1).unwrap();
    drop(writer);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        pairs(&reap_all(&context)),
        [(1, Outcome::Ready(Events::HUP))]
    );
    // The read end's drop closes its queue: SourceGone, and a cancel after
    // it finds nothing either.
    let (reader, _writer) = pipe();
    let handle = context.submit(&reader, Events::IN, 2).unwrap();
    drop(reader);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(pairs(&reap_all(&context)), [(2, Outcome::SourceGone)]);
}

#[test]
fn readiness_that_comes_and_goes_before_a_reap_completes_the_request() {
    // Linux aio completes a request inside the write that makes it ready;
    // reading the data back before anyone reaps changes nothing, and a
    // cancel then finds the request completed.
    let context = StdContext::<4>::new();
    let counter = EventCounter::new();
    let handle = context.submit(&counter, Events::IN, 1).unwrap();
    counter.write(3).unwrap();
    assert_eq!(counter.read(), Ok(3));
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    let (reader, writer) = pipe();
    let handle = context
        .submit(&reader, Events::IN | Events::RDNORM, 2)
        .unwrap();
    writer.write(b"data").unwrap();
    // The writer closes after the data arrived: the request completed at the
    // write, IN|RDNORM, not IN|RDNORM|HUP.
    drop(writer);
    assert_eq!(reader.read(&mut [0; 8]), Ok(4));
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        pairs(&reap_all(&context)),
        [
            (1, Outcome::Ready(Events::IN)),
            (2, Outcome::Ready(Events::IN | Events::RDNORM))
        ]
    );
    // Dropping the counter completes its request SourceGone at once; the
    // cancel that follows finds nothing.
    let handle = context.submit(&counter, Events::IN, 3).unwrap();
    drop(counter);
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(pairs(&reap_all(&context)), [(3, Outcome::SourceGone)]);
}

//! Sources that break the rules: the context must stay consistent and lose
//! nothing.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use aiopoll::{Completion, Context, Events, Outcome, PollTable, Source, SpinLock, WaitQueue};

fn reap_all<const N: usize>(context: &Context<'_, N>) -> Vec<Completion> {
    let mut out = vec![Completion::EMPTY; N];
    let count = context.reap(&mut out);
    out.truncate(count);
    out
}

/// Wakes its own queue from inside `poll`, after registering (a wakeup that
/// fires before `poll` returns, scenario 1, on a single thread).
struct WakesItself {
    queue: WaitQueue,
    ready: AtomicU16,
    key: Events,
}

impl Source for WakesItself {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        table.wait(&self.queue);
        if table.is_registering() {
            self.queue.wake(self.key);
        }
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }
}

#[test]
fn a_poll_that_wakes_its_own_queue_defers_and_loses_nothing() {
    for key in [Events::IN, Events::empty()] {
        let source = WakesItself {
            queue: WaitQueue::new(),
            ready: AtomicU16::new(0),
            key,
        };
        let context = pin!(Context::<'_, 2>::new());
        let handle = context.as_ref().submit(&source, Events::IN, 1).unwrap();
        // The wakeup could not take the context lock (submit held it): it
        // deferred, and submit gave up responsibility to the deferred work.
        assert!(context.has_deferred_work());
        // The deferred re-poll finds nothing ready: the request stays armed.
        assert!(reap_all(&context).is_empty());
        assert_eq!(source.queue.len(), 1);
        source.ready.store(Events::IN.bits(), Ordering::Release);
        source.queue.wake(Events::IN);
        assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::IN));
        assert!(context.cancel(handle).is_err());
        assert_eq!(context.in_use(), 0);
    }
}

#[test]
fn a_poll_that_wakes_itself_while_ready_completes_at_submit_once() {
    let source = WakesItself {
        queue: WaitQueue::new(),
        ready: AtomicU16::new(Events::IN.bits()),
        key: Events::IN,
    };
    let context = pin!(Context::<'_, 2>::new());
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    assert_eq!(reap_all(&context).len(), 1);
    assert!(source.queue.is_empty());
    assert_eq!(context.in_use(), 0);
}

/// Registers on a queue, then panics (or, once disarmed, behaves).
struct Panics {
    queues: [WaitQueue; 2],
    armed: AtomicBool,
}

impl Source for Panics {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        table.wait(&self.queues[0]);
        table.wait(&self.queues[1]);
        if self.armed.load(Ordering::Relaxed) {
            panic!("hostile source");
        }
        Events::empty()
    }
}

#[test]
fn a_poll_that_panics_unwinds_without_a_trace() {
    let source = Panics {
        queues: [WaitQueue::new(), WaitQueue::new()],
        armed: AtomicBool::new(true),
    };
    let context = pin!(Context::<'_, 1>::new());
    let result = catch_unwind(AssertUnwindSafe(|| {
        context.as_ref().submit(&source, Events::IN, 1)
    }));
    assert!(result.is_err());
    // No entry stayed queued, the slot is free, and the lock was released.
    assert!(source.queues.iter().all(|queue| queue.is_empty()));
    assert_eq!(context.in_use(), 0);
    source.armed.store(false, Ordering::Relaxed);
    let handle = context.as_ref().submit(&source, Events::IN, 2).unwrap();
    assert_eq!(context.cancel(handle), Ok(aiopoll::InProgress));
    assert_eq!(reap_all(&context)[0].user_data, 2);
}

/// Reports bits that are not poll events.
struct UnknownBits {
    queue: WaitQueue,
}

impl Source for UnknownBits {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, SpinLock>) -> Events {
        table.wait(&self.queue);
        Events::from_bits_retain(0x8000 | Events::OUT.bits())
    }
}

#[test]
fn unknown_ready_bits_are_ignored() {
    let source = UnknownBits {
        queue: WaitQueue::new(),
    };
    let context = pin!(Context::<'_, 1>::new());
    context.as_ref().submit(&source, Events::IN, 1).unwrap();
    assert!(reap_all(&context).is_empty());
    context.as_ref().submit(&source, Events::IN, 1).unwrap_err();
    source.queue.close();
    assert_eq!(reap_all(&context)[0].outcome, Outcome::SourceGone);
    let context = pin!(Context::<'_, 1>::new());
    context.as_ref().submit(&source, Events::OUT, 1).unwrap();
    assert_eq!(reap_all(&context)[0].outcome, Outcome::Ready(Events::OUT));
}

/// Always ready, on no queue: a request on it completes at submit.
struct AlwaysReady;

impl Source for AlwaysReady {
    fn poll<'s>(&'s self, _: &mut PollTable<'_, 's, SpinLock>) -> Events {
        Events::IN
    }
}

/// A `reap_with` callback that panics: the completion it was given counts
/// as reaped, the others are still delivered later, every slot frees, and
/// the context goes on working.
#[test]
fn a_reap_callback_that_panics_loses_no_other_completion() {
    support::quiet_hostile_panics();
    let context = pin!(Context::<'_, 4>::new());
    for user_data in 1..=4 {
        context
            .as_ref()
            .submit(&AlwaysReady, Events::IN, user_data)
            .unwrap();
    }
    let mut out = [Completion::EMPTY; 4];
    let mut given = Vec::new();
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        context.reap_with(&mut out, |completion| {
            given.push(completion.user_data);
            if given.len() == 2 {
                std::panic::panic_any(support::HOSTILE_PANIC);
            }
        })
    }));
    assert!(unwound.is_err());
    assert_eq!(given, [1, 2]);
    let mut rest: Vec<u64> = reap_all(&context).iter().map(|c| c.user_data).collect();
    rest.sort_unstable();
    assert_eq!(rest, [3, 4], "a completion was lost");
    assert_eq!(context.in_use(), 0, "a slot leaked");
    // Four more rounds through every slot: nothing is held up.
    for round in 0..4u64 {
        for slot in 0..4u64 {
            context
                .as_ref()
                .submit(&AlwaysReady, Events::IN, round * 4 + slot)
                .unwrap();
        }
        assert_eq!(reap_all(&context).len(), 4);
    }
    assert_eq!(context.in_use(), 0);
}

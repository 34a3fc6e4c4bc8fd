//! A context whose `Kinds` leave multishot requests, awaited requests and
//! deadlines out (`QueuedOneShot`) behaves exactly as the default context
//! (`EveryKind`) for the requests it takes: random sequences of queued
//! one-shot operations, with wakeups deferred on demand, run against one
//! context of each kind (each with sources of its own, the same operation
//! on both), and every return value, completion and statistic must match.
//! And what it leaves out is refused with a typed error, never half done.

mod support;

use core::pin::Pin;

use aiopoll::{
    CancelError, Completion, Context, Events, EveryKind, Handle, Kinds, QueuedOneShot,
    RequestOptions, SubmitError,
};
use proptest::prelude::*;
use support::{fail_next_try_locks, Device, FaultLock};

type Locks = (FaultLock, FaultLock);
const SLOTS: usize = 4;
const SOURCES: usize = 3;

/// One operation, applied to both worlds.
#[derive(Clone, Debug)]
enum Op {
    Submit {
        source: usize,
        events: u16,
        user_data: u64,
    },
    SetReady {
        source: usize,
        events: u16,
    },
    /// State change, then a keyed wakeup of the source's first queue.
    Raise {
        source: usize,
        events: u16,
    },
    /// An unkeyed wakeup (the owner re-polls) of one queue.
    Repoll {
        source: usize,
        queue: usize,
    },
    Close {
        source: usize,
        queue: usize,
    },
    Reopen {
        source: usize,
        queue: usize,
    },
    Cancel {
        nth: usize,
    },
    CancelUserData {
        user_data: u64,
    },
    Update {
        nth: usize,
        events: u16,
    },
    Reap {
        max: usize,
    },
    RunDeferred,
    /// The next `count` try-locks fail: the wakeups of the next operation
    /// defer.
    FailTryLocks {
        count: u32,
    },
}

/// What an operation returned, in a form both worlds can be compared by
/// (handles differ: each context numbers its own).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Said {
    Nothing,
    Submitted(Result<(), SubmitError>),
    Woken(usize),
    Cancelled(Result<(), CancelError>),
    Count(usize),
    Updated(String),
    /// User data, outcome and `more` of each completion reaped.
    Reaped(Vec<(u64, String, bool)>),
}

/// One context with its own sources.
struct World<'s, K: Kinds> {
    context: Pin<Box<Context<'s, SLOTS, Locks, 2, (), K>>>,
    sources: &'s [Device<FaultLock>; SOURCES],
    handles: Vec<Handle>,
}

/// A world's sources: two queues for one of them, so that the paths of a
/// request on two queues run too.
fn sources() -> [Device<FaultLock>; SOURCES] {
    [Device::new(1), Device::new(2), Device::new(1)]
}

impl<'s, K: Kinds> World<'s, K> {
    fn new(sources: &'s [Device<FaultLock>; SOURCES]) -> Self {
        World {
            context: Box::pin(Context::new()),
            sources,
            handles: Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op, failures: u32) -> Said {
        let context = self.context.as_ref();
        fail_next_try_locks(failures);
        let said = match *op {
            Op::Submit {
                source,
                events,
                user_data,
            } => Said::Submitted(
                context
                    .submit(
                        &self.sources[source],
                        Events::from_bits_retain(events),
                        user_data,
                    )
                    .map(|handle| self.handles.push(handle)),
            ),
            Op::SetReady { source, events } => {
                self.sources[source].set_ready(Events::from_bits_truncate(events));
                Said::Nothing
            }
            Op::Raise { source, events } => {
                Said::Woken(self.sources[source].raise(Events::from_bits_truncate(events)))
            }
            Op::Repoll { source, queue } => {
                Said::Woken(self.sources[source].queues[queue].wake(Events::empty()))
            }
            Op::Close { source, queue } => Said::Woken(self.sources[source].queues[queue].close()),
            Op::Reopen { source, queue } => {
                Said::Count(usize::from(self.sources[source].queues[queue].reopen()))
            }
            Op::Cancel { nth } => match self.handles.get(nth) {
                Some(handle) => Said::Cancelled(context.cancel(*handle).map(|_| ())),
                None => Said::Nothing,
            },
            Op::CancelUserData { user_data } => Said::Count(context.cancel_user_data(user_data)),
            Op::Update { nth, events } => match self.handles.get(nth) {
                Some(handle) => Said::Updated(format!(
                    "{:?}",
                    context.update(*handle, Some(Events::from_bits_retain(events)), None)
                )),
                None => Said::Nothing,
            },
            Op::Reap { max } => {
                let mut out = vec![Completion::EMPTY; max];
                let count = context.reap(&mut out);
                Said::Reaped(
                    out[..count]
                        .iter()
                        .map(|c| (c.user_data, format!("{:?}", c.outcome), c.more))
                        .collect(),
                )
            }
            Op::RunDeferred => Said::Count(context.run_deferred()),
            Op::FailTryLocks { .. } => Said::Nothing,
        };
        // What the operation did not use does not carry over.
        fail_next_try_locks(0);
        said
    }
}

fn events() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![0x1u16, 0x4, 0x5, 0x8, 0x10, 0x0]),
        1 => any::<u16>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SOURCES, events(), 0..8u64)
            .prop_map(|(source, events, user_data)| Op::Submit { source, events, user_data }),
        3 => (0..SOURCES, events()).prop_map(|(source, events)| Op::SetReady { source, events }),
        4 => (0..SOURCES, events()).prop_map(|(source, events)| Op::Raise { source, events }),
        1 => (0..SOURCES, 0..2usize).prop_map(|(source, queue)| Op::Repoll { source, queue }),
        1 => (0..SOURCES, 0..2usize).prop_map(|(source, queue)| Op::Close { source, queue }),
        1 => (0..SOURCES, 0..2usize).prop_map(|(source, queue)| Op::Reopen { source, queue }),
        2 => (0..12usize).prop_map(|nth| Op::Cancel { nth }),
        1 => (0..8u64).prop_map(|user_data| Op::CancelUserData { user_data }),
        1 => (0..12usize, events()).prop_map(|(nth, events)| Op::Update { nth, events }),
        2 => (0..5usize).prop_map(|max| Op::Reap { max }),
        1 => Just(Op::RunDeferred),
        2 => (1..4u32).prop_map(|count| Op::FailTryLocks { count }),
    ]
}

/// Sequences per run: `PROPTEST_CASES`, else 512 (16 under Miri).
fn cases() -> u32 {
    support::proptest_cases(512)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn queued_one_shot_matches_every_kind(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 24 } else { 64 })) {
        // Declared before the worlds: they outlive the contexts.
        let (every_sources, queued_sources) = (sources(), sources());
        let mut every = World::<EveryKind>::new(&every_sources);
        let mut queued = World::<QueuedOneShot>::new(&queued_sources);
        let mut failures = 0;
        for (step, op) in ops.iter().enumerate() {
            let said = every.apply(op, failures);
            let also = queued.apply(op, failures);
            prop_assert_eq!(&said, &also, "step {} ({:?})", step, op);
            failures = match *op {
                Op::FailTryLocks { count } => count,
                _ => 0,
            };
        }
        // Whatever is left, reaped in full, and the same statistics.
        let mut left = [Completion::EMPTY; SLOTS];
        let (a, b) = (every.context.as_ref().run_deferred(), queued.context.as_ref().run_deferred());
        prop_assert_eq!(a, b);
        let (a, b) = (every.context.as_ref().reap(&mut left), queued.context.as_ref().reap(&mut left));
        prop_assert_eq!(a, b);
        prop_assert_eq!(every.context.stats(), queued.context.stats());
    }
}

#[test]
fn options_a_context_does_not_take_are_refused_and_change_nothing() {
    let device = Device::<FaultLock>::new(1);
    let context = Box::pin(Context::<'_, SLOTS, Locks, 2, (), QueuedOneShot>::new());
    let context = context.as_ref();
    let cases = [
        (
            RequestOptions::ONE_SHOT.multishot(),
            SubmitError::MultishotNotTaken,
            "multishot requests",
        ),
        (
            RequestOptions::ONE_SHOT.deadline(10),
            SubmitError::DeadlinesNotTaken,
            "deadlines",
        ),
    ];
    for (options, error, kind) in cases {
        // SAFETY: `device` outlives `context` (declared first, dropped last).
        let refused =
            unsafe { context.submit_unchecked_with(&device, Events::IN, 1, options, |_| {}) };
        assert_eq!(refused, Err(error));
        assert!(error.to_string().contains(kind));
    }
    // Nothing was taken: every slot is free, no queue holds an entry.
    assert!(device.queues[0].is_empty());
    for user_data in 0..SLOTS as u64 {
        assert!(context.submit(&device, Events::IN, user_data).is_ok());
    }
    assert_eq!(context.stats().submitted, SLOTS as u32);
    // Nothing can have a deadline.
    assert_eq!(context.next_deadline(), None);
    assert_eq!(context.expire(u64::MAX), 0);
    // A one-shot request with no options is what every context takes.
    device.raise(Events::IN);
    let mut out = [Completion::EMPTY; SLOTS];
    assert_eq!(context.reap(&mut out), SLOTS);
}

//! Property test: random operation sequences (submit, wake with keys,
//! cancel, close, reap, context teardown, hostile sources, `Request`
//! futures made, polled and dropped at any point) against the plain
//! reference model of `support/model.rs`, comparing every return value and
//! every completion.

mod support;

use proptest::prelude::*;
use support::model::{run, Op, SOURCES};

fn events() -> impl Strategy<Value = u16> {
    // Mostly IN/OUT/ERR/HUP so that masks meet; sometimes any bits.
    prop_oneof![
        4 => prop::sample::select(vec![0x1u16, 0x4, 0x5, 0x8, 0x10, 0x0, 0x41]),
        1 => any::<u16>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SOURCES, events(), 0..16u64)
            .prop_map(|(source, events, user_data)| Op::Submit { source, events, user_data }),
        3 => (0..SOURCES, events()).prop_map(|(source, events)| Op::SetReady { source, events }),
        4 => (0..SOURCES, 0..3usize, events())
            .prop_map(|(source, queue, key)| Op::Wake { source, queue, key }),
        1 => (0..SOURCES, 0..3usize).prop_map(|(source, queue)| Op::Close { source, queue }),
        1 => (0..SOURCES, 0..3usize).prop_map(|(source, queue)| Op::Reopen { source, queue }),
        2 => (0..16usize).prop_map(|nth| Op::Cancel { nth }),
        2 => (0..6usize).prop_map(|max| Op::Reap { max }),
        1 => Just(Op::RunDeferred),
        1 => Just(Op::DropContext),
        2 => (0..4u32).prop_map(|count| Op::FailTryLocks { count }),
        2 => (0..SOURCES, events(), prop::option::of(0..8u64)).prop_map(
            |(source, events, deadline)| Op::AwaitNew { source, events, deadline }
        ),
        4 => (0..16usize).prop_map(|nth| Op::AwaitPoll { nth }),
        1 => (0..16usize).prop_map(|nth| Op::AwaitDrop { nth }),
        1 => prop::collection::vec((0..SOURCES, events(), 0..16u64), 0..4)
            .prop_map(|requests| Op::SubmitBatch { requests }),
        1 => (0..16u64).prop_map(|user_data| Op::CancelUserData { user_data }),
        1 => (0..SOURCES).prop_map(|source| Op::CancelSource { source }),
        2 => (0..SOURCES, events(), 0..16u64, 0..8u64).prop_map(
            |(source, events, user_data, deadline)| Op::SubmitWithDeadline {
                source,
                events,
                user_data,
                deadline,
            }
        ),
        1 => (0..8u64).prop_map(|now| Op::Expire { now }),
        2 => (0..SOURCES, events(), 0..16u64).prop_map(|(source, events, user_data)| {
            Op::SubmitMultishot {
                source,
                events,
                user_data,
            }
        }),
        2 => (0..16usize, prop::option::of(events()), prop::option::of(0..16u64))
            .prop_map(|(nth, events, user_data)| Op::Update { nth, events, user_data }),
    ]
}

/// Sequences per run: `PROPTEST_CASES`, else 1,024 (16 under Miri).
fn cases() -> u32 {
    support::proptest_cases(1024)
}

/// Longest sequence (shorter under Miri).
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 80 };

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_reference_model(ops in prop::collection::vec(op(), 1..MAX_OPS)) {
        run(&ops).map_err(TestCaseError::fail)?;
    }
}

/// Replays the checked-in fuzz seed corpus (`core/fuzz/corpus/operations`)
/// and, when `AIOPOLL_FUZZ_CORPUS` names a directory, the corpus a fuzz run
/// grew; prints what the runs did.
#[test]
#[cfg(not(miri))] // Miri's isolation has no file system; the seeds run as the property test does.
fn replays_the_fuzz_corpus() {
    let mut directories = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/operations"
    ))];
    directories.extend(std::env::var_os("AIOPOLL_FUZZ_CORPUS").map(Into::into));
    let mut totals = support::model::Counts::default();
    let mut inputs = 0;
    for directory in directories {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let counts = run(&support::model::decode(&data))
                .unwrap_or_else(|difference| panic!("{}: {difference}", path.display()));
            totals.add(counts);
            inputs += 1;
        }
    }
    assert!(inputs >= 6, "the seed corpus is missing");
    assert_eq!(
        totals.completions + totals.abandoned,
        totals.requests,
        "every request completes exactly once or goes with its context"
    );
    println!(
        "fuzz corpus: {inputs} inputs, {} requests, {} completions ({} cancelled, \
         {} by deferred work), {} abandoned with their context, {} teardowns",
        totals.requests,
        totals.completions,
        totals.cancelled,
        totals.deferred,
        totals.abandoned,
        totals.teardowns
    );
}

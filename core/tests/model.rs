//! Property test: random operation sequences (submit, wake with keys,
//! cancel, close, reap, context teardown, hostile sources) against the plain
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
        4 => (0..SOURCES, events(), 0..1000u64)
            .prop_map(|(source, events, user_data)| Op::Submit { source, events, user_data }),
        3 => (0..SOURCES, events()).prop_map(|(source, events)| Op::SetReady { source, events }),
        4 => (0..SOURCES, 0..3usize, events())
            .prop_map(|(source, queue, key)| Op::Wake { source, queue, key }),
        1 => (0..SOURCES, 0..3usize).prop_map(|(source, queue)| Op::Close { source, queue }),
        2 => (0..16usize).prop_map(|nth| Op::Cancel { nth }),
        2 => (0..6usize).prop_map(|max| Op::Reap { max }),
        1 => Just(Op::RunDeferred),
        1 => Just(Op::DropContext),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1024),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_reference_model(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops).map_err(TestCaseError::fail)?;
    }
}

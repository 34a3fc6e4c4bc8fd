//! Operation sequences decoded from the fuzzer's bytes, run against the
//! reference model and the core (the same harness as the property test in
//! `core/tests/model.rs`). Any difference, lost or doubled completion,
//! leaked slot or queued entry aborts with a description.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use support::model::{decode, run};

fuzz_target!(|data: &[u8]| {
    if let Err(difference) = run(&decode(data)) {
        panic!("the core differs from the reference model: {difference}");
    }
});

//! Contexts sized for servers: thousands of slots, made without touching
//! the stack, at the memory per slot the docs state.
//!
//! Not under Miri: a context of 20,000 slots takes it over ten minutes to
//! make and tear down. The in-place construction itself runs under Miri in
//! every other test (each `StdContext::new` builds that way).
#![cfg(not(miri))]

use aiopoll_std::{EventCounter, Events, Outcome, StdContext};

/// 10,000 connections with two requests each.
const SLOTS: usize = 20_000;

#[test]
fn a_context_of_20000_slots_is_made_and_used_on_a_small_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            // Over 2 MiB: built on the stack it would overflow this one.
            const { assert!(StdContext::<SLOTS>::BYTES > 8 * 256 * 1024) };
            let context = StdContext::<SLOTS>::new();
            let counter = EventCounter::new();
            let requests = SLOTS;
            for user_data in 0..requests as u64 {
                context.submit(&counter, Events::IN, user_data).unwrap();
            }
            assert_eq!(context.in_use(), requests);
            counter.write(1).unwrap();
            let mut reaped = 0;
            while reaped < requests {
                for done in context.get_events(1, 1024, None).unwrap() {
                    assert_eq!(done.outcome, Outcome::Ready(Events::IN));
                    reaped += 1;
                }
            }
            assert_eq!(context.in_use(), 0);
        })
        .unwrap();
    worker.join().unwrap();
}

/// `StdContext`'s docs: under 200 bytes per slot on 64-bit targets.
#[test]
fn memory_per_slot_is_what_the_docs_say() {
    let per_slot = (StdContext::<SLOTS>::BYTES - StdContext::<1>::BYTES) / (SLOTS - 1);
    println!("{per_slot} bytes per slot");
    assert!(per_slot < 200, "{per_slot} bytes per slot: update the docs");
}

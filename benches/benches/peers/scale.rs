//! The scale cases (issue 12): `n` requests pending on one wait queue, for
//! `n` in [`SCALE`]. `scale-wake-n` measures the one wakeup that wakes all
//! of them (its cost should grow linearly with `n`: constant per request);
//! `scale-cancel-n` measures the cancel of one of them (its cost should not
//! grow with `n`). Setting the `n` requests up and taking them down again is
//! not measured ([`Runner::run_part`]).

use std::hint::black_box;
use std::pin::{pin, Pin};

use aiopoll::{Completion, Context, Events, Outcome};

use crate::cases::{poll_once, Flag, Runner, SCALE};

/// Slots of the aiopoll context: the largest `n`.
const CAPACITY: usize = 4096;

type Big<'s> = Context<'s, CAPACITY>;

/// Runs `group` (`scale-wake-n` or `scale-cancel-n`) for `peer`.
pub fn run<R: Runner>(group: &str, peer: &str, runner: &mut R) -> Result<(), String> {
    let (what, n) = group
        .strip_prefix("scale-")
        .and_then(|rest| rest.rsplit_once('-'))
        .and_then(|(what, n)| Some((what, n.parse::<usize>().ok()?)))
        .filter(|(_, n)| SCALE.contains(n))
        .ok_or_else(|| format!("{group}: not a scale case"))?;
    match (what, peer) {
        ("wake", "aiopoll") => wake_aiopoll(n, runner),
        ("wake", "maitake-sync") => wake_maitake(n, runner),
        ("cancel", "aiopoll") => cancel_aiopoll(n, runner),
        ("cancel", "maitake-sync") => cancel_maitake(n, runner),
        _ => Err(format!("{group}/{peer}: no such case")),
    }
}

/// An empty context of [`CAPACITY`] slots, on the heap (it is too large for
/// a stack).
fn big_context<'s>() -> Pin<Box<Big<'s>>> {
    let mut place = Box::<Big<'s>>::new_uninit();
    // SAFETY: `place` is a fresh allocation of a `Big`, valid for writes and
    // aligned; `init_in_place` initialises every field.
    unsafe {
        Big::init_in_place(place.as_mut_ptr(), ());
        Box::into_pin(place.assume_init())
    }
}

fn wake_aiopoll<R: Runner>(n: usize, runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = big_context();
    let context = context.as_ref();
    let mut out = vec![Completion::EMPTY; n];
    runner.run_part(
        &mut out,
        |_| {
            for user_data in 0..n as u64 {
                assert!(context.submit(&flag, Events::IN, user_data).is_ok());
            }
        },
        |_| black_box(&flag).raise(),
        |out| {
            assert_eq!(context.reap(out), n);
            assert!(out.iter().all(|c| c.outcome == Outcome::Ready(Events::IN)));
            flag.lower();
        },
    );
    Ok(())
}

fn wake_maitake<R: Runner>(n: usize, runner: &mut R) -> Result<(), String> {
    let queue = maitake_sync::WaitQueue::new();
    let mut waits = Vec::with_capacity(n);
    runner.run_part(
        &mut waits,
        |waits| {
            waits.extend((0..n).map(|_| queue.wait()));
            for wait in waits.iter_mut() {
                // SAFETY: the vector has room for all `n` futures, so it does
                // not reallocate while they are pinned, and they are dropped
                // in place by `clear` below, never moved.
                let wait = unsafe { Pin::new_unchecked(wait) };
                assert!(poll_once(wait).is_pending());
            }
        },
        |_| black_box(&queue).wake_all(),
        |waits| {
            for wait in waits.iter_mut() {
                // SAFETY: as above.
                let wait = unsafe { Pin::new_unchecked(wait) };
                assert!(poll_once(wait).is_ready());
            }
            waits.clear();
        },
    );
    Ok(())
}

fn cancel_aiopoll<R: Runner>(n: usize, runner: &mut R) -> Result<(), String> {
    let flag = Flag::new();
    let context = big_context();
    let context = context.as_ref();
    // `n - 1` others wait on the same queue throughout.
    for user_data in 1..n as u64 {
        assert!(context.submit(&flag, Events::IN, user_data).is_ok());
    }
    let mut out = [Completion::EMPTY; 1];
    runner.run_part(
        &mut None,
        |handle| *handle = context.submit(&flag, Events::IN, 0).ok(),
        |handle| {
            let handle = black_box(handle.take()).expect("submitted");
            context.cancel(handle).is_ok()
        },
        |_| {
            assert_eq!(context.reap(&mut out), 1);
            assert_eq!(out[0].outcome, Outcome::Cancelled);
        },
    );
    assert_eq!(flag.queue_len(), n - 1);
    Ok(())
}

fn cancel_maitake<R: Runner>(n: usize, runner: &mut R) -> Result<(), String> {
    let queue = maitake_sync::WaitQueue::new();
    // `n - 1` others wait on the same queue throughout.
    let mut others: Vec<_> = (1..n).map(|_| queue.wait()).collect();
    for wait in others.iter_mut() {
        // SAFETY: the vector is never grown, so its futures stay in place
        // while pinned; they are dropped in place with it.
        let wait = unsafe { Pin::new_unchecked(wait) };
        assert!(poll_once(wait).is_pending());
    }
    let mut slot = pin!(None);
    runner.run_part(
        &mut slot,
        |slot| {
            slot.set(Some(queue.wait()));
            let wait = slot.as_mut().as_pin_mut().expect("just set");
            assert!(poll_once(wait).is_pending());
        },
        |slot| slot.set(black_box(None)),
        |_| {},
    );
    drop(others);
    Ok(())
}

//! Soak: many threads submit, cancel, wake, close queues, reap and drop
//! contexts at once, for a bounded number of requests (not a time), and
//! every request is accounted for exactly once: completed once, or pending
//! in a context when that context was dropped.
//!
//! `AIOPOLL_SOAK_REQUESTS` sets the total (default 40,000; `cargo xtask
//! test` runs a million in release and under ThreadSanitizer).
#![cfg(not(miri))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread;

use aiopoll::{Completion, Context, Events, Handle, Outcome, SubmitError};
use support::Device;

const SLOTS: usize = 64;
const SOURCES: usize = 8;
const ROUNDS: u64 = 10;
const SUBMITTERS: u64 = 2;

/// A small deterministic generator per thread (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    completions: AtomicU64,
    cancelled: AtomicU64,
    source_gone: AtomicU64,
    deferred: AtomicU64,
    closes: AtomicU64,
    abandoned: AtomicU64,
    context_drops: AtomicU64,
}

/// Marks each completion's user data seen; a second sighting is a double
/// completion.
fn account(seen: &[AtomicU8], totals: &Totals, completions: &[Completion]) {
    for completion in completions {
        let previous = seen[completion.user_data as usize].fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            previous, 0,
            "user data {} completed twice",
            completion.user_data
        );
        totals.completions.fetch_add(1, Ordering::Relaxed);
        match completion.outcome {
            Outcome::Cancelled => totals.cancelled.fetch_add(1, Ordering::Relaxed),
            Outcome::SourceGone => totals.source_gone.fetch_add(1, Ordering::Relaxed),
            Outcome::TimedOut => panic!(
                "user data {}: no soak request has a deadline",
                completion.user_data
            ),
            Outcome::Ready(events) => {
                assert!(!events.is_empty(), "a ready completion with no events");
                0
            }
        };
    }
}

fn round(round: u64, per_round: u64, totals: &Totals) {
    let devices: [Device; SOURCES] = core::array::from_fn(|source| Device::new(1 + source % 2));
    let owned = Box::pin(Context::<'_, SLOTS>::new());
    let context = owned.as_ref();
    let seen: Vec<AtomicU8> = (0..per_round).map(|_| AtomicU8::new(0)).collect();
    let handles: Mutex<Vec<Handle>> = Mutex::new(Vec::new());
    let submitting = AtomicBool::new(true);
    let closes_left = AtomicU64::new(2);

    thread::scope(|scope| {
        let submitters: Vec<_> = (0..SUBMITTERS)
            .map(|thread| {
                let (devices, seen, handles) = (&devices, &seen, &handles);
                scope.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9 ^ (round << 8) ^ (thread + 1));
                    let mut out = [Completion::EMPTY; 16];
                    let mut user_data = thread;
                    while user_data < per_round {
                        let source = &devices[rng.below(SOURCES as u64) as usize];
                        let events = [Events::IN, Events::OUT, Events::IN | Events::OUT]
                            [rng.below(3) as usize];
                        match context.submit(source, events, user_data) {
                            Ok(handle) => {
                                totals.requests.fetch_add(1, Ordering::Relaxed);
                                if rng.below(4) == 0 {
                                    handles.lock().unwrap().push(handle);
                                }
                                user_data += SUBMITTERS;
                            }
                            Err(SubmitError::Busy) => {
                                let count = context.reap(&mut out);
                                account(seen, totals, &out[..count]);
                            }
                            Err(other) => panic!("unexpected submit error: {other}"),
                        }
                    }
                })
            })
            .collect();
        // The canceller.
        scope.spawn(|| {
            while submitting.load(Ordering::Relaxed) {
                let handle = handles.lock().unwrap().pop();
                if let Some(handle) = handle {
                    let _ = context.cancel(handle);
                } else {
                    thread::yield_now();
                }
            }
        });
        // Two wakers, one of which also closes a few queues.
        for waker in 0..2u64 {
            let (devices, submitting, closes_left) = (&devices, &submitting, &closes_left);
            scope.spawn(move || {
                let mut rng = Rng(0x51ed_2701 ^ (round << 8) ^ (waker + 7));
                while submitting.load(Ordering::Relaxed) {
                    let device = &devices[rng.below(SOURCES as u64) as usize];
                    let ready = [
                        Events::empty(),
                        Events::IN,
                        Events::OUT,
                        Events::IN | Events::OUT,
                    ][rng.below(4) as usize];
                    device.set_ready(ready);
                    let queue = &device.queues[rng.below(device.queues_used as u64) as usize];
                    match rng.below(64) {
                        0 if waker == 1
                            && closes_left
                                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                    left.checked_sub(1)
                                })
                                .is_ok() =>
                        {
                            queue.close();
                            totals.closes.fetch_add(1, Ordering::Relaxed);
                        }
                        1..=8 => {
                            queue.wake(Events::empty());
                        }
                        _ => {
                            queue.wake(ready);
                        }
                    }
                }
            });
        }
        // A reaper.
        scope.spawn(|| {
            let mut out = [Completion::EMPTY; 16];
            while submitting.load(Ordering::Relaxed) {
                let count = context.reap(&mut out);
                account(&seen, totals, &out[..count]);
                if count == 0 {
                    thread::yield_now();
                }
            }
        });
        for submitter in submitters {
            submitter.join().unwrap();
        }
        submitting.store(false, Ordering::Relaxed);
    });

    let stats = context.stats();
    totals.deferred.fetch_add(
        u64::from(stats.completed_by_deferred_work),
        Ordering::Relaxed,
    );
    if round % 2 == 0 {
        // Drain: close every queue, so every pending request completes.
        for device in &devices {
            for queue in &device.queues[..device.queues_used] {
                queue.close();
            }
        }
        let mut out = [Completion::EMPTY; SLOTS];
        loop {
            let count = context.reap(&mut out);
            if count == 0 {
                break;
            }
            account(&seen, totals, &out[..count]);
        }
        assert_eq!(context.in_use(), 0, "a slot leaked");
        assert!(
            seen.iter().all(|count| count.load(Ordering::Relaxed) == 1),
            "a request never completed"
        );
    } else {
        // Abandon: what is pending or unreaped goes with the context.
        let abandoned = seen
            .iter()
            .filter(|count| count.load(Ordering::Relaxed) == 0)
            .count();
        assert_eq!(abandoned, context.in_use(), "unaccounted requests");
        totals
            .abandoned
            .fetch_add(abandoned as u64, Ordering::Relaxed);
    }
    // Dropping the context detaches whatever is still queued.
    drop(owned);
    totals.context_drops.fetch_add(1, Ordering::Relaxed);
    for device in &devices {
        assert!(
            device.queues.iter().all(|queue| queue.is_empty()),
            "a dropped context left an entry queued"
        );
    }
}

#[test]
fn soak_every_request_accounted_once() {
    let total: u64 = std::env::var("AIOPOLL_SOAK_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(40_000);
    let totals = Totals::default();
    for number in 0..ROUNDS {
        round(number, total / ROUNDS, &totals);
    }
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    assert_eq!(
        get(&totals.completions) + get(&totals.abandoned),
        get(&totals.requests)
    );
    println!(
        "soak: {} requests, {} completions ({} cancelled, {} source gone, {} by deferred work), \
         {} abandoned with {} dropped contexts, {} queues closed under load",
        get(&totals.requests),
        get(&totals.completions),
        get(&totals.cancelled),
        get(&totals.source_gone),
        get(&totals.deferred),
        get(&totals.abandoned),
        get(&totals.context_drops),
        get(&totals.closes),
    );
}

//! Multi-thread stress, bounded in iterations: threads submit, cancel,
//! wake, tear sources down and reap on shared sources; every request is
//! accounted for exactly once. Runs under Miri too, with fewer iterations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiopoll_std::{
    pipe_with_capacity, Completion, EventCounter, Events, Handle, Outcome, PipeReader, PipeWriter,
    StdContext, SubmitError,
};
use parking_lot::Mutex;

/// Iterations per worker thread; `AIOPOLL_STRESS_ITERATIONS` overrides it
/// (the ThreadSanitizer step of `cargo xtask test` runs more).
fn iterations() -> usize {
    std::env::var("AIOPOLL_STRESS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if cfg!(miri) { 200 } else { 3_000 })
}
const SLOTS: usize = 6;
const REAPERS: usize = 2;
/// User data of the requests that tell reapers to stop.
const STOP: u64 = u64::MAX;

#[derive(Clone)]
enum Shared {
    Counter(Arc<EventCounter>),
    Pipe(Arc<PipeReader>, Arc<PipeWriter>),
    /// A pipe whose write end is gone: its reader is at HUP.
    Reader(Arc<PipeReader>),
}

fn fresh(slot: usize, generation: u64) -> Shared {
    match (slot + generation as usize) % 5 {
        0 | 1 => Shared::Counter(Arc::new(EventCounter::new())),
        2 | 3 => {
            let (reader, writer) = pipe_with_capacity(64);
            Shared::Pipe(Arc::new(reader), Arc::new(writer))
        }
        _ => Shared::Reader(Arc::new(pipe_with_capacity(64).0)),
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

struct World {
    /// All workers start together, so their iterations interleave.
    start: std::sync::Barrier,
    context: StdContext<32>,
    slots: Mutex<Vec<Shared>>,
    /// Every accepted request's handle, by user data.
    handles: Mutex<HashMap<u64, Handle>>,
    next_id: AtomicU64,
    stop: EventCounter,
    /// A pipe whose ends stay, so pipe wakeups run all along.
    pipe: (Arc<PipeReader>, Arc<PipeWriter>),
}

impl World {
    fn pick(&self, rng: &mut Rng) -> Shared {
        let slots = self.slots.lock();
        slots[rng.below(slots.len())].clone()
    }

    fn submitter(&self, seed: u64) -> (usize, Vec<Completion>) {
        self.start.wait();
        let mut rng = Rng(seed);
        let mut taken = Vec::new();
        let mut busy = 0;
        // This thread's accepted requests, oldest first: on Busy, it
        // cancels its oldest to make room.
        let mut mine = std::collections::VecDeque::new();
        let masks = [
            Events::IN,
            Events::IN,
            Events::IN | Events::PRI,
            Events::OUT,
            Events::PRI,
        ];
        for _ in 0..iterations() {
            let events = masks[rng.below(masks.len())];
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let shared = if rng.below(4) == 0 {
                Shared::Pipe(self.pipe.0.clone(), self.pipe.1.clone())
            } else {
                self.pick(&mut rng)
            };
            let read_end = rng.below(2) == 0;
            // The handle map's lock is held across submit, so a cancel
            // never looks for a handle that is about to be recorded.
            let mut handles = self.handles.lock();
            let submitted = match &shared {
                Shared::Counter(counter) => self.context.submit(&**counter, events, id),
                Shared::Pipe(reader, _) if read_end => self.context.submit(&**reader, events, id),
                Shared::Pipe(_, writer) => self.context.submit(&**writer, events, id),
                Shared::Reader(reader) => self.context.submit(&**reader, events, id),
            };
            match submitted {
                Ok(handle) => {
                    handles.insert(id, handle);
                    mine.push_back(handle);
                }
                Err(SubmitError::Busy) => {
                    busy += 1;
                    while let Some(oldest) = mine.pop_front() {
                        if self.context.cancel(oldest).is_ok() {
                            break;
                        }
                    }
                    // Reap too: submitters take part in reaping, so room
                    // comes back without waiting for the reaper threads.
                    taken.extend(
                        self.context
                            .get_events(0, 8, Some(Duration::ZERO))
                            .expect("0 <= 8"),
                    );
                }
                Err(error) => panic!("unexpected submit error {error}"),
            }
            drop(handles);
            if mine.len() > 8 {
                mine.pop_front();
            }
            if rng.below(3) == 0 {
                let victim = {
                    let handles = self.handles.lock();
                    let low = id.saturating_sub(20);
                    let pick = low + rng.below(21) as u64;
                    handles.get(&pick).copied()
                };
                if let Some(handle) = victim {
                    let _ = self.context.cancel(handle);
                }
            }
        }
        (busy, taken)
    }

    fn waker(&self, seed: u64) {
        self.start.wait();
        let mut rng = Rng(seed);
        let mut buf = [0u8; 16];
        for _ in 0..iterations() {
            match self.pick(&mut rng) {
                Shared::Counter(counter) => {
                    // Mostly reads: counters are often empty, so IN waits.
                    if rng.below(3) == 0 {
                        let _ = counter.write(1);
                    } else {
                        let _ = counter.read();
                    }
                }
                Shared::Pipe(reader, writer) => {
                    if rng.below(2) == 0 {
                        let _ = reader.read(&mut buf);
                    } else {
                        let _ = writer.write(&buf[..1 + rng.below(15)]);
                    }
                }
                Shared::Reader(reader) => {
                    let _ = reader.read(&mut buf);
                }
            }
            if rng.below(2) == 0 {
                let _ = self.pipe.1.write(&buf[..1 + rng.below(15)]);
            } else {
                let _ = self.pipe.0.read(&mut buf);
            }
        }
    }

    fn teardown(&self, seed: u64) {
        self.start.wait();
        let mut rng = Rng(seed);
        for generation in 0..(iterations() / 4) as u64 {
            let slot = rng.below(SLOTS);
            let replacement = fresh(slot, generation);
            // The old source is dropped here unless a submitter still holds
            // a clone; either way its requests complete SourceGone.
            let old = std::mem::replace(&mut self.slots.lock()[slot], replacement);
            drop(old);
        }
    }

    /// Reaps until it takes a STOP completion; then passes the stop on to
    /// the next reaper with a new STOP request (ready at once).
    fn reaper(&self) -> Vec<Completion> {
        let mut taken = Vec::new();
        loop {
            let batch = self.context.get_events(1, 16, None).expect("1 <= 16");
            let stop = batch.iter().any(|c| c.user_data == STOP);
            taken.extend(batch.into_iter().filter(|c| c.user_data != STOP));
            if stop {
                loop {
                    match self.context.submit(&self.stop, Events::IN, STOP) {
                        Ok(_) => return taken,
                        // Full: reap to make room, then pass it on.
                        Err(SubmitError::Busy) => taken.extend(
                            self.context
                                .get_events(0, 16, Some(Duration::ZERO))
                                .expect("0 <= 16")
                                .into_iter()
                                .filter(|c| c.user_data != STOP),
                        ),
                        Err(error) => panic!("stop submit: {error}"),
                    }
                }
            }
        }
    }
}

#[test]
fn every_request_is_accounted_for_exactly_once() {
    let (reader, writer) = pipe_with_capacity(256);
    let world = World {
        start: std::sync::Barrier::new(4),
        context: StdContext::new(),
        slots: Mutex::new((0..SLOTS).map(|slot| fresh(slot, 0)).collect()),
        handles: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        stop: EventCounter::new(),
        pipe: (Arc::new(reader), Arc::new(writer)),
    };
    let mut reaped = Vec::new();
    let mut busy = 0;
    std::thread::scope(|scope| {
        let reapers: Vec<_> = (0..REAPERS)
            .map(|_| scope.spawn(|| world.reaper()))
            .collect();
        let submitters: Vec<_> = (0..2)
            .map(|k| {
                let world = &world;
                scope.spawn(move || world.submitter(k + 1))
            })
            .collect();
        let waker = scope.spawn(|| world.waker(7));
        let teardown = scope.spawn(|| world.teardown(9));
        for submitter in submitters {
            let (refused, taken) = submitter.join().expect("submitter");
            busy += refused;
            reaped.extend(taken);
        }
        waker.join().expect("waker");
        teardown.join().expect("teardown");
        // Every request still pending ends now.
        for handle in world.handles.lock().values() {
            let _ = world.context.cancel(*handle);
        }
        // Stop the reapers: the first STOP is passed from one to the next.
        loop {
            match world.context.submit(&world.stop, Events::IN, STOP) {
                Ok(_) => break,
                Err(SubmitError::Busy) => continue, // reapers are making room
                Err(error) => panic!("stop submit: {error}"),
            }
        }
        world.stop.write(1).expect("stop");
        for reaper in reapers {
            reaped.extend(reaper.join().expect("reaper"));
        }
    });
    // The last reaper's STOP is left; take it and anything else.
    let rest = world
        .context
        .get_events(0, 32, Some(Duration::ZERO))
        .unwrap();
    assert_eq!(rest.iter().filter(|c| c.user_data == STOP).count(), 1);
    reaped.extend(rest.into_iter().filter(|c| c.user_data != STOP));
    assert_eq!(world.context.in_use(), 0, "no slot leaked");

    let handles = world.handles.lock();
    let mut seen: HashMap<u64, Outcome> = HashMap::new();
    for completion in &reaped {
        assert!(
            handles.contains_key(&completion.user_data),
            "completion of a request never accepted: {completion:?}"
        );
        assert!(
            seen.insert(completion.user_data, completion.outcome)
                .is_none(),
            "request {} completed twice",
            completion.user_data
        );
    }
    assert_eq!(
        seen.len(),
        handles.len(),
        "every accepted request completed"
    );
    let count = |f: fn(&Outcome) -> bool| seen.values().filter(|o| f(o)).count();
    let ready = count(|o| matches!(o, Outcome::Ready(_)));
    let cancelled = count(|o| matches!(o, Outcome::Cancelled));
    let gone = count(|o| matches!(o, Outcome::SourceGone));
    println!(
        "{} requests ({busy} submits refused busy): {ready} ready, {cancelled} cancelled, \
         {gone} source gone; {:?}",
        handles.len(),
        world.context.stats()
    );
    assert!(ready > 0 && cancelled > 0);
}

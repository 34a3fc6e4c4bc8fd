//! The contract as a plain, single-threaded reference model, and a harness
//! that runs one operation sequence against the model and the real core,
//! comparing every return value and every completion. Shared by the
//! property test (`tests/model.rs`) and the fuzz target (`fuzz/`).
//!
//! Where the contract leaves timing to the implementation (a wakeup the
//! core must defer), the model says when the deferred work runs: at the next
//! reap or `run_deferred`.

use std::collections::HashMap;
use std::pin::Pin;

use aiopoll::{CancelError, Completion, Context, Events, Handle, Outcome, SubmitError};

use super::{fail_next_try_locks, try_lock_failures_left, Device, FaultLock};

/// Request slots of the context under test.
pub const SLOTS: usize = 4;
/// Wait queues one request may sit on.
pub const LIMIT: usize = 2;
/// How many sources the harness has (see [`sources`]).
pub const SOURCES: usize = 7;
/// The source whose registering `poll` panics.
pub const PANICS: usize = 6;

/// One operation of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Submit {
        source: usize,
        events: u16,
        user_data: u64,
    },
    SetReady {
        source: usize,
        events: u16,
    },
    Wake {
        source: usize,
        queue: usize,
        key: u16,
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
    Reap {
        max: usize,
    },
    RunDeferred,
    DropContext,
    /// Fault injection: the context lock's next `count` try-locks fail, so
    /// wakeups that would complete inline defer instead.
    FailTryLocks {
        count: u32,
    },
}

/// Builds the sources: 0 registers nowhere, 1, 2 and 3 on that many queues
/// (3 is over the limit), 4 wakes its own queue with IN inside `poll` and
/// reports unknown bits, 5 registers on its queue twice, 6 ([`PANICS`])
/// registers on its queue and then panics.
pub fn sources() -> [Device<FaultLock>; SOURCES] {
    let mut devices: [Device<FaultLock>; SOURCES] = core::array::from_fn(|source| {
        Device::new(match source {
            0 => 0,
            1 | 4 | 5 | PANICS => 1,
            2 => 2,
            _ => 3,
        })
    });
    devices[4].wakes_itself = Some(Events::IN);
    devices[4].unknown_bits = true;
    devices[5].registers_twice = true;
    devices[PANICS].panics = true;
    devices
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Waiting on `linked` queues; `pending`: a wakeup handed it to deferred
    /// work; `gone`: one of its queues closed.
    Armed {
        linked: Vec<usize>,
        pending: bool,
        gone: bool,
    },
    Completed(Outcome),
    /// Its context was dropped.
    Dropped,
}

#[derive(Clone, Debug)]
struct Request {
    source: usize,
    events: Events,
    user_data: u64,
    state: State,
}

/// The contract, written plainly.
#[derive(Default)]
pub struct Model {
    ready: [Events; SOURCES],
    closed: [[bool; 3]; SOURCES],
    requests: Vec<Request>,
    /// Completed, unreaped: indices into `requests`, in batches, oldest
    /// batch first. Inline completions are batches of one; one run of
    /// deferred work is one batch, whose order the contract leaves open.
    completed: Vec<Vec<usize>>,
    /// Armed or completed-but-unreaped.
    in_use: usize,
    /// Scheduled try-lock failures left.
    failures: u32,
}

fn queues_used(source: usize) -> usize {
    match source {
        0 => 0,
        1 | 4 | 5 => 1,
        2 => 2,
        _ => 3,
    }
}

impl Model {
    fn complete(&mut self, index: usize, outcome: Outcome) {
        self.requests[index].state = State::Completed(outcome);
        self.completed.push(vec![index]);
    }

    /// A wakeup tries the context lock: fails while failures are scheduled.
    fn try_lock(&mut self) -> bool {
        if self.failures > 0 {
            self.failures -= 1;
            false
        } else {
            true
        }
    }

    fn completions(&self) -> usize {
        self.completed.iter().map(Vec::len).sum()
    }

    fn submit(&mut self, source: usize, events: u16, user_data: u64) -> Result<usize, SubmitError> {
        let unknown = events & !Events::all().bits();
        if unknown != 0 {
            return Err(SubmitError::UnknownEvents {
                unknown: u32::from(unknown),
            });
        }
        if self.in_use == SLOTS {
            return Err(SubmitError::Busy);
        }
        let used = queues_used(source);
        if used > LIMIT {
            return Err(SubmitError::TooManyQueues { limit: LIMIT });
        }
        let events = Events::from_bits_retain(events) | Events::ERR | Events::HUP;
        let linked: Vec<usize> = (0..used)
            .filter(|&queue| !self.closed[source][queue])
            .collect();
        let any_closed = linked.len() < used;
        let ready = self.ready[source] & events;
        if ready.is_empty() && !any_closed && used == 0 {
            return Err(SubmitError::NotPollable);
        }
        self.in_use += 1;
        let index = self.requests.len();
        self.requests.push(Request {
            source,
            events,
            user_data,
            state: State::Armed {
                linked,
                pending: false,
                gone: false,
            },
        });
        if source == 4 && !self.closed[4][0] {
            // The source wakes its queue with IN while the submitter holds
            // the context lock: every matching waiter's wakeup is deferred,
            // the new request's included.
            for request in &mut self.requests {
                if let State::Armed {
                    linked, pending, ..
                } = &mut request.state
                {
                    if request.source == 4
                        && linked.contains(&0)
                        && request.events.intersects(Events::IN)
                    {
                        *pending = true;
                        // The wakeup tried the lock (and found it held).
                        self.failures = self.failures.saturating_sub(1);
                    }
                }
            }
        }
        if !ready.is_empty() {
            self.complete(index, Outcome::Ready(ready));
        } else if any_closed {
            self.complete(index, Outcome::SourceGone);
        }
        Ok(index)
    }

    fn wake(&mut self, source: usize, queue: usize, key: Events) -> usize {
        let mut woken = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed {
                linked, pending, ..
            } = &mut request.state
            else {
                continue;
            };
            if request.source != source || !linked.contains(&queue) {
                continue;
            }
            if key.is_empty() {
                *pending = true;
                woken += 1;
            } else if key.intersects(request.events) {
                woken += 1;
                let sole = linked.len() == 1;
                let outcome = Outcome::Ready(key & request.events);
                if self.try_lock() && sole {
                    self.complete(index, outcome);
                } else if let State::Armed { pending, .. } = &mut self.requests[index].state {
                    *pending = true;
                }
            }
        }
        woken
    }

    fn reopen(&mut self, source: usize, queue: usize) -> bool {
        core::mem::replace(&mut self.closed[source][queue], false)
    }

    fn close(&mut self, source: usize, queue: usize) -> usize {
        if self.closed[source][queue] {
            return 0;
        }
        self.closed[source][queue] = true;
        let mut woken = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed { linked, .. } = &mut request.state else {
                continue;
            };
            if request.source != source || !linked.contains(&queue) {
                continue;
            }
            woken += 1;
            linked.retain(|&other| other != queue);
            let sole = linked.is_empty();
            if self.try_lock() && sole {
                self.complete(index, Outcome::SourceGone);
            } else if let State::Armed { pending, gone, .. } = &mut self.requests[index].state {
                *pending = true;
                *gone = true;
            }
        }
        woken
    }

    fn cancel(&mut self, index: usize) -> Result<(), CancelError> {
        // A wakeup handed to deferred work before the cancel wins: cancel
        // runs that request's work first (T7 or T8).
        if let State::Armed {
            pending: pending @ true,
            gone,
            ..
        } = &mut self.requests[index].state
        {
            *pending = false;
            let gone = *gone;
            let request = &self.requests[index];
            let outcome = if gone {
                Some(Outcome::SourceGone)
            } else {
                let ready = self.ready[request.source] & request.events;
                (!ready.is_empty()).then_some(Outcome::Ready(ready))
            };
            if let Some(outcome) = outcome {
                self.complete(index, outcome);
                return Err(CancelError::NotFound);
            }
        }
        match self.requests[index].state {
            State::Armed { .. } => {
                self.complete(index, Outcome::Cancelled);
                Ok(())
            }
            State::Completed(_) | State::Dropped => Err(CancelError::NotFound),
        }
    }

    fn run_deferred(&mut self) -> usize {
        let batches = self.completed.len();
        let completed = self.run_deferred_unbatched();
        // Everything this run completed is one batch.
        let batch: Vec<usize> = self.completed.drain(batches..).flatten().collect();
        if !batch.is_empty() {
            self.completed.push(batch);
        }
        completed
    }

    fn run_deferred_unbatched(&mut self) -> usize {
        let mut completed = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed { pending, gone, .. } = &mut request.state else {
                continue;
            };
            if !*pending {
                continue;
            }
            *pending = false;
            let outcome = if *gone {
                Some(Outcome::SourceGone)
            } else {
                let ready = self.ready[request.source] & request.events;
                (!ready.is_empty()).then_some(Outcome::Ready(ready))
            };
            if let Some(outcome) = outcome {
                self.complete(index, outcome);
                completed += 1;
            }
        }
        completed
    }

    /// Checks a real reap of at most `max` against the model: the same
    /// number, oldest batch first, any order within a batch; then forgets
    /// what was reaped.
    fn reap(&mut self, max: usize, real: &[Completion]) -> Result<(), String> {
        self.run_deferred();
        let expected = max.min(self.completions());
        if real.len() != expected {
            return Err(format!(
                "reaped {} completions, model has {expected} to give",
                real.len()
            ));
        }
        for completion in real {
            let batch = &mut self.completed[0];
            let Some(position) = batch.iter().position(|&index| {
                let request = &self.requests[index];
                request.user_data == completion.user_data
                    && request.state == State::Completed(completion.outcome)
            }) else {
                let batch: Vec<_> = batch.iter().map(|&index| &self.requests[index]).collect();
                return Err(format!(
                    "reaped {completion:?}, the oldest completions are {batch:?}"
                ));
            };
            let index = batch.remove(position);
            if batch.is_empty() {
                self.completed.remove(0);
            }
            self.requests[index].state = State::Dropped;
            self.in_use -= 1;
        }
        Ok(())
    }

    fn drop_context(&mut self) {
        for request in &mut self.requests {
            request.state = State::Dropped;
        }
        self.completed.clear();
        self.in_use = 0;
    }
}

type Ctx<'s> = Context<'s, SLOTS, (FaultLock, super::FaultLock), LIMIT>;

/// What one run did, for the test command's report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Submits accepted.
    pub requests: u64,
    /// Completions reaped (each request exactly once).
    pub completions: u64,
    /// Of those, cancelled.
    pub cancelled: u64,
    /// Of those, completed by deferred work.
    pub deferred: u64,
    /// Queues closed and contexts dropped.
    pub teardowns: u64,
    /// Requests pending or unreaped when their context was dropped.
    pub abandoned: u64,
}

impl Counts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.completions += other.completions;
        self.cancelled += other.cancelled;
        self.deferred += other.deferred;
        self.teardowns += other.teardowns;
        self.abandoned += other.abandoned;
    }
}

/// Decodes a fuzzer's bytes: four bytes an operation, kind then three
/// arguments.
pub fn decode(data: &[u8]) -> Vec<Op> {
    data.chunks_exact(4)
        .map(|chunk| {
            let [kind, a, b, c] = [chunk[0], chunk[1], chunk[2], chunk[3]];
            let source = usize::from(a) % SOURCES;
            let events = u16::from_le_bytes([b, c]);
            match kind % 8 {
                0 | 1 => Op::Submit {
                    source,
                    events,
                    user_data: u64::from(c),
                },
                2 => Op::SetReady { source, events },
                3 => Op::Wake {
                    source,
                    queue: usize::from(b) % 3,
                    key: u16::from(c) | u16::from(b & 0x20) << 8,
                },
                4 if c & 0x80 != 0 => Op::Reopen {
                    source,
                    queue: usize::from(b) % 3,
                },
                4 => Op::Close {
                    source,
                    queue: usize::from(b) % 3,
                },
                5 => Op::Cancel {
                    nth: usize::from(a),
                },
                6 => Op::Reap {
                    max: usize::from(a) % 6,
                },
                _ if a % 4 == 0 => Op::DropContext,
                _ if a % 4 == 1 => Op::FailTryLocks {
                    count: u32::from(b % 4),
                },
                _ => Op::RunDeferred,
            }
        })
        .collect()
}

/// Runs `ops` against the model and the core; `Err` describes the first
/// difference.
pub fn run(ops: &[Op]) -> Result<Counts, String> {
    super::quiet_hostile_panics();
    let mut counts = Counts::default();
    fail_next_try_locks(0);
    let devices = sources();
    let mut context: Pin<Box<Ctx<'_>>> = Box::pin(Ctx::new());
    let mut model = Model::default();
    let mut handles: HashMap<usize, Handle> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();

    macro_rules! check {
        ($real:expr, $expected:expr, $op:expr) => {
            if $real != $expected {
                return Err(format!(
                    "{:?}: real {:?}, model {:?}",
                    $op, $real, $expected
                ));
            }
        };
    }

    for op in ops {
        match *op {
            Op::Submit {
                source,
                events,
                user_data,
            } if source == PANICS => {
                // The submit unwinds and changes nothing: no slot taken, no
                // entry left on the queue, the context still usable. The
                // model has no request to add.
                let in_use = context.in_use();
                let real = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    context.as_ref().submit(
                        &devices[source],
                        Events::from_bits_retain(events),
                        user_data,
                    )
                }));
                match real {
                    // Refused before `poll` ran (unknown bits, a full
                    // context): as the model says.
                    Ok(result) => {
                        let refused = result.err();
                        let expected = model.submit(source, events, user_data).err();
                        check!(refused, expected, op);
                        if refused.is_none() {
                            return Err(format!("{op:?}: the hostile poll did not panic"));
                        }
                    }
                    Err(_) if Events::from_bits(events).is_none() || in_use == SLOTS => {
                        return Err(format!("{op:?}: poll ran although the submit is refused"));
                    }
                    Err(_) => {}
                }
                if context.in_use() != in_use || !devices[source].queues[0].is_empty() {
                    return Err(format!(
                        "{op:?}: a panicking poll left a slot or an entry behind"
                    ));
                }
            }
            Op::Submit {
                source,
                events,
                user_data,
            } => {
                let real = context.as_ref().submit(
                    &devices[source],
                    Events::from_bits_retain(events),
                    user_data,
                );
                match (real, model.submit(source, events, user_data)) {
                    (Ok(handle), Ok(index)) => {
                        counts.requests += 1;
                        handles.insert(index, handle);
                        order.push(index);
                    }
                    (Err(real), Err(expected)) => check!(real, expected, op),
                    (real, expected) => {
                        return Err(format!("{op:?}: real {real:?}, model {expected:?}"))
                    }
                }
            }
            Op::SetReady { source, events } => {
                let events = Events::from_bits_truncate(events);
                devices[source].set_ready(events);
                model.ready[source] = events;
            }
            Op::Wake { source, queue, key } => {
                let key = Events::from_bits_truncate(key);
                let real = devices[source].queues[queue].wake(key);
                check!(real, model.wake(source, queue, key), op);
            }
            Op::Close { source, queue } => {
                let real = devices[source].queues[queue].close();
                check!(real, model.close(source, queue), op);
                counts.teardowns += 1;
            }
            Op::Reopen { source, queue } => {
                let real = devices[source].queues[queue].reopen();
                check!(real, model.reopen(source, queue), op);
            }
            Op::Cancel { nth } => {
                if order.is_empty() {
                    continue;
                }
                let index = order[nth % order.len()];
                let real = context.cancel(handles[&index]).map(|_| ());
                check!(real, model.cancel(index), op);
            }
            Op::Reap { max } => {
                let mut out = vec![Completion::EMPTY; max];
                let count = context.reap(&mut out);
                model
                    .reap(max, &out[..count])
                    .map_err(|error| format!("{op:?}: {error}"))?;
                counts.reaped(&out[..count]);
            }
            Op::RunDeferred => {
                check!(context.run_deferred(), model.run_deferred(), op);
            }
            Op::FailTryLocks { count } => {
                fail_next_try_locks(count);
                model.failures = count;
            }
            Op::DropContext => {
                counts.deferred += u64::from(context.stats().completed_by_deferred_work);
                counts.teardowns += 1;
                counts.abandoned += context.in_use() as u64;
                context = Box::pin(Ctx::new());
                model.drop_context();
                for device in &devices {
                    if device.queues.iter().any(|queue| !queue.is_empty()) {
                        return Err(format!("{op:?}: a request stayed queued"));
                    }
                }
            }
        }
        check!(try_lock_failures_left(), model.failures, op);
        check!(context.in_use(), model.in_use, op);
        check!(context.completions(), model.completions(), op);
    }
    // Tear down: cancel everything, reap everything; every request once.
    for index in order.iter().copied() {
        let real = context.cancel(handles[&index]).map(|_| ());
        check!(real, model.cancel(index), "final cancel");
    }
    let mut out = [Completion::EMPTY; SLOTS];
    let count = context.reap(&mut out);
    model
        .reap(SLOTS, &out[..count])
        .map_err(|error| format!("final reap: {error}"))?;
    counts.reaped(&out[..count]);
    counts.deferred += u64::from(context.stats().completed_by_deferred_work);
    check!(context.in_use(), 0, "final in_use");
    for device in &devices {
        if device.queues.iter().any(|queue| !queue.is_empty()) {
            return Err("a request stayed queued at the end".into());
        }
    }
    Ok(counts)
}

impl Counts {
    fn reaped(&mut self, completions: &[Completion]) {
        self.completions += completions.len() as u64;
        self.cancelled += completions
            .iter()
            .filter(|c| c.outcome == Outcome::Cancelled)
            .count() as u64;
    }
}

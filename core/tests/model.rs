//! Property test: random operation sequences against a plain reference model
//! of the contract, comparing every return value and every completion.
//!
//! The model is single-threaded and knows no locks: it is the contract as a
//! user would write it down. Where the contract leaves timing to the
//! implementation (a wakeup the core must defer), the model says when the
//! deferred work runs: at the next reap or `run_deferred`.

mod support;

use std::collections::HashMap;
use std::pin::pin;

use aiopoll::{CancelError, Completion, Context, Events, Handle, Outcome, SubmitError};
use proptest::prelude::*;
use support::Device;

const SLOTS: usize = 4;
const LIMIT: usize = 2;
/// Sources: queues used 0 (cannot wait), 1, 2, and 3 (over the limit).
const QUEUES_USED: [usize; 4] = [0, 1, 2, 3];

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
    Wake {
        source: usize,
        queue: usize,
        key: u16,
    },
    Close {
        source: usize,
        queue: usize,
    },
    Cancel {
        nth: usize,
    },
    Reap,
    RunDeferred,
}

fn events() -> impl Strategy<Value = u16> {
    // Mostly IN/OUT/ERR/HUP so that masks meet; sometimes anything.
    prop_oneof![
        4 => prop::sample::select(vec![0x1u16, 0x4, 0x5, 0x8, 0x10, 0x0, 0x41]),
        1 => any::<u16>().prop_map(|bits| bits & 0x27ff),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, events(), 0..1000u64)
            .prop_map(|(source, events, user_data)| Op::Submit { source, events, user_data }),
        3 => (0..4usize, events()).prop_map(|(source, events)| Op::SetReady { source, events }),
        4 => (0..4usize, 0..3usize, events())
            .prop_map(|(source, queue, key)| Op::Wake { source, queue, key }),
        1 => (0..4usize, 0..3usize).prop_map(|(source, queue)| Op::Close { source, queue }),
        2 => (0..16usize).prop_map(|nth| Op::Cancel { nth }),
        2 => Just(Op::Reap),
        1 => Just(Op::RunDeferred),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Waiting on `linked` queues of its source; `pending`: a wakeup handed
    /// it to deferred work; `gone`: one of its queues closed.
    Armed {
        linked: Vec<usize>,
        pending: bool,
        gone: bool,
    },
    Completed(Outcome),
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
struct Model {
    ready: [Events; 4],
    closed: [[bool; 3]; 4],
    requests: Vec<Request>,
    /// Completed, unreaped: indices into `requests`.
    completed: Vec<usize>,
    /// Slots in use: armed or completed-but-unreaped.
    in_use: usize,
}

impl Model {
    fn complete(&mut self, index: usize, outcome: Outcome) {
        self.requests[index].state = State::Completed(outcome);
        self.completed.push(index);
    }

    fn submit(&mut self, source: usize, events: u16, user_data: u64) -> Result<usize, SubmitError> {
        let requested = Events::from_bits_retain(events);
        if requested.bits() & !Events::all().bits() != 0 {
            return Err(SubmitError::UnknownEvents {
                unknown: u32::from(requested.bits() & !Events::all().bits()),
            });
        }
        if self.in_use == SLOTS {
            return Err(SubmitError::Busy);
        }
        let used = QUEUES_USED[source];
        if used > LIMIT {
            return Err(SubmitError::TooManyQueues { limit: LIMIT });
        }
        let events = requested | Events::ERR | Events::HUP;
        let ready = self.ready[source] & events;
        let any_closed = (0..used).any(|queue| self.closed[source][queue]);
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
                linked: (0..used).collect(),
                pending: false,
                gone: false,
            },
        });
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
                if linked.len() == 1 {
                    let outcome = Outcome::Ready(key & request.events);
                    self.complete(index, outcome);
                } else {
                    *pending = true;
                }
            }
        }
        woken
    }

    fn close(&mut self, source: usize, queue: usize) -> usize {
        if self.closed[source][queue] {
            return 0;
        }
        self.closed[source][queue] = true;
        let mut woken = 0;
        for index in 0..self.requests.len() {
            let request = &mut self.requests[index];
            let State::Armed {
                linked,
                pending,
                gone,
            } = &mut request.state
            else {
                continue;
            };
            if request.source != source || !linked.contains(&queue) {
                continue;
            }
            woken += 1;
            linked.retain(|&other| other != queue);
            if linked.is_empty() {
                self.complete(index, Outcome::SourceGone);
            } else {
                *pending = true;
                *gone = true;
            }
        }
        woken
    }

    fn cancel(&mut self, index: usize) -> Result<(), CancelError> {
        match self.requests[index].state {
            State::Armed { .. } => {
                self.complete(index, Outcome::Cancelled);
                Ok(())
            }
            State::Completed(_) => Err(CancelError::NotFound),
        }
    }

    fn run_deferred(&mut self) -> usize {
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

    fn reap(&mut self) -> Vec<Completion> {
        self.run_deferred();
        let reaped: Vec<Completion> = self
            .completed
            .drain(..)
            .map(|index| {
                let State::Completed(outcome) = self.requests[index].state else {
                    unreachable!()
                };
                Completion {
                    user_data: self.requests[index].user_data,
                    outcome,
                }
            })
            .collect();
        self.in_use -= reaped.len();
        reaped
    }
}

fn sorted(mut completions: Vec<Completion>) -> Vec<(u64, String)> {
    let mut keyed: Vec<(u64, String)> = completions
        .drain(..)
        .map(|c| (c.user_data, format!("{:?}", c.outcome)))
        .collect();
    keyed.sort();
    keyed
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let devices: [Device; 4] = core::array::from_fn(|source| Device::new(QUEUES_USED[source]));
    let context = pin!(Context::<'_, SLOTS, aiopoll::SpinLocks, LIMIT>::new());
    let mut model = Model::default();
    // Handles of accepted submits, by model index.
    let mut handles: HashMap<usize, Handle> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();

    for op in ops {
        match *op {
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
                let expected = model.submit(source, events, user_data);
                match (real, expected) {
                    (Ok(handle), Ok(index)) => {
                        handles.insert(index, handle);
                        order.push(index);
                    }
                    (Err(real), Err(expected)) => prop_assert_eq!(real, expected),
                    (real, expected) => {
                        prop_assert!(false, "{op:?}: real {real:?}, model {expected:?}")
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
                let expected = if queue < QUEUES_USED[source].min(LIMIT) {
                    model.wake(source, queue, key)
                } else {
                    0
                };
                prop_assert_eq!(real, expected, "{:?}", op);
            }
            Op::Close { source, queue } => {
                let real = devices[source].queues[queue].close();
                let expected = model.close(source, queue);
                prop_assert_eq!(real, expected, "{:?}", op);
            }
            Op::Cancel { nth } => {
                if order.is_empty() {
                    continue;
                }
                let index = order[nth % order.len()];
                let real = context.cancel(handles[&index]).map(|_| ());
                prop_assert_eq!(real, model.cancel(index), "{:?}", op);
            }
            Op::Reap => {
                let mut out = [Completion::EMPTY; SLOTS];
                let count = context.reap(&mut out);
                prop_assert_eq!(sorted(out[..count].to_vec()), sorted(model.reap()));
            }
            Op::RunDeferred => {
                prop_assert_eq!(context.run_deferred(), model.run_deferred());
            }
        }
        prop_assert_eq!(context.in_use(), model.in_use);
        prop_assert_eq!(context.completions(), model.completed.len());
    }
    // Tear down: cancel everything, reap everything; every request once.
    for index in order.iter().copied() {
        let real = context.cancel(handles[&index]).map(|_| ());
        prop_assert_eq!(real, model.cancel(index));
    }
    let mut out = [Completion::EMPTY; SLOTS];
    let count = context.reap(&mut out);
    prop_assert_eq!(sorted(out[..count].to_vec()), sorted(model.reap()));
    prop_assert_eq!(context.in_use(), 0);
    for device in &devices {
        prop_assert!(device.queues.iter().all(|queue| queue.is_empty()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_reference_model(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}

//! A model of the hand-offs, checked over every interleaving.
//!
//! Reapers, the poller thread, the kernel raising edges and threads
//! completing non-`Fd` requests are small state machines whose steps are
//! the atomic steps of the real code: a transition of [`Role`] (the real
//! one, under the driver's mutex), an atomic load or store of the
//! `in_poller` flag or of a context's epoch (all SeqCst, so a step each, in
//! one total order), an `epoll_wait` that returns once an edge or the
//! notification eventfd is ready, a sleep on a bell that returns once the
//! epoch moved. Timeouts never fire and the poller thread's tick fires at
//! most a bounded number of times, so every waiter must be served by the
//! hand-offs themselves. A depth-first search runs every interleaving and
//! checks that each one ends with every reaper served, every edge of a
//! waiter collected and every awaited request completed, with no thread
//! left asleep for want of a wake-up.
//!
//! Three faults injected into the protocol must each produce a stranded
//! waiter (so the check can fail): a leader that does not raise its
//! `in_poller` flag, a hand-off that does not ring the follower it chose,
//! and one that does not call the poller thread.

#![cfg_attr(miri, allow(dead_code))]

use std::collections::HashSet;

use super::{Arrival, HandOff, Look, Role, Standby};

/// A reaper's program counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Reaper {
    /// Reads its context's epoch (`seen`), before reaping.
    ReadEpoch,
    /// Reaps (under the context lock).
    Reap {
        seen: u8,
    },
    /// Found too little: arrives at the role.
    Arrive {
        seen: u8,
    },
    /// Leads: raises `in_poller`.
    SetFlag {
        seen: u8,
    },
    /// Leads: reads the epoch a last time.
    CheckEpoch {
        seen: u8,
    },
    /// Leads: in `epoll_wait`.
    Epoll,
    /// Leads: `epoll_wait` returned; lowers `in_poller` before the wakeups
    /// (its own completions need not end a wait that is over).
    Collected {
        edges: Vec<usize>,
    },
    /// Leads: runs the keyed wakeups of what it collected.
    Wake {
        edges: Vec<usize>,
    },
    /// Leads: lowers `in_poller` (again, after the wakeups, as `wait`
    /// does; or without having waited).
    ClearFlag,
    /// Leads: releases the role.
    Release,
    /// Carries out a hand-off, then goes on at `then`.
    Settle {
        hand_off: HandOff<usize>,
        then: Box<Reaper>,
    },
    /// Follows: asleep on its bell.
    Sleep {
        seen: u8,
        id: u64,
    },
    /// Follows: woke, leaves the followers.
    Leave {
        id: u64,
    },
    /// Served: returns from `get_events`, passing the role on if obliged.
    Return,
    Done,
}

/// The poller thread's program counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Thread {
    Look,
    Watching,
    Parked,
    Epoll,
    Wake { edges: Vec<usize> },
    Round,
    Settle(HandOff<usize>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReaperState {
    context: usize,
    want: u8,
    got: u8,
    obliged: bool,
    pc: Reaper,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    role: Role<usize>,
    /// Per context: epoch, `in_poller`, completions waiting to be reaped.
    epoch: Vec<u8>,
    in_poller: Vec<bool>,
    completions: Vec<u8>,
    /// Edges raised in the kernel and not collected yet, by the context
    /// whose request they complete.
    ready: Vec<usize>,
    /// Edges still to be raised, in order (the kernel raises them at any
    /// moment, one step each).
    to_raise: Vec<usize>,
    /// Non-`Fd` completions still to come, by context.
    to_complete: Vec<usize>,
    /// The notification eventfd is readable.
    notified: bool,
    reapers: Vec<ReaperState>,
    thread: Thread,
    /// The poller thread's park token (`unpark` before `park`).
    token: bool,
    last: Option<u64>,
    ticks_left: u8,
    /// Awaited requests pending (the demand), by the context standing for
    /// them: an edge for it completes one.
    awaited: Vec<usize>,
}

/// Faults to inject, to show that the check catches them.
#[derive(Clone, Copy, Default)]
struct Faults {
    no_in_poller_flag: bool,
    no_ring: bool,
    no_call: bool,
}

struct Scenario {
    /// Reapers: (context, completions wanted).
    reapers: Vec<(usize, u8)>,
    contexts: usize,
    edges: Vec<usize>,
    completions: Vec<usize>,
    /// Awaited requests, by context (one with no reaper).
    awaited: Vec<usize>,
    ticks: u8,
}

impl State {
    fn new(scenario: &Scenario) -> State {
        let mut role = Role::new();
        role.thread_started();
        State {
            role,
            epoch: vec![0; scenario.contexts],
            in_poller: vec![false; scenario.contexts],
            completions: vec![0; scenario.contexts],
            ready: Vec::new(),
            to_raise: scenario.edges.clone(),
            to_complete: scenario.completions.clone(),
            notified: false,
            reapers: scenario
                .reapers
                .iter()
                .map(|&(context, want)| ReaperState {
                    context,
                    want,
                    got: 0,
                    obliged: false,
                    pc: Reaper::ReadEpoch,
                })
                .collect(),
            thread: Thread::Look,
            token: false,
            last: None,
            ticks_left: scenario.ticks,
            awaited: scenario.awaited.clone(),
        }
    }

    fn urgent(&self) -> bool {
        !self.awaited.is_empty()
    }

    /// A context's bell: its epoch moves, and a reaper of it in the poller
    /// is notified.
    fn ring(&mut self, context: usize) {
        self.epoch[context] = self.epoch[context].wrapping_add(1);
        if self.in_poller[context] {
            self.notified = true;
        }
    }

    /// A collected edge's keyed wakeup: its request completes.
    fn wake(&mut self, context: usize) {
        if let Some(index) = self.awaited.iter().position(|&c| c == context) {
            // An awaited request: its task is woken, no bell.
            self.awaited.swap_remove(index);
        } else {
            self.completions[context] += 1;
            self.ring(context);
        }
    }

    /// `epoll_wait` returns when something is ready: it collects every
    /// edge and the notification.
    fn collect(&mut self) -> Option<Vec<usize>> {
        if self.ready.is_empty() && !self.notified {
            return None;
        }
        self.notified = false;
        let mut edges = core::mem::take(&mut self.ready);
        edges.sort_unstable();
        Some(edges)
    }

    fn settle(&mut self, hand_off: &HandOff<usize>, faults: Faults) {
        match *hand_off {
            HandOff::Ring(context) if !faults.no_ring => self.ring(context),
            HandOff::CallThread if !faults.no_call => self.token = true,
            _ => {}
        }
    }

    /// Every state one step of one actor leads to.
    fn successors(&self, faults: Faults) -> Vec<State> {
        let mut next = Vec::new();
        if let Some((&context, rest)) = self.to_raise.split_first() {
            let mut s = self.clone();
            s.to_raise = rest.to_vec();
            s.ready.push(context);
            next.push(s);
        }
        if let Some((&context, rest)) = self.to_complete.split_first() {
            let mut s = self.clone();
            s.to_complete = rest.to_vec();
            s.completions[context] += 1;
            s.ring(context);
            next.push(s);
        }
        for index in 0..self.reapers.len() {
            if let Some(s) = self.reaper_step(index, faults) {
                next.push(s);
            }
        }
        next.extend(self.thread_steps(faults));
        next
    }

    fn reaper_step(&self, index: usize, faults: Faults) -> Option<State> {
        let mut s = self.clone();
        let urgent = s.urgent();
        let context = s.reapers[index].context;
        let pc = s.reapers[index].pc.clone();
        let pc = match pc {
            Reaper::ReadEpoch => Reaper::Reap {
                seen: self.epoch[context],
            },
            Reaper::Reap { seen } => {
                let reaper = &mut s.reapers[index];
                let take = s.completions[context].min(reaper.want - reaper.got);
                s.completions[context] -= take;
                reaper.got += take;
                if reaper.got == reaper.want {
                    Reaper::Return
                } else {
                    Reaper::Arrive { seen }
                }
            }
            Reaper::Arrive { seen } => {
                s.reapers[index].obliged = false;
                match s.role.arrive(context) {
                    Arrival::Lead => Reaper::SetFlag { seen },
                    Arrival::Follow(id) => Reaper::Sleep { seen, id },
                }
            }
            Reaper::SetFlag { seen } => {
                if !faults.no_in_poller_flag {
                    s.in_poller[context] = true;
                }
                Reaper::CheckEpoch { seen }
            }
            Reaper::CheckEpoch { seen } => {
                if s.epoch[context] == seen {
                    Reaper::Epoll
                } else {
                    Reaper::ClearFlag
                }
            }
            Reaper::Epoll => Reaper::Collected {
                edges: s.collect()?,
            },
            Reaper::Collected { edges } => {
                s.in_poller[context] = false;
                Reaper::Wake { edges }
            }
            Reaper::Wake { mut edges } => match edges.pop() {
                Some(edge) => {
                    s.wake(edge);
                    Reaper::Wake { edges }
                }
                None => Reaper::ClearFlag,
            },
            Reaper::ClearFlag => {
                s.in_poller[context] = false;
                Reaper::Release
            }
            Reaper::Release => Reaper::Settle {
                hand_off: s.role.release(urgent),
                then: Box::new(Reaper::ReadEpoch),
            },
            Reaper::Settle { hand_off, then } => {
                s.settle(&hand_off, faults);
                *then
            }
            Reaper::Sleep { seen, id } => {
                if s.epoch[context] == seen {
                    return None;
                }
                Reaper::Leave { id }
            }
            Reaper::Leave { id } => {
                let rung = s.role.leave(id);
                s.reapers[index].obliged = rung;
                Reaper::ReadEpoch
            }
            Reaper::Return => {
                if s.reapers[index].obliged {
                    s.reapers[index].obliged = false;
                    Reaper::Settle {
                        hand_off: s.role.pass_on(urgent),
                        then: Box::new(Reaper::Done),
                    }
                } else {
                    Reaper::Done
                }
            }
            Reaper::Done => return None,
        };
        s.reapers[index].pc = pc;
        Some(s)
    }

    fn thread_steps(&self, faults: Faults) -> Vec<State> {
        let mut next = Vec::new();
        let mut s = self.clone();
        let urgent = s.urgent();
        s.thread = match self.thread.clone() {
            Thread::Look => match s.role.thread_look(&mut s.last, urgent) {
                Look::Drive => Thread::Epoll,
                Look::Watch => Thread::Watching,
                Look::Park => Thread::Parked,
            },
            Thread::Watching => {
                // The tick, while it has some left.
                if s.ticks_left > 0 {
                    let mut ticked = s.clone();
                    ticked.ticks_left -= 1;
                    ticked.thread = Thread::Look;
                    next.push(ticked);
                }
                if !s.token {
                    return next;
                }
                s.token = false;
                Thread::Look
            }
            Thread::Parked => {
                if !s.token {
                    return next;
                }
                s.token = false;
                Thread::Look
            }
            Thread::Epoll => match s.collect() {
                Some(edges) => Thread::Wake { edges },
                None => return next,
            },
            Thread::Wake { mut edges } => match edges.pop() {
                Some(edge) => {
                    s.wake(edge);
                    Thread::Wake { edges }
                }
                None => Thread::Round,
            },
            Thread::Round => match s.role.thread_round(&mut s.last, urgent) {
                Some(hand_off) => Thread::Settle(hand_off),
                None => Thread::Epoll,
            },
            Thread::Settle(hand_off) => {
                // Then it watches: it looks again at a tick, or when called.
                s.settle(&hand_off, faults);
                Thread::Watching
            }
        };
        next.push(s);
        next
    }

    /// What is wrong with a state where nothing can move, if anything.
    fn stranded(&self) -> Option<String> {
        for (index, reaper) in self.reapers.iter().enumerate() {
            if reaper.pc != Reaper::Done {
                return Some(format!("reaper {index} is stuck at {:?}", reaper.pc));
            }
        }
        if !self.awaited.is_empty() {
            return Some(format!(
                "awaited requests of contexts {:?} never completed",
                self.awaited
            ));
        }
        None
    }
}

/// Explores every interleaving; returns the number of states, or the first
/// stranded state with the path that led to it.
fn check(scenario: &Scenario, faults: Faults) -> Result<usize, String> {
    let start = State::new(scenario);
    let mut seen = HashSet::new();
    let mut stack = vec![(start, 0usize)];
    const DEPTH: usize = 400;
    while let Some((state, depth)) = stack.pop() {
        if !seen.insert(state.clone()) {
            continue;
        }
        if depth > DEPTH {
            return Err(format!("no end after {DEPTH} steps: {state:#?}"));
        }
        let next = state.successors(faults);
        if next.is_empty() {
            if let Some(problem) = state.stranded() {
                return Err(format!("{problem}: {state:#?}"));
            }
        }
        stack.extend(next.into_iter().map(|s| (s, depth + 1)));
    }
    Ok(seen.len())
}

fn two_reapers(ticks: u8) -> Scenario {
    Scenario {
        reapers: vec![(0, 1), (0, 1)],
        contexts: 1,
        edges: vec![0, 0],
        completions: vec![],
        awaited: vec![],
        ticks,
    }
}

fn non_fd_completion_while_leading() -> Scenario {
    Scenario {
        reapers: vec![(0, 1)],
        contexts: 1,
        edges: vec![],
        completions: vec![0],
        awaited: vec![],
        ticks: 1,
    }
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn two_reapers_of_one_context_share_the_poller() {
    // The leader leaves while completions arrive: its follower is rung.
    for ticks in 0..=1 {
        let states = check(&two_reapers(ticks), Faults::default()).unwrap();
        assert!(states > 1000, "{states} states");
    }
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn a_non_fd_completion_ends_the_leaders_wait() {
    check(&non_fd_completion_while_leading(), Faults::default()).unwrap();
    // With an edge too, and a second reaper.
    let scenario = Scenario {
        reapers: vec![(0, 1), (0, 1)],
        contexts: 1,
        edges: vec![0],
        completions: vec![0],
        awaited: vec![],
        ticks: 0,
    };
    check(&scenario, Faults::default()).unwrap();
}

fn two_contexts(ticks: u8) -> Scenario {
    Scenario {
        reapers: vec![(0, 1), (1, 1)],
        contexts: 2,
        edges: vec![0, 1],
        completions: vec![],
        awaited: vec![],
        ticks,
    }
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn reapers_of_two_contexts_share_the_poller() {
    // The leader's completions do not move the follower's epoch: only the
    // hand-off's ring wakes it to take the role.
    for ticks in 0..=1 {
        check(&two_contexts(ticks), Faults::default()).unwrap();
    }
    // One reaper wanting two, and one more edge.
    let scenario = Scenario {
        reapers: vec![(0, 1), (1, 2)],
        edges: vec![1, 0, 1],
        ..two_contexts(0)
    };
    check(&scenario, Faults::default()).unwrap();
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn an_awaited_request_completes_after_the_reapers_leave() {
    // Context 1 has no reaper: an awaited request waits on it. Without a
    // tick, the poller thread must be called when the reaper leaves.
    let scenario = Scenario {
        reapers: vec![(0, 1)],
        contexts: 2,
        edges: vec![0, 1],
        completions: vec![],
        awaited: vec![1],
        ticks: 0,
    };
    check(&scenario, Faults::default()).unwrap();
    // And with the poller thread parked (a tick lets it see the role held).
    let scenario = Scenario {
        ticks: 2,
        ..scenario
    };
    check(&scenario, Faults::default()).unwrap();
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn the_poller_thread_hands_the_role_to_a_follower() {
    // The thread takes the role first; the reaper follows, and collects
    // the second edge itself or gets it relayed.
    let scenario = Scenario {
        reapers: vec![(0, 2)],
        contexts: 1,
        edges: vec![0, 0],
        completions: vec![0],
        awaited: vec![],
        ticks: 2,
    };
    check(&scenario, Faults::default()).unwrap();
}

#[test]
#[cfg(not(miri))] // Too many interleavings for the interpreter.
fn the_check_finds_each_injected_fault() {
    let no_flag = Faults {
        no_in_poller_flag: true,
        ..Faults::default()
    };
    let error = check(&non_fd_completion_while_leading(), no_flag).unwrap_err();
    assert!(error.contains("stuck at Epoll"), "{error}");

    let no_ring = Faults {
        no_ring: true,
        ..Faults::default()
    };
    // (A tick would let the poller thread relay the edge instead.)
    let error = check(&two_contexts(0), no_ring).unwrap_err();
    assert!(error.contains("stuck at Sleep"), "{error}");

    let no_call = Faults {
        no_call: true,
        ..Faults::default()
    };
    let scenario = Scenario {
        reapers: vec![(0, 1)],
        contexts: 2,
        edges: vec![0, 1],
        completions: vec![],
        awaited: vec![1],
        ticks: 0,
    };
    let error = check(&scenario, no_call).unwrap_err();
    assert!(error.contains("never completed"), "{error}");
}

#[test]
fn a_vacant_role_is_taken_by_the_watching_thread_after_a_whole_tick() {
    let mut role: Role<usize> = Role::new();
    role.thread_started();
    let mut last = None;
    // Started: takes the vacant role at once.
    assert_eq!(role.thread_look(&mut last, false), Look::Drive);
    // While urgent with no follower, it keeps the role.
    assert_eq!(role.thread_round(&mut last, true), None);
    // A reaper follows; the thread gives it the role after its round.
    let Arrival::Follow(id) = role.arrive(7) else {
        panic!("the thread holds the role")
    };
    assert_eq!(role.thread_round(&mut last, true), Some(HandOff::Ring(7)));
    assert!(role.leave(id));
    assert_eq!(role.arrive(7), Arrival::Lead);
    // Held for a whole tick: the thread parks, and the release calls it.
    assert_eq!(role.thread_look(&mut last, false), Look::Park);
    assert_eq!(role.standby(), Standby::Parked);
    assert_eq!(role.release(false), HandOff::CallThread);
    // Called without urgency: it watches, and takes the role only once it
    // has stayed vacant for a whole tick.
    assert_eq!(role.thread_look(&mut last, false), Look::Watch);
    assert_eq!(role.thread_look(&mut last, false), Look::Drive);
    // Without urgency, one round, and the role is vacant again.
    assert_eq!(role.thread_round(&mut last, false), Some(HandOff::None));
    assert_eq!(role.holder(), super::Holder::Vacant);
}

//! Who waits in the OS poller: the *role* and its hand-offs (Linux).
//!
//! One epoll instance serves every [`Fd`](crate::Fd) of the program, and at
//! most one thread waits in it at a time: the *holder* of the role. A reaper
//! in [`get_events`](crate::StdContext::get_events) that finds nothing
//! takes the role if it is vacant (it *leads*: it waits in `epoll_wait`
//! and runs the keyed wakeups of the edges it collects itself), or else
//! registers as a *follower* and sleeps on its context's condition variable
//! (the *bell*). The poller thread (`aiopoll-fd`) is the stand-by: it takes
//! the role when nobody else has for a while, or at once when called.
//!
//! This module is the state machine alone, with no OS and no lock: the
//! driver (`fd.rs`) keeps a [`Role`] under its mutex and carries out the
//! [`HandOff`] each transition returns once it has released the mutex. It
//! is generic over the bell `B` (what a hand-off rings), so that the model
//! test below can run every interleaving of the hand-offs on it.
//!
//! The invariant: **whenever the role is vacant, somebody is obliged to take
//! it or to pass it on**, and will run to do so: a follower that was rung
//! (it will lead, or pass the obligation on before it leaves
//! `get_events`), or the poller thread, called (it takes the role at once)
//! or watching (it takes it once it has stayed vacant for a whole tick).
//! The poller thread parks without a tick only while a reaper holds the
//! role, and the release that ends that calls it. So an edge is never left
//! in the kernel with nobody ever to collect it, and a follower never
//! sleeps while the role is vacant with nobody obliged to take it.

/// Who holds the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// Nobody waits in the OS poller.
    Vacant,
    /// A reaper (or a caller of `catch_up`, or a non-blocking reap driving
    /// the poller once).
    Reaper,
    /// The poller thread.
    Thread,
}

/// What the poller thread does while it does not hold the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Standby {
    /// There is no poller thread (no `Fd` is registered).
    Absent,
    /// It looks at the role once per tick, and takes it once it has stayed
    /// vacant for a whole tick.
    Watching,
    /// It sleeps without a tick: a reaper has held the role for a whole
    /// tick (the program is idle). The release that ends that calls it.
    Parked,
}

/// What the caller of a transition must do once it has released the
/// driver's mutex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use = "a hand-off must be carried out, or the role may stay vacant with nobody to take it"]
pub(crate) enum HandOff<B> {
    /// Nothing.
    None,
    /// Ring this follower's bell: it wakes, and leads or passes the role on.
    Ring(B),
    /// Unpark the poller thread: it takes the role at once if it is still
    /// vacant.
    CallThread,
}

/// How a reaper that found nothing waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// It holds the role: it waits in the OS poller, then releases.
    Lead,
    /// It is follower number `id`: it sleeps on its bell, then calls
    /// [`Role::leave`] with the id.
    Follow(u64),
}

/// What the poller thread does after a look at the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// It holds the role now: wait in the OS poller.
    Drive,
    /// Look again in a tick.
    Watch,
    /// Sleep until called.
    Park,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Follower<B> {
    id: u64,
    bell: B,
    /// Its bell was rung for the role: it is obliged to lead or pass on.
    rung: bool,
}

/// The role and everything its hand-offs decide on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Role<B> {
    holder: Holder,
    /// Incremented whenever the role becomes vacant: the poller thread
    /// compares it between two looks to tell a vacancy that lasted a whole
    /// tick (or a holding that did) from a busy hand-over.
    vacancies: u64,
    followers: Vec<Follower<B>>,
    next_id: u64,
    standby: Standby,
    /// The poller thread was called: it takes a vacant role at its next look.
    called: bool,
}

impl<B: Clone> Role<B> {
    /// A vacant role, with no poller thread yet.
    pub(crate) const fn new() -> Self {
        Role {
            holder: Holder::Vacant,
            vacancies: 0,
            followers: Vec::new(),
            next_id: 0,
            standby: Standby::Absent,
            called: false,
        }
    }

    /// Who holds the role.
    pub(crate) fn holder(&self) -> Holder {
        self.holder
    }

    /// What the poller thread does when it does not hold the role.
    #[cfg(test)]
    pub(crate) fn standby(&self) -> Standby {
        self.standby
    }

    /// A reaper found nothing and will wait: it leads if the role is
    /// vacant, or else follows (sleeps on `bell`). A follower must be rung
    /// (or see its context's completions) to wake: the epoch it read before
    /// it reaped tells it whether either happened since.
    pub(crate) fn arrive(&mut self, bell: B) -> Arrival {
        if self.holder == Holder::Vacant {
            self.holder = Holder::Reaper;
            return Arrival::Lead;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.followers.push(Follower {
            id,
            bell,
            rung: false,
        });
        Arrival::Follow(id)
    }

    /// Takes the role if it is vacant, to drive the OS poller without
    /// following anybody (a non-blocking reap, `catch_up`); release it as a
    /// leader does.
    pub(crate) fn try_take(&mut self) -> bool {
        if self.holder == Holder::Vacant {
            self.holder = Holder::Reaper;
            true
        } else {
            false
        }
    }

    /// A follower woke (rung, or for a completion, or its timeout passed):
    /// it is no longer registered. Returns whether it had been rung: then
    /// it is obliged to take the role (it arrives again and finds it
    /// vacant) or to [`pass_on`](Self::pass_on) before it leaves
    /// `get_events`.
    pub(crate) fn leave(&mut self, id: u64) -> bool {
        match self.followers.iter().position(|f| f.id == id) {
            Some(index) => self.followers.remove(index).rung,
            None => false,
        }
    }

    /// A rung follower that did not stay registered decides later whether
    /// it leads: if it leaves `get_events` instead, it passes the role on
    /// with this.
    pub(crate) fn pass_on(&mut self, urgent: bool) -> HandOff<B> {
        if self.holder == Holder::Vacant {
            self.hand_off(urgent)
        } else {
            HandOff::None
        }
    }

    /// The holder (a reaper) leaves the OS poller.
    pub(crate) fn release(&mut self, urgent: bool) -> HandOff<B> {
        self.holder = Holder::Vacant;
        self.vacancies = self.vacancies.wrapping_add(1);
        self.hand_off(urgent)
    }

    /// Somebody must take the vacant role: a follower already rung will;
    /// else ring the first follower; else wake the poller thread if it
    /// sleeps without a tick (it watches again), and call it if `urgent`
    /// (awaited requests or a completion descriptor wait, or a `catch_up`)
    /// so that it takes the role at once instead of at its next tick.
    fn hand_off(&mut self, urgent: bool) -> HandOff<B> {
        if self.followers.iter().any(|f| f.rung) {
            return HandOff::None;
        }
        if let Some(follower) = self.followers.first_mut() {
            follower.rung = true;
            return HandOff::Ring(follower.bell.clone());
        }
        match self.standby {
            // Idle until now: it watches again (and takes the role at its
            // next tick if the vacancy lasts, or at once if `urgent`).
            Standby::Parked => {
                self.standby = Standby::Watching;
                self.called = urgent;
                HandOff::CallThread
            }
            Standby::Watching if urgent && !self.called => {
                self.called = true;
                HandOff::CallThread
            }
            Standby::Watching | Standby::Absent => HandOff::None,
        }
    }

    /// Demand that cannot wait for a tick appeared (the first awaited
    /// request, a completion descriptor): call the poller thread if the
    /// role is vacant and no follower is rung to take it.
    pub(crate) fn urge(&mut self) -> HandOff<B> {
        if self.holder == Holder::Vacant && !self.followers.iter().any(|f| f.rung) {
            self.hand_off(true)
        } else {
            HandOff::None
        }
    }

    /// The poller thread started (or restarted): it takes the role at its
    /// first look if it is vacant.
    pub(crate) fn thread_started(&mut self) {
        self.standby = Standby::Watching;
        self.called = true;
    }

    /// The poller thread looks at the role (when it starts, at each tick,
    /// and when called). `last` is the vacancy count of its previous look.
    pub(crate) fn thread_look(&mut self, last: &mut Option<u64>, urgent: bool) -> Look {
        let seen = Some(self.vacancies);
        let called = core::mem::replace(&mut self.called, false);
        match self.holder {
            Holder::Vacant if called || urgent || *last == seen => {
                self.holder = Holder::Thread;
                Look::Drive
            }
            Holder::Reaper if !called && *last == seen => {
                // Held for a whole tick, with no vacancy: idle. The release
                // that ends it calls the thread.
                self.standby = Standby::Parked;
                Look::Park
            }
            Holder::Thread => Look::Drive,
            Holder::Vacant | Holder::Reaper => {
                *last = seen;
                self.standby = Standby::Watching;
                Look::Watch
            }
        }
    }

    /// The poller thread collected one round of edges. It keeps the role
    /// only while `urgent` and no reaper follows: a follower gets the role
    /// (it collects the next edges itself), and without urgency the role
    /// goes vacant for the reapers to take when they run out of work (the
    /// thread watches, and collects again if it stays vacant for a tick).
    /// So while reapers are busy, the thread runs about one round per tick,
    /// not one per edge.
    pub(crate) fn thread_round(
        &mut self,
        last: &mut Option<u64>,
        urgent: bool,
    ) -> Option<HandOff<B>> {
        if self.followers.is_empty() && urgent {
            return None;
        }
        self.holder = Holder::Vacant;
        self.vacancies = self.vacancies.wrapping_add(1);
        self.standby = Standby::Watching;
        *last = Some(self.vacancies);
        Some(self.hand_off(false))
    }

    /// The poller thread exits (no `Fd` is left): it gives the role up if
    /// it held it.
    pub(crate) fn thread_exits(&mut self, urgent: bool) -> HandOff<B> {
        self.standby = Standby::Absent;
        self.called = false;
        if self.holder == Holder::Thread {
            self.holder = Holder::Vacant;
            self.vacancies = self.vacancies.wrapping_add(1);
            return self.hand_off(urgent);
        }
        HandOff::None
    }
}

#[cfg(test)]
mod tests;

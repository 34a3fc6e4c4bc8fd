//! [`PinSource`]: an `embedded_hal::digital::InputPin` as a source.

use core::cell::RefCell;

use aiopoll::lock_api::RawMutex;
use aiopoll::{Events, PollTable, Source, WaitQueue};
use critical_section::Mutex;
use embedded_hal::digital::InputPin;

use crate::CriticalSectionLock;

/// Which level of the pin means "ready".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Active {
    /// Ready (IN) while the pin is high.
    High,
    /// Ready (IN) while the pin is low (a button to ground, say).
    Low,
}

/// Any `InputPin` as a source: ready with [`Events::IN`] while the pin is at
/// its active level; [`Events::ERR`] when reading the pin fails. Call
/// [`on_edge`](Self::on_edge) from the pin's edge interrupt: the requests
/// re-read the level (an unkeyed wakeup), so a bounce that is gone again
/// completes nothing.
pub struct PinSource<P, Q: RawMutex = CriticalSectionLock> {
    pin: Mutex<RefCell<P>>,
    active: Active,
    queue: WaitQueue<Q>,
}

impl<P: InputPin, Q: RawMutex> PinSource<P, Q> {
    /// Watches `pin`, ready at the `active` level.
    pub const fn new(pin: P, active: Active) -> Self {
        PinSource {
            pin: Mutex::new(RefCell::new(pin)),
            active,
            queue: WaitQueue::new(),
        }
    }

    /// For the pin's edge interrupt: wakes the waiting requests to re-read
    /// the level. Returns how many were woken.
    pub fn on_edge(&self) -> usize {
        self.queue.wake(Events::empty())
    }

    /// The pin's readiness now.
    pub fn readiness(&self) -> Events {
        critical_section::with(|cs| {
            let mut pin = self.pin.borrow(cs).borrow_mut();
            let level = match self.active {
                Active::High => pin.is_high(),
                Active::Low => pin.is_low(),
            };
            match level {
                Ok(true) => Events::IN,
                Ok(false) => Events::empty(),
                Err(_) => Events::ERR,
            }
        })
    }

    /// Whether the pin reads high now; `None` when reading it fails.
    #[cfg(feature = "async")]
    pub(crate) fn is_high(&self) -> Option<bool> {
        critical_section::with(|cs| self.pin.borrow(cs).borrow_mut().is_high().ok())
    }

    /// The wait queue that [`on_edge`](Self::on_edge) wakes.
    #[cfg(feature = "async")]
    pub(crate) fn queue(&self) -> &WaitQueue<Q> {
        &self.queue
    }

    /// Gives the pin back (no request may be waiting: it takes `self`).
    pub fn into_inner(self) -> P {
        self.pin.into_inner().into_inner()
    }
}

impl<P: InputPin + Send, Q: RawMutex + Send + Sync> Source<Q> for PinSource<P, Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        table.wait(&self.queue);
        self.readiness()
    }
}

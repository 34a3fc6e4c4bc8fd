//! Poll event masks with Linux's bit values.

use core::fmt;

bitflags::bitflags! {
    /// A set of poll events, bit for bit the values of Linux's `<poll.h>`, so a
    /// mask maps 1:1 to `struct pollfd::events` and to an aio `IOCB_CMD_POLL`
    /// request's `aio_buf`.
    ///
    /// A request always waits for [`Events::ERR`] and [`Events::HUP`] in
    /// addition to what it asks for, as Linux does.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct Events: u16 {
        /// There is data to read (`POLLIN`).
        const IN = 0x1;
        /// There is urgent data to read (`POLLPRI`).
        const PRI = 0x2;
        /// Writing now will not block (`POLLOUT`).
        const OUT = 0x4;
        /// Error condition (`POLLERR`); always reported.
        const ERR = 0x8;
        /// Hang up (`POLLHUP`); always reported.
        const HUP = 0x10;
        /// Invalid request (`POLLNVAL`).
        const NVAL = 0x20;
        /// Normal data may be read (`POLLRDNORM`).
        const RDNORM = 0x40;
        /// Priority band data may be read (`POLLRDBAND`).
        const RDBAND = 0x80;
        /// Normal data may be written (`POLLWRNORM`).
        const WRNORM = 0x100;
        /// Priority data may be written (`POLLWRBAND`).
        const WRBAND = 0x200;
        /// A message is available (`POLLMSG`).
        const MSG = 0x400;
        /// The peer closed its writing half (`POLLRDHUP`).
        const RDHUP = 0x2000;
    }
}

impl Events {
    /// The events every request waits for whether or not it asked for them.
    pub const ALWAYS: Events = Events::ERR.union(Events::HUP);

    /// Converts a Linux poll mask (as in `struct pollfd::events` or an aio
    /// `IOCB_CMD_POLL` request) into [`Events`].
    ///
    /// # Errors
    /// [`UnknownEvents`] when `mask` has a bit that is not a poll event.
    pub const fn from_linux(mask: u32) -> Result<Events, UnknownEvents> {
        let known = Events::all().bits() as u32;
        if mask & !known != 0 {
            return Err(UnknownEvents {
                unknown: mask & !known,
            });
        }
        Ok(Events::from_bits_retain(mask as u16))
    }

    /// The mask as Linux spells it.
    pub const fn to_linux(self) -> u32 {
        self.bits() as u32
    }

    /// Bits of `self` that are not poll events (only possible through
    /// [`Events::from_bits_retain`]).
    pub(crate) const fn unknown_bits(self) -> u16 {
        self.bits() & !Events::all().bits()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("Events(empty)");
        }
        f.write_str("Events(")?;
        bitflags::parser::to_writer(self, &mut *f)?;
        f.write_str(")")
    }
}

impl fmt::Display for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        bitflags::parser::to_writer(self, f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Events {
    fn format(&self, f: defmt::Formatter<'_>) {
        if self.is_empty() {
            defmt::write!(f, "(none)");
            return;
        }
        let mut first = true;
        for (name, _) in self.iter_names() {
            if !first {
                defmt::write!(f, " | ");
            }
            defmt::write!(f, "{=str}", name);
            first = false;
        }
        if self.unknown_bits() != 0 {
            defmt::write!(f, " | {=u16:#x}", self.unknown_bits());
        }
    }
}

/// A poll mask had bits that are not poll events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownEvents {
    /// The bits that are not poll events.
    pub unknown: u32,
}

impl fmt::Display for UnknownEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event mask has unknown bits {:#x}: use only the poll events of `Events` (Linux <poll.h> values)",
            self.unknown
        )
    }
}

impl core::error::Error for UnknownEvents {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux_poll_h() {
        let expected: [(Events, u32); 12] = [
            (Events::IN, 0x1),
            (Events::PRI, 0x2),
            (Events::OUT, 0x4),
            (Events::ERR, 0x8),
            (Events::HUP, 0x10),
            (Events::NVAL, 0x20),
            (Events::RDNORM, 0x40),
            (Events::RDBAND, 0x80),
            (Events::WRNORM, 0x100),
            (Events::WRBAND, 0x200),
            (Events::MSG, 0x400),
            (Events::RDHUP, 0x2000),
        ];
        for (events, linux) in expected {
            assert_eq!(events.to_linux(), linux);
            assert_eq!(Events::from_linux(linux), Ok(events));
        }
    }

    #[test]
    fn unknown_bits_are_an_error() {
        assert_eq!(
            Events::from_linux(1 << 20 | 1),
            Err(UnknownEvents { unknown: 1 << 20 })
        );
        assert_eq!(
            Events::from_linux(0x800),
            Err(UnknownEvents { unknown: 0x800 })
        );
        assert_eq!(Events::from_bits_retain(0x4001).unknown_bits(), 0x4000);
    }

    #[test]
    fn formats_readably() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{}", Events::IN | Events::HUP), "IN | HUP");
        assert_eq!(format!("{:?}", Events::empty()), "Events(empty)");
    }
}

//! Fake `InputPin`s for the pin tests: a level (and whether reads fail)
//! that the test sets, and a pin that never reads.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin};

/// What a failing pin read reports.
#[derive(Debug)]
pub struct ReadFault;

impl embedded_hal::digital::Error for ReadFault {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A pin whose level (and whether reads fail) the test sets; counts reads.
pub struct FakePin<'a> {
    pub high: &'a AtomicBool,
    pub failing: &'a AtomicBool,
    pub reads: u32,
}

impl ErrorType for FakePin<'_> {
    type Error = ReadFault;
}

impl InputPin for FakePin<'_> {
    fn is_high(&mut self) -> Result<bool, ReadFault> {
        self.reads += 1;
        if self.failing.load(Ordering::SeqCst) {
            return Err(ReadFault);
        }
        Ok(self.high.load(Ordering::SeqCst))
    }

    fn is_low(&mut self) -> Result<bool, ReadFault> {
        self.is_high().map(|high| !high)
    }
}

/// A pin every read of which fails.
pub struct BrokenPin<'a> {
    pub reads: &'a AtomicU32,
}

impl ErrorType for BrokenPin<'_> {
    type Error = ReadFault;
}

impl InputPin for BrokenPin<'_> {
    fn is_high(&mut self) -> Result<bool, ReadFault> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Err(ReadFault)
    }

    fn is_low(&mut self) -> Result<bool, ReadFault> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Err(ReadFault)
    }
}

pub struct Wires {
    pub high: AtomicBool,
    pub failing: AtomicBool,
}

impl Wires {
    pub fn new(high: bool) -> Self {
        Wires {
            high: AtomicBool::new(high),
            failing: AtomicBool::new(false),
        }
    }

    pub fn pin(&self) -> FakePin<'_> {
        FakePin {
            high: &self.high,
            failing: &self.failing,
            reads: 0,
        }
    }

    pub fn set_high(&self, high: bool) {
        self.high.store(high, Ordering::SeqCst);
    }
}

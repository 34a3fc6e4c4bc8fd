//! [`WaitPin`]: `embedded_hal_async::digital::Wait` for a [`PinSource`],
//! each wait an awaited poll request.

use core::fmt;
use core::pin::Pin;

use aiopoll::kinds::{EveryKind, Kinds, TakesAwaited};
use aiopoll::lock_api::RawMutex;
use aiopoll::{Context, Events, Locks, Notify, Outcome, PollTable, Source, SubmitError};
use embedded_hal::digital::{ErrorKind, ErrorType, InputPin};
use embedded_hal_async::digital::Wait;

use crate::PinSource;

/// Why a wait on a pin ended without the level or edge it waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WaitError {
    /// Reading the pin failed (its `InputPin` returned an error): check
    /// how the pin is configured, then wait again.
    Read,
    /// The context refused the request: see the [`SubmitError`] (the
    /// context's `W` must allow one wait queue per request).
    Refused(SubmitError),
    /// The request ended otherwise (the pin's wait queue was closed): make
    /// a new `WaitPin` on a live `PinSource`.
    Ended(Outcome),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Read => f.write_str(
                "reading the pin failed: check how the pin is configured, then wait again",
            ),
            WaitError::Refused(error) => write!(f, "the wait was refused: {error}"),
            WaitError::Ended(outcome) => write!(
                f,
                "the wait ended with {outcome:?}: wait on a pin source that is still served"
            ),
        }
    }
}

impl core::error::Error for WaitError {}

impl embedded_hal::digital::Error for WaitError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A [`PinSource`] with a context to wait in: implements
/// [`embedded_hal_async::digital::Wait`], every wait an awaited request
/// ([`Context::request`]) that the pin's edge interrupt
/// ([`PinSource::on_edge`]) wakes through deferred work.
///
/// - `wait_for_high` / `wait_for_low`: ready when the pin reads that
///   level (at once if it does already). The source's [`Active`](crate::Active)
///   setting plays no part here.
/// - `wait_for_rising_edge`: the pin read low, then high (so if it is high
///   now, it must go low first); `wait_for_falling_edge` the other way
///   round; `wait_for_any_edge`: the pin read the other level than when the
///   wait began.
///
/// Edges are seen as levels read after each edge interrupt (in the
/// deferred work that the unkeyed wakeup asks for), so, as with a bounce, a
/// pulse that is over before the level is read again is not seen; no wait
/// ever reports an edge that did not happen.
///
/// Dropping a wait cancels its request (a timeout is `select(wait,
/// delay)`). The waits share the context with any other requests; a full
/// context makes a wait wait for a slot.
///
/// ```no_run
/// use core::pin::Pin;
/// use aiopoll::Context;
/// use aiopoll_cortex_m::{CortexMLocks, PendSv, PinSource, Active, WaitPin};
/// use embedded_hal_async::digital::Wait;
/// # use critical_section as _; // the host's critical section, for this test
/// # struct Button;
/// # impl embedded_hal::digital::ErrorType for Button { type Error = core::convert::Infallible; }
/// # impl embedded_hal::digital::InputPin for Button {
/// #     fn is_high(&mut self) -> Result<bool, Self::Error> { Ok(true) }
/// #     fn is_low(&mut self) -> Result<bool, Self::Error> { Ok(false) }
/// # }
///
/// static BUTTON: PinSource<Button> = PinSource::new(Button, Active::Low);
/// static CONTEXT: Context<'static, 4, CortexMLocks, 1, PendSv> = Context::with_hooks(PendSv);
///
/// async fn presses() {
///     let mut button = WaitPin::new(Pin::static_ref(&CONTEXT), &BUTTON);
///     loop {
///         if button.wait_for_falling_edge().await.is_err() {
///             break; // the pin cannot be read
///         }
///         // .. pressed ..
///     }
/// }
/// ```
pub struct WaitPin<
    'a,
    's,
    P,
    const N: usize,
    L: Locks,
    const W: usize,
    H: Notify,
    K: Kinds = EveryKind,
> {
    context: Pin<&'a Context<'s, N, L, W, H, K>>,
    pin: &'a PinSource<P, L::Queue>,
}

impl<'a, 's, P, const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited>
    WaitPin<'a, 's, P, N, L, W, H, K>
where
    P: InputPin + Send,
    L::Queue: Send + Sync,
{
    /// Waits on `pin`, with requests in `context`.
    pub fn new(
        context: Pin<&'a Context<'s, N, L, W, H, K>>,
        pin: &'a PinSource<P, L::Queue>,
    ) -> Self {
        WaitPin { context, pin }
    }

    /// The pin source waited on.
    pub fn source(&self) -> &'a PinSource<P, L::Queue> {
        self.pin
    }

    /// Waits until the pin reads `high` (or low): one awaited request.
    async fn level(&self, high: bool) -> Result<(), WaitError> {
        let level = Level {
            pin: self.pin,
            high,
        };
        // SAFETY: `level` is a local of this async fn, declared before the
        // request future, so it is dropped after it; this future's state
        // is pinned while it is polled, so `level` stays in place until the
        // request has been dropped (Pin's drop guarantee: pinned memory is
        // not reused without its destructor running). The pin's wait queue
        // is borrowed for `'a`, which outlives this future.
        let request = unsafe { self.context.request_unchecked(&level, Events::IN) };
        match request.await {
            Ok(Outcome::Ready(events)) if events.contains(Events::IN) => Ok(()),
            Ok(Outcome::Ready(_)) => Err(WaitError::Read),
            Ok(outcome) => Err(WaitError::Ended(outcome)),
            Err(error) => Err(WaitError::Refused(error)),
        }
    }
}

impl<P, const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited> ErrorType
    for WaitPin<'_, '_, P, N, L, W, H, K>
{
    type Error = WaitError;
}

impl<P, const N: usize, L: Locks, const W: usize, H: Notify, K: TakesAwaited> Wait
    for WaitPin<'_, '_, P, N, L, W, H, K>
where
    P: InputPin + Send,
    L::Queue: Send + Sync,
{
    async fn wait_for_high(&mut self) -> Result<(), WaitError> {
        self.level(true).await
    }

    async fn wait_for_low(&mut self) -> Result<(), WaitError> {
        self.level(false).await
    }

    async fn wait_for_rising_edge(&mut self) -> Result<(), WaitError> {
        self.level(false).await?;
        self.level(true).await
    }

    async fn wait_for_falling_edge(&mut self) -> Result<(), WaitError> {
        self.level(true).await?;
        self.level(false).await
    }

    async fn wait_for_any_edge(&mut self) -> Result<(), WaitError> {
        let high = self.pin.is_high().ok_or(WaitError::Read)?;
        self.level(!high).await
    }
}

/// One level of a pin as a source: ready (IN) while the pin reads it, ERR
/// when the read fails.
struct Level<'p, P, Q: RawMutex> {
    pin: &'p PinSource<P, Q>,
    high: bool,
}

impl<P: InputPin + Send, Q: RawMutex + Send + Sync> Source<Q> for Level<'_, P, Q> {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Q>) -> Events {
        table.wait(self.pin.queue());
        match self.pin.is_high() {
            Some(high) if high == self.high => Events::IN,
            Some(_) => Events::empty(),
            None => Events::ERR,
        }
    }
}

//! [`Ledger`]: the exactly-once bookkeeping every scenario keeps.

use aiopoll::{Completion, Context, Events, Kinds, Locks, Notify, Outcome};

/// Which requests of a run completed, and how: one bit per request (its
/// user data, counted from the first), set when its completion is reaped.
/// A completion seen twice, one whose user data no request of the run had,
/// and an outcome other than `Ready(IN)`, `Cancelled` or `SourceGone` are
/// logged and fail the run.
///
/// `WORDS` is the bitmap's size in 32-bit words: room for `32 × WORDS`
/// requests.
pub struct Ledger<const WORDS: usize> {
    first: u64,
    seen: [u32; WORDS],
    /// Completions recorded.
    pub completed: u32,
    /// `Ready(IN)` completions.
    pub ready: u32,
    /// `Cancelled` completions.
    pub cancelled: u32,
    /// `SourceGone` completions.
    pub gone: u32,
    faults: u32,
}

impl<const WORDS: usize> Ledger<WORDS> {
    /// For requests whose user data counts from 0.
    pub const fn new() -> Self {
        Self::starting_at(0)
    }

    /// For requests whose user data counts from `first`.
    pub const fn starting_at(first: u64) -> Self {
        Ledger {
            first,
            seen: [0; WORDS],
            completed: 0,
            ready: 0,
            cancelled: 0,
            gone: 0,
            faults: 0,
        }
    }

    /// Accounts `completions`.
    pub fn record(&mut self, completions: &[Completion]) {
        for completion in completions {
            self.completed += 1;
            let index = completion.user_data.wrapping_sub(self.first);
            if index >= 32 * WORDS as u64 {
                defmt::error!("request {} is not one of this run's", completion.user_data);
                self.faults += 1;
                continue;
            }
            let (word, bit) = ((index / 32) as usize, 1u32 << (index % 32));
            if self.seen[word] & bit != 0 {
                defmt::error!("request {} completed twice", completion.user_data);
                self.faults += 1;
            }
            self.seen[word] |= bit;
            match completion.outcome {
                Outcome::Ready(Events::IN) => self.ready += 1,
                Outcome::Cancelled => self.cancelled += 1,
                Outcome::SourceGone => self.gone += 1,
                other => {
                    defmt::error!(
                        "request {}: unexpected outcome {}",
                        completion.user_data,
                        other
                    );
                    self.faults += 1;
                }
            }
        }
    }

    /// Reaps what is there into `out`, accounts it, and returns how many.
    pub fn reap<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds>(
        &mut self,
        context: &Context<'_, N, L, W, H, K>,
        out: &mut [Completion],
    ) -> usize {
        let count = context.reap(out);
        self.record(&out[..count]);
        count
    }

    /// Whether the first `requests` requests each completed exactly once,
    /// and nothing else completed.
    pub fn all_once(&self, requests: u32) -> bool {
        let requests_seen: u32 = self
            .seen
            .iter()
            .enumerate()
            .map(|(word, bits)| {
                // The bits of requests 0..`requests` in this word.
                let wanted = requests.saturating_sub(32 * word as u32).min(32);
                let mask = u32::MAX.checked_shr(32 - wanted).unwrap_or(0);
                (bits & mask).count_ones()
            })
            .sum();
        self.faults == 0 && self.completed == requests && requests_seen == requests
    }
}

impl<const WORDS: usize> Default for Ledger<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

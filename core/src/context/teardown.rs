//! Leaving the wait queues: a completed request's entries (every completing
//! transition) and every pending request's when the context goes (T12).

use super::*;

impl<'s, const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Context<'s, N, L, W, H, K> {
    /// Takes every wait entry of `slot` off its queue, one queue lock at a
    /// time. The caller holds the context lock.
    pub(super) fn detach_all(&self, slot: usize) {
        // (`get`: no bounds check, so no panic path; `slot` is below `N`.)
        let Some(entries) = self.entries.get(slot) else {
            return;
        };
        for entry in entries {
            let queue = entry.queue();
            if !queue.is_null() {
                // SAFETY: a non-null queue pointer was set by `attach` from a
                // `&'s WaitQueue<L::Queue>` (or under `submit_unchecked`'s
                // contract), so the queue is alive; `detach` re-checks under
                // the queue lock that the entry is still linked there. We
                // hold the context lock, which owns the entry.
                unsafe { (*(queue as *const WaitQueue<L::Queue>)).detach::<L>(entry) };
            }
        }
    }
}

impl<const N: usize, L: Locks, const W: usize, H: Notify, K: Kinds> Drop
    for Context<'_, N, L, W, H, K>
{
    fn drop(&mut self) {
        // `Context` is `!Unpin`, so this `&mut` does not assert that nobody
        // else looks: wakers may still reach the entries until they are
        // detached. Work through a shared reference and the lock, as every
        // other path does.
        let this = &*self;
        let locked = Locked::lock(&this.lock);
        for slot in 0..N {
            let linked = this.with_state(&locked, |state| {
                matches!(state.slots[slot].phase, Phase::Armed | Phase::Polling)
            });
            if linked {
                // T12 context drop: leave every queue.
                transition!("T12 context drop", slot);
                this.detach_all(slot);
            }
        }
        drop(locked);
        // The task wakers still in slots (their futures were forgotten),
        // each dropped with no lock held. Nothing reaches the slots now.
        for slot in 0..N {
            let waker = {
                let locked = Locked::lock(&this.lock);
                this.with_state(&locked, |state| {
                    state.slots[slot].waker().and_then(Option::take)
                })
            };
            drop(waker);
        }
    }
}

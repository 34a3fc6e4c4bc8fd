//! For the sources' unit tests: does a task woken by a source run with the
//! source's own lock free? A task's first act is often to touch the source
//! that woke it (read a counter, re-arm a timer); called under the
//! source's lock, it finds that lock held.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Wake, Waker};

use aiopoll::Events;

use crate::{AsSource, StdContext};

/// A task waker that records, when called, what `look` says.
struct Looking<F> {
    look: F,
    /// 0: not woken; 1: woken, `look` said no; 2: woken, it said yes.
    seen: AtomicU8,
}

impl<F: Fn() -> bool + Send + Sync + 'static> Wake for Looking<F> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let seen = if (self.look)() { 2 } else { 1 };
        self.seen.store(seen, Ordering::SeqCst);
    }
}

/// Awaits `events` on `source`, then runs `change`: `None` if that did not
/// wake the task, else what `look` said when the task was woken.
pub(crate) fn woken_with<F: Fn() -> bool + Send + Sync + 'static>(
    source: &impl AsSource,
    events: Events,
    look: F,
    change: impl FnOnce(),
) -> Option<bool> {
    let context = StdContext::<2>::new();
    let task = Arc::new(Looking {
        look,
        seen: AtomicU8::new(0),
    });
    let waker = Waker::from(task.clone());
    let mut request = pin!(context.request(source, events));
    let polled = request.as_mut().poll(&mut TaskContext::from_waker(&waker));
    assert!(polled.is_pending(), "the request completed at once");
    change();
    match task.seen.load(Ordering::SeqCst) {
        0 => None,
        seen => Some(seen == 2),
    }
}

//! [`Fd`] (Linux): any file descriptor as a source.
//!
//! # How readiness is found
//!
//! A source answers two questions: "what is ready now?" (its `poll`, which
//! must not block) and "tell me when that may have changed" (a wakeup on its
//! queue). For a file descriptor the kernel answers the first with its own
//! `->poll()`, which `poll(2)` with a zero timeout calls once and returns:
//! that is the whole of [`Fd`]'s `poll`, so its readiness mask is the
//! kernel's, bit for bit. The second comes from the `polling` crate: every
//! `Fd` is registered, edge-triggered, with one OS poller (epoll) that one
//! thread waits on; an edge on a descriptor wakes its queue *unkeyed*, so
//! the core re-polls (the same path Linux takes for an unkeyed wakeup). The
//! registration lasts as long as the `Fd`, so no change is missed between a
//! request's readiness check and its wait: the request is on the queue
//! before the check, and any later change raises an edge.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};

use aiopoll::{Events, PollTable, Source};
use parking_lot::{Mutex, RwLock};
use polling::{Event, PollMode, Poller};

use crate::{AsSource, Lock, SharedSource, WaitQueue};

/// A file descriptor (socket, pipe, eventfd, tty, ...) owned as a source:
/// requests on it complete with the readiness `poll(2)` reports for it.
///
/// `Fd` owns `T` (a `TcpStream`, `TcpListener`, `OwnedFd`, ...); do I/O
/// through [`get_ref`](Self::get_ref), non-blocking (set it so: a request
/// completing means "ready", and a racing reader may still get
/// `WouldBlock`). Dropping the `Fd` deregisters the descriptor, completes
/// pending requests with [`Outcome::SourceGone`](crate::Outcome::SourceGone),
/// then closes `T`.
pub struct Fd<T: AsFd> {
    shared: Arc<FdShared>,
    io: T,
}

struct FdShared {
    /// The descriptor while the `Fd` lives; `None` once it is being closed,
    /// so a late re-poll never looks at a reused descriptor number.
    raw: RwLock<Option<RawFd>>,
    queue: WaitQueue,
}

impl<T: AsFd> Fd<T> {
    /// Takes `io` and registers its descriptor with the poller thread
    /// (started on first use; it exits when no `Fd` is left).
    ///
    /// # Errors
    /// The OS poller could not be created, could not register the
    /// descriptor (e.g. a regular file, which epoll refuses: poll it
    /// otherwise), or its thread could not be started.
    pub fn new(io: T) -> io::Result<Self> {
        let shared = Arc::new(FdShared {
            raw: RwLock::new(Some(io.as_fd().as_raw_fd())),
            queue: WaitQueue::new(),
        });
        driver()?.register(&io, &shared)?;
        Ok(Fd { shared, io })
    }

    /// The owned I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The owned I/O object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The events ready now, as `poll(2)` reports them.
    pub fn readiness(&self) -> Events {
        self.shared.poll(&mut PollTable::readiness_only())
    }
}

impl<T: AsFd> Drop for Fd<T> {
    fn drop(&mut self) {
        if let Ok(driver) = driver() {
            driver.deregister(&self.io, &self.shared);
        }
        *self.shared.raw.write() = None;
        self.shared.queue.close();
        // `io` is closed after this, when the fields drop.
    }
}

impl<T: AsFd> AsSource for Fd<T> {
    fn as_source(&self) -> SharedSource {
        self.shared.clone()
    }
}

impl<T: AsFd + core::fmt::Debug> core::fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fd").field("io", &self.io).finish()
    }
}

impl Source<Lock> for FdShared {
    fn poll<'s>(&'s self, table: &mut PollTable<'_, 's, Lock>) -> Events {
        table.wait(&self.queue);
        let raw = self.raw.read();
        let Some(fd) = *raw else {
            return Events::empty();
        };
        let mut entry = libc::pollfd {
            fd,
            events: libc::POLLIN
                | libc::POLLPRI
                | libc::POLLOUT
                | libc::POLLRDNORM
                | libc::POLLRDBAND
                | libc::POLLWRNORM
                | libc::POLLWRBAND
                | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `entry` is one valid `pollfd` and we pass a count of 1;
        // `fd` is open: the read lock keeps `Drop` from clearing it (and so
        // from closing the descriptor) until we are done. A zero timeout
        // never blocks.
        let count = unsafe { libc::poll(&mut entry, 1, 0) };
        if count <= 0 {
            return Events::empty();
        }
        let known = Events::all().bits();
        Events::from_bits_truncate(entry.revents as u16 & known)
    }
}

/// The poller thread's registry.
struct Driver {
    poller: Poller,
    state: Mutex<DriverState>,
}

#[derive(Default)]
struct DriverState {
    fds: HashMap<usize, Weak<FdShared>>,
    next_key: usize,
    running: bool,
}

fn driver() -> io::Result<&'static Driver> {
    static DRIVER: OnceLock<Result<Driver, io::ErrorKind>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let poller = Poller::new().map_err(|error| error.kind())?;
            if !poller.supports_edge() {
                return Err(io::ErrorKind::Unsupported);
            }
            Ok(Driver {
                poller,
                state: Mutex::new(DriverState::default()),
            })
        })
        .as_ref()
        .map_err(|kind| io::Error::from(*kind))
}

impl Driver {
    fn register(&'static self, io: &impl AsFd, shared: &Arc<FdShared>) -> io::Result<()> {
        let mut state = self.state.lock();
        // Keys wrap after usize::MAX registrations; `usize::MAX` itself is
        // the poller's own notification key.
        let mut key = state.next_key;
        while key == usize::MAX || state.fds.contains_key(&key) {
            key = key.wrapping_add(1);
        }
        state.next_key = key.wrapping_add(1);
        // SAFETY: `Fd::drop` deletes the descriptor from this poller
        // (`deregister`) before `io`, which owns it, is dropped; a failed
        // `Fd::new` never added it.
        unsafe {
            self.poller
                .add_with_mode(io.as_fd().as_raw_fd(), Event::all(key), PollMode::Edge)?;
        }
        state.fds.insert(key, Arc::downgrade(shared));
        if !state.running {
            let spawned = std::thread::Builder::new()
                .name("aiopoll-fd".into())
                .spawn(move || self.run());
            if let Err(error) = spawned {
                state.fds.remove(&key);
                // The descriptor was added above: take it back out.
                let _ = self.poller.delete(io.as_fd());
                return Err(error);
            }
            state.running = true;
        }
        Ok(())
    }

    fn deregister(&self, io: &impl AsFd, shared: &Arc<FdShared>) {
        // Cannot fail for a registered, open descriptor.
        let _ = self.poller.delete(io.as_fd());
        let mut state = self.state.lock();
        state
            .fds
            .retain(|_, fd| !core::ptr::eq(fd.as_ptr(), Arc::as_ptr(shared)));
        if state.fds.is_empty() {
            // Let the thread see that it has nothing left to wait for.
            let _ = self.poller.notify();
        }
    }

    /// The poller thread: turns edges into unkeyed wakeups; exits when no
    /// `Fd` is registered (or if the OS poller fails).
    fn run(&self) {
        let mut events = polling::Events::new();
        let mut woken = Vec::new();
        loop {
            events.clear();
            let waited = self.poller.wait(&mut events, None);
            {
                let mut state = self.state.lock();
                let failed = matches!(&waited, Err(e) if e.kind() != io::ErrorKind::Interrupted);
                if state.fds.is_empty() || failed {
                    state.running = false;
                    return;
                }
                woken.extend(
                    events
                        .iter()
                        .filter_map(|event| state.fds.get(&event.key)?.upgrade()),
                );
            }
            // Outside the registry's lock: a wakeup may run a completion.
            for shared in woken.drain(..) {
                shared.queue.wake(Events::empty());
            }
        }
    }
}

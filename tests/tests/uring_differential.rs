//! Differential test against io_uring's own poll (Linux only): aiopoll's
//! request features beside the io_uring operations they are modelled on.
//!
//! | io_uring | aiopoll-std |
//! |---|---|
//! | `IORING_OP_POLL_ADD` | [`StdContext::submit`] |
//! | `POLL_ADD` with `IORING_POLL_ADD_MULTI` | [`StdContext::submit_multishot`] |
//! | `IORING_OP_POLL_REMOVE` | [`StdContext::cancel`] |
//! | `POLL_REMOVE` with `IORING_POLL_UPDATE_EVENTS` / `_USER_DATA` | [`StdContext::update`] |
//! | `IORING_OP_ASYNC_CANCEL`, `IORING_ASYNC_CANCEL_ALL` by user data | [`StdContext::cancel_user_data`] |
//! | `ASYNC_CANCEL` with `IORING_ASYNC_CANCEL_FD` \| `_ALL` | [`StdContext::cancel_source`] |
//! | `POLL_ADD` linked (`IOSQE_IO_LINK`) to an `IORING_OP_LINK_TIMEOUT` | [`StdContext::submit_with_deadline`] |
//!
//! Random operation sequences (submits of each kind with random masks,
//! eventfd and pipe writes and reads, closing pipe ends, removes, updates,
//! cancels by user data and by source, reaps) run on real eventfds and pipes
//! through an io_uring (the `io-uring` crate), and on aiopoll-std's
//! [`EventCounter`](aiopoll_std::EventCounter) and
//! [`pipe`](aiopoll_std::pipe) through a [`StdContext`]; a second run puts
//! aiopoll's side on [`Fd`](aiopoll_std::Fd)s over twin kernel eventfds and
//! pipes. Every submit, remove, update, cancel, read and write result must
//! match; after every operation every open source's readiness must equal
//! what `poll(2)` reports for its kernel twin; and at every reap (one
//! operation among the others: writes, reads, closes and cancels interleave
//! between reaps) the completions must match, request by request, as below.
//! Between reaps nothing reaps aiopoll's side: after each operation the
//! harness only waits until aiopoll holds the unreaped completions the
//! kernel's side says it must, so a completion that would only have come
//! from a reap fails the test. After a write, a read or a close the sequence
//! sometimes removes or updates a request on the source it woke, at once:
//! the wakeup came first and must win on both sides.
//!
//! # What is compared, and how
//!
//! The harness reads the kernel's completion ring after every operation and
//! files each CQE under the request it belongs to: by the user data the
//! request had when the CQE was posted (user data is unique per request,
//! except for a few *shared tags*, below). aiopoll's completions are filed
//! by their [`Handle`]. Between two reaps (a *window*), for each request:
//!
//! - **Final completion.** One-shot requests (and multishot ones that end):
//!   the kernel's CQE without `IORING_CQE_F_MORE` and aiopoll's completion
//!   without [`more`](aiopoll_std::Completion::more) are both there or both
//!   absent, and agree: `Ready(e)` is the mask `e` (io_uring, like aiopoll,
//!   reports ready ∩ requested, compared bit for bit, unmasked); `Cancelled`
//!   is `-ECANCELED`; `TimedOut` is the poll's `-ECANCELED` together with
//!   its linked timeout's `-ETIME`.
//! - **Multishot readiness.** io_uring posts one CQE with `F_MORE` per
//!   wakeup; aiopoll keeps one completion place per request and merges
//!   readiness that is not reaped yet into it. The equivalence checked: the
//!   union of the events of the kernel's `F_MORE` CQEs in the window equals
//!   the events of aiopoll's one `more` completion of the window (both
//!   absent when nothing was posted), plus or minus the posts that the
//!   modelled differences below predict for one side only. The final
//!   completion comes after it on both sides.
//! - **Linked timeouts.** The kernel's `LINK_TIMEOUT` posts its own CQE:
//!   `-ETIME` when it fired (then the poll is `-ECANCELED` and aiopoll's
//!   request `TimedOut`), `-ECANCELED` when the poll completed or was
//!   cancelled first. A deadline already past is a timeout of 0: if the
//!   poll is ready at its submit it completes there, and the timer, already
//!   due, may fire before the kernel disarms it and find nothing
//!   (`-ENOENT`), a race inside the kernel; both answers are accepted in
//!   that case only. aiopoll posts one completion.
//! - **Shared tags.** Some one-shot requests share a user data value (to
//!   give `ASYNC_CANCEL_ALL` by user data several to cancel), so their CQEs
//!   cannot be told apart: for each tag the results are compared as
//!   multisets. These requests are never removed or updated one at a time
//!   (io_uring would pick any one of them).
//! - **Operation results.** `POLL_REMOVE` and poll update: 0 or `-ENOENT`
//!   against `Ok` or `NotFound` (`Updated::Completed` is an update that the
//!   kernel answers 0 and then completes the request with the new mask);
//!   `ASYNC_CANCEL` with `_ALL`: the number cancelled (0 when none) against
//!   the count `cancel_user_data` and `cancel_source` return.
//!
//! # Where the two differ, and how the harness holds each difference
//!
//! (Also in `docs/std.md`, "The io_uring differential test".)
//!
//! 1. **A wakeup whose work has not run yet.** An io_uring poll wakeup
//!    hands the completion to task work, which runs when the ring's task
//!    next returns to user space (or, with `IORING_SETUP_DEFER_TASKRUN`,
//!    at its next wait for completions). Until then, `POLL_REMOVE` and a
//!    poll update fail `-EALREADY` (the wakeup then completes the request),
//!    and `ASYNC_CANCEL` finds and counts the request, which then completes
//!    `-ECANCELED`: the wakeup is lost. aiopoll's cancels and update first
//!    run the request's pending deferred work, so a wakeup ordered before
//!    them always wins (`NotFound`, a count of 0). The sequences run on a
//!    default ring in one thread, where the task work of a write, a read or
//!    a close has run before the call returns, so the two agree there;
//!    [`wakeup_whose_work_has_not_run`] shows the difference
//!    deterministically on a `DEFER_TASKRUN` ring.
//! 2. **A poll update re-arms the request in io_uring.** Even an update of
//!    the user data alone re-polls the file, and a multishot request whose
//!    events are ready then posts them again (an edge-triggered re-arm);
//!    aiopoll's update of the user data alone changes nothing else and posts
//!    nothing. Predicted: that kernel CQE must be exactly the readiness
//!    `poll(2)` reports, masked by the request's events, and is not counted
//!    in the union. (An update of the events re-polls on both sides, and
//!    both post.)
//! 3. **Merged readiness carries the current user data in aiopoll.** An
//!    io_uring CQE keeps the user data the request had when it was posted;
//!    aiopoll's merged readiness is taken at the reap, with the user data
//!    the request has then (an update in between renames it). Each side is
//!    checked against its own rule.
//! 4. **aiopoll's `pipe` wakes on other occasions than a Linux pipe**
//!    (native run only): a read that takes data from a pipe that was not
//!    full wakes aiopoll's writers (key `OUT | WRNORM`), not Linux's (Linux
//!    wakes writers only when a read frees a page of a full pipe); a write
//!    that fails with `EAGAIN` wakes Linux's readers (key `IN | RDNORM`), not
//!    aiopoll's. One-shot requests cannot tell (a request waiting on a pipe
//!    end is not ready for what those keys carry); a multishot request sees
//!    one more post on one side. Predicted per operation: aiopoll's extra
//!    post joins what its union must hold; the kernel's must be exactly the
//!    key masked by the request's events.
//! 5. **An `Fd` learns readiness, not the wakeup's key** (fd run only): its
//!    poller thread wakes requests with the readiness epoll reports, so
//!    after an eventfd write (key `IN`) a multishot request for `OUT` on an
//!    `Fd` sees the still-writable eventfd posted again; io_uring filters by
//!    the key and posts nothing. Predicted as in 4. (The `Fd`'s delivery a
//!    moment after the operation is bridged by [`Fd::catch_up`] after each
//!    write, read and close, as in the aio differential test, and after
//!    fresh descriptors are registered: epoll raises an edge at once for a
//!    ready one, which would otherwise reach a multishot request submitted
//!    after it as a second post.)
//! 6. **Event bits that are not poll events** are dropped silently by
//!    io_uring (the request then waits for `ERR`/`HUP` only) and refused by
//!    aiopoll (`UnknownEvents`): the sequences use poll events only, and the
//!    table cases show both answers.
//! 7. **Result codes.** A cancelled poll is `-ECANCELED` in io_uring (0 in
//!    Linux aio, aiopoll's [`Outcome::to_linux`](aiopoll_std::Outcome));
//!    io_uring always adds `NVAL` and `RDHUP` to a request's events
//!    (aiopoll adds `ERR` and `HUP`), which eventfds and pipes never report.
//!
//! Operations the kernel completes a moment after the call (a linked timeout
//! that fires, in timer context) are waited for before the next operation;
//! the wait is bounded only so that a missing completion fails instead of
//! hanging. Requests are never left on a pipe end that is closed: io_uring
//! holds the file open, aiopoll's source completes them `SourceGone`.
//!
//! If io_uring is unavailable (`io_uring_setup` fails with `ENOSYS`,
//! `EPERM` or `EACCES`, as in containers that forbid it, or the kernel lacks
//! a feature used, Linux 5.19 for `ASYNC_CANCEL_ALL`), each test says so on
//! standard error and skips; `AIOPOLL_URING_REQUIRED=1` makes that a
//! failure. The fixed seeds run in `cargo test`; `AIOPOLL_DIFF_SEEDS=N` runs
//! N more in each run, and `AIOPOLL_DIFF_STEPS` sets the steps per seed of
//! the native run (the same variables as the aio differential test).
#![cfg(all(target_os = "linux", target_endian = "little", not(miri)))]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use aiopoll_std::{Completion, Events, Handle, Outcome, SharedSource, StdContext, Updated};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

mod common;
use common::*;

/// The fixed seeds: 1 to 32.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=32;
const STEPS: usize = 400;
const ECANCELED: i32 = -libc::ECANCELED;
const ETIME: i32 = -libc::ETIME;
const ENOENT: i32 = -libc::ENOENT;
const EALREADY: i32 = -libc::EALREADY;
const IN: u32 = 0x1;
const OUT: u32 = 0x4;
const ERR: u32 = 0x8;
const HUP: u32 = 0x10;
const RDNORM: u32 = 0x40;
const WRNORM: u32 = 0x100;
/// User data values: a request's own id (1, 2, ...), or one of `TAGS`
/// shared tags from `SHARED`, or one an update gave it from `RENAMED`; a
/// linked timeout's is `TIMEOUT` + its poll's id; the harness's removes,
/// updates and cancels are `OP` + a count.
const SHARED: u64 = 1 << 40;
const TAGS: u64 = 3;
const RENAMED: u64 = 1 << 41;
const TIMEOUT: u64 = 1 << 42;
const OP: u64 = 1 << 43;
/// A deadline that never comes during a run.
const FAR: Duration = Duration::from_secs(3600);
/// `IORING_OP_POLL_REMOVE`, which with these flags in `len` updates a poll.
const IORING_OP_POLL_REMOVE: u8 = 7;
const IORING_POLL_UPDATE_EVENTS: u32 = 1 << 1;
const IORING_POLL_UPDATE_USER_DATA: u32 = 1 << 2;

/// One completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cqe {
    user_data: u64,
    res: i32,
    more: bool,
}

/// `struct io_uring_sqe`, to build the poll update the `io-uring` crate has
/// no builder for.
#[repr(C)]
#[derive(Default)]
struct RawSqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    poll32_events: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    splice_fd_in: u32,
    addr3: u64,
    pad: u64,
}

/// A poll update (`IORING_OP_POLL_REMOVE` with update flags) of the request
/// whose user data is `old`.
fn poll_update(old: u64, user_data: Option<u64>, events: Option<u32>) -> squeue::Entry {
    let mut flags = 0;
    if user_data.is_some() {
        flags |= IORING_POLL_UPDATE_USER_DATA;
    }
    if events.is_some() {
        flags |= IORING_POLL_UPDATE_EVENTS;
    }
    let raw = RawSqe {
        opcode: IORING_OP_POLL_REMOVE,
        fd: -1,
        off: user_data.unwrap_or(0),
        addr: old,
        len: flags,
        poll32_events: events.unwrap_or(0),
        ..RawSqe::default()
    };
    // SAFETY: `squeue::Entry` is a `#[repr(C)]` wrapper of the kernel's
    // 64-byte `struct io_uring_sqe` (the size is checked by `transmute`),
    // whose fields are all integers: every initialised 64-byte value is a
    // valid entry, and `RawSqe` is that layout field for field.
    unsafe { std::mem::transmute::<RawSqe, squeue::Entry>(raw) }
}

fn poll_add(fd: RawFd, mask: u32, user_data: u64, multishot: bool) -> squeue::Entry {
    opcode::PollAdd::new(types::Fd(fd), mask)
        .multi(multishot)
        .build()
        .user_data(user_data)
}

/// The kernel's side: an io_uring.
struct Ring {
    ring: IoUring,
    /// The next operation's user data.
    next_op: u64,
    /// The operations' results, by their user data.
    ops: HashMap<u64, i32>,
    /// The requests' CQEs, taken from the ring and not yet filed.
    cqes: Vec<Cqe>,
}

/// `AIOPOLL_URING_REQUIRED=1`: io_uring being unavailable fails the test.
fn required() -> bool {
    std::env::var("AIOPOLL_URING_REQUIRED").is_ok_and(|v| v == "1")
}

/// Says loudly (on the real standard error, which the test harness does
/// not capture) that `test` is skipped, unless io_uring is required.
fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: io_uring is unavailable ({why}) and AIOPOLL_URING_REQUIRED=1"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** {test}: SKIPPED, io_uring is unavailable here: {why} ***\n\
         *** (the io_uring differential test compared nothing; set AIOPOLL_URING_REQUIRED=1 to fail instead) ***\n"
    );
}

impl Ring {
    /// A ring of 256 entries, with every feature the test uses probed; or
    /// why io_uring is unavailable.
    fn new() -> Result<Ring, String> {
        let mut ring = Ring::with(&IoUring::builder())?;
        ring.probe()?;
        Ok(ring)
    }

    /// A ring of 256 entries built by `builder`, not probed.
    fn with(builder: &io_uring::Builder) -> Result<Ring, String> {
        let ring = match builder.build(256) {
            Ok(ring) => ring,
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL)
                ) =>
            {
                return Err(format!("io_uring_setup: {error}"))
            }
            Err(error) => panic!("io_uring_setup: {error}"),
        };
        Ok(Ring {
            ring,
            next_op: 0,
            ops: HashMap::new(),
            cqes: Vec::new(),
        })
    }

    /// Multishot poll and poll update (Linux 5.13), `ASYNC_CANCEL` by
    /// descriptor and with `_ALL` (5.19): each answers as the test expects,
    /// or `EINVAL` says the kernel lacks it.
    fn probe(&mut self) -> Result<(), String> {
        let fd = kernel_eventfd();
        let unsupported = |what: &str| Err(format!("{what}: EINVAL (needs a newer kernel)"));
        self.push(&[poll_add(fd, OUT, 1, true)]);
        let first = self.wait_request(1);
        if first.res == -libc::EINVAL {
            close(fd);
            return unsupported("IORING_POLL_ADD_MULTI");
        }
        assert_eq!(
            first,
            Cqe {
                user_data: 1,
                res: OUT as i32,
                more: true
            },
            "probe"
        );
        let updated = self.op(poll_update(1, Some(2), None));
        let by_fd = self
            .op(opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build());
        close(fd);
        if updated == -libc::EINVAL {
            return unsupported("poll update");
        }
        if by_fd == -libc::EINVAL {
            return unsupported("IORING_ASYNC_CANCEL_FD | _ALL");
        }
        assert_eq!((updated, by_fd), (0, 1), "probe");
        let by_data =
            self.op(opcode::AsyncCancel2::new(types::CancelBuilder::user_data(2).all()).build());
        if by_data == -libc::EINVAL {
            return unsupported("IORING_ASYNC_CANCEL_ALL");
        }
        assert_eq!(by_data, 0, "probe");
        // The re-armed post and the cancelled multishot's end.
        while !self.cqes.iter().any(|c| c.user_data == 2 && !c.more) {
            self.wait(Duration::from_millis(20));
        }
        self.cqes.clear();
        Ok(())
    }

    /// Queues `entries` (in order, as one link chain if they say so) and
    /// submits them.
    fn push(&mut self, entries: &[squeue::Entry]) {
        for entry in entries {
            // SAFETY: the entries are polls, removes, updates and cancels,
            // which refer to no memory, and linked timeouts, whose timespec
            // the caller keeps alive until this returns (the kernel reads
            // it during the submit).
            unsafe { self.ring.submission().push(entry) }.expect("room in the submission queue");
        }
        self.ring.submit().expect("io_uring_enter");
        self.take();
    }

    /// Moves the CQEs there are into `ops` and `cqes`.
    fn take(&mut self) {
        for cqe in self.ring.completion() {
            let cqe = Cqe {
                user_data: cqe.user_data(),
                res: cqe.result(),
                more: cqueue::more(cqe.flags()),
            };
            if cqe.user_data >= OP {
                assert!(!cqe.more);
                self.ops.insert(cqe.user_data, cqe.res);
            } else {
                self.cqes.push(cqe);
            }
        }
    }

    /// Waits up to `wait` for at least one CQE (the bound only keeps a
    /// missing one from hanging the test).
    fn wait(&mut self, wait: Duration) {
        let timeout = types::Timespec::from(wait);
        let args = types::SubmitArgs::new().timespec(&timeout);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(error) if matches!(error.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(error) => panic!("io_uring_enter: {error}"),
        }
        self.take();
    }

    /// The first CQE of `user_data`, waiting for it if need be.
    fn wait_request(&mut self, user_data: u64) -> Cqe {
        let start = Instant::now();
        loop {
            if let Some(at) = self.cqes.iter().position(|c| c.user_data == user_data) {
                return self.cqes.remove(at);
            }
            assert!(start.elapsed() < GRACE, "io_uring: no CQE for {user_data}");
            self.wait(Duration::from_millis(20));
        }
    }

    /// Submits one remove, update or cancel and returns its result.
    fn op(&mut self, entry: squeue::Entry) -> i32 {
        let id = OP + self.next_op;
        self.next_op += 1;
        self.push(&[entry.user_data(id)]);
        let start = Instant::now();
        loop {
            if let Some(res) = self.ops.remove(&id) {
                return res;
            }
            assert!(
                start.elapsed() < GRACE,
                "io_uring: no CQE for operation {id}"
            );
            self.wait(Duration::from_millis(20));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Already past at submit.
    Past,
    /// An hour away: never during a run.
    Far,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    OneShot,
    Multishot,
    Deadline(Due),
}

/// A request on both sides, until its final completion is compared.
#[derive(Debug)]
struct Req {
    src: Src,
    kind: Kind,
    /// The events asked for now (an update changes them).
    mask: u32,
    /// Its user data now (an update changes it).
    user_data: u64,
    handle: Handle,
    /// The window's kernel side: the union of the `F_MORE` CQEs' events
    /// (those the harness did not predict for the kernel only), how many
    /// there were, the final CQE and the linked timeout's.
    posted: u32,
    posts: usize,
    fin: Option<i32>,
    timeout: Option<i32>,
    /// Events that only aiopoll's side posts this window (predicted).
    ours_extra: u32,
}

impl Req {
    /// Its user data is one of the shared tags.
    fn shared(&self) -> bool {
        (SHARED..SHARED + TAGS).contains(&self.user_data)
    }

    /// The events a wakeup can report to it (io_uring's mask also holds
    /// `NVAL` and `RDHUP`, which eventfds and pipes never report).
    fn events(&self) -> u32 {
        self.mask | ERR | HUP
    }
}

/// What each operation and path was seen doing, by name, summed over runs:
/// final completions compared (`ready`, `cancelled`, `timed_out`),
/// multishot windows with a post (`windows`) and those where aiopoll merged
/// several of the kernel's CQEs (`merged`), the operations' answers, and
/// the one-sided posts predicted (differences 2, 4 and 5:
/// `rearm_extra`, `pipe_read_extra`, `pipe_eagain_extra`, `fd_write_extra`).
#[derive(Debug, Default)]
struct Figures(BTreeMap<&'static str, usize>);

impl Figures {
    fn add(&mut self, name: &'static str, count: usize) {
        *self.0.entry(name).or_default() += count;
    }

    fn bump(&mut self, name: &'static str) {
        self.add(name, 1);
    }

    fn get(&self, name: &str) -> usize {
        self.0.get(name).copied().unwrap_or(0)
    }

    fn merge(&mut self, other: &Figures) {
        for (name, count) in &other.0 {
            self.add(name, *count);
        }
    }
}

/// What one request did in a window, as a reap reports it: aiopoll's
/// merged readiness, the kernel's number of `F_MORE` CQEs, and the final
/// result (in the kernel's terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    id: u64,
    merged: Option<u32>,
    posts: usize,
    fin: Option<i32>,
}

struct Run {
    fd_mode: bool,
    seed: u64,
    step: usize,
    rng: Rng,
    ring: Ring,
    context: StdContext<64>,
    counters: Vec<Counter>,
    pipes: Vec<Pipe>,
    /// Requests whose final completion is not compared yet.
    live: BTreeMap<u64, Req>,
    /// Finished requests (the most recent), for removes and updates that
    /// find nothing: id, handle, last user data.
    done: VecDeque<(u64, Handle, u64)>,
    /// Unique user data → request id (user data is never reused).
    owner: HashMap<u64, u64>,
    by_handle: HashMap<Handle, u64>,
    /// The window's kernel CQEs of shared tags: (tag, result).
    shared: Vec<(u64, i32)>,
    /// Posts predicted for the kernel only, during the operation that makes
    /// them: request id → the events its CQE must carry.
    kernel_extra: HashMap<u64, u32>,
    next_id: u64,
    next_rename: u64,
    figures: Figures,
    /// The last operations, for failure messages.
    log: VecDeque<String>,
}

/// aiopoll's final outcome as io_uring reports it in the poll's CQE.
fn kernel_result(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Ready(events) => i32::from(events.bits()),
        Outcome::Cancelled | Outcome::TimedOut => ECANCELED,
        Outcome::SourceGone => panic!("a source went with a request on it"),
    }
}

impl Run {
    fn new(seed: u64, fd_mode: bool, ring: Ring) -> Run {
        let run = Run {
            fd_mode,
            seed,
            step: 0,
            rng: Rng(seed),
            ring,
            context: StdContext::new(),
            counters: (0..2).map(|_| Counter::new(fd_mode)).collect(),
            pipes: (0..2).map(|_| Pipe::new(fd_mode)).collect(),
            live: BTreeMap::new(),
            done: VecDeque::new(),
            owner: HashMap::new(),
            by_handle: HashMap::new(),
            shared: Vec::new(),
            kernel_extra: HashMap::new(),
            next_id: 1,
            next_rename: 0,
            figures: Figures::default(),
            log: VecDeque::new(),
        };
        // The sources' first edges (epoll reports a registered descriptor
        // that is ready at once), before any request can see them.
        run.catch_up();
        run
    }

    fn at(&self) -> String {
        format!(
            "seed {} step {}{}",
            self.seed,
            self.step,
            if self.fd_mode { " (fd mode)" } else { "" }
        )
    }

    fn note(&mut self, op: String) {
        if self.log.len() == 24 {
            self.log.pop_front();
        }
        self.log.push_back(format!("{}: {op}", self.step));
    }

    fn fail(&self, what: String) -> ! {
        let requests: String = self
            .live
            .iter()
            .map(|(id, req)| format!("\n  {id}: {req:?}"))
            .collect();
        panic!(
            "{}: {what}\n live requests:{requests}\n last ops: {:#?}",
            self.at(),
            self.log
        );
    }

    fn open_sources(&self) -> Vec<Src> {
        let mut sources: Vec<Src> = (0..self.counters.len()).map(Src::Counter).collect();
        for (i, pipe) in self.pipes.iter().enumerate() {
            if pipe.read.is_some() {
                sources.push(Src::PipeRead(i));
            }
            if pipe.write.is_some() {
                sources.push(Src::PipeWrite(i));
            }
        }
        sources
    }

    /// The kernel descriptor and aiopoll's source of `src` (open).
    fn source(&self, src: Src) -> (RawFd, SharedSource) {
        match src {
            Src::Counter(i) => (self.counters[i].fd, self.counters[i].ours.source()),
            Src::PipeRead(i) => {
                let (fd, end) = self.pipes[i].read.as_ref().expect("open");
                (*fd, end.source())
            }
            Src::PipeWrite(i) => {
                let (fd, end) = self.pipes[i].write.as_ref().expect("open");
                (*fd, end.source())
            }
        }
    }

    fn random_mask(&mut self) -> u32 {
        if self.rng.chance(5) {
            return 0; // waits for ERR / HUP only
        }
        if self.rng.chance(50) {
            // What programs mostly ask for.
            let common = [IN, OUT, RDNORM, WRNORM, IN | OUT, IN | RDNORM, OUT | WRNORM];
            return common[self.rng.below(common.len())];
        }
        let mut mask = 0;
        for _ in 0..1 + self.rng.below(3) {
            mask |= KNOWN[self.rng.below(KNOWN.len())];
        }
        mask
    }

    /// Takes the kernel's CQEs and files each under its request.
    fn absorb(&mut self) {
        self.ring.take();
        for cqe in std::mem::take(&mut self.ring.cqes) {
            let ud = cqe.user_data;
            if (TIMEOUT..OP).contains(&ud) {
                let id = ud - TIMEOUT;
                let Some(req) = self.live.get_mut(&id) else {
                    self.fail(format!("linked timeout CQE {cqe:?} of a finished request"));
                };
                if req.timeout.replace(cqe.res).is_some() {
                    self.fail(format!("a second linked timeout CQE {cqe:?}"));
                }
                continue;
            }
            if (SHARED..SHARED + TAGS).contains(&ud) {
                if cqe.more {
                    self.fail(format!("F_MORE on a shared tag: {cqe:?}"));
                }
                self.shared.push((ud, cqe.res));
                continue;
            }
            let Some(&id) = self.owner.get(&ud) else {
                self.fail(format!("a CQE of no request: {cqe:?}"));
            };
            let predicted = self.kernel_extra.remove(&id);
            let Some(req) = self.live.get_mut(&id) else {
                self.fail(format!("a CQE {cqe:?} of request {id}, already finished"));
            };
            if cqe.more {
                if req.kind != Kind::Multishot || cqe.res <= 0 {
                    self.fail(format!("F_MORE CQE {cqe:?} of request {id}"));
                }
                match predicted {
                    Some(events) if cqe.res as u32 == events => {}
                    Some(events) => self.fail(format!(
                        "request {id}: the kernel's predicted post is {cqe:?}, not {events:#x}"
                    )),
                    None => {
                        req.posted |= cqe.res as u32;
                        req.posts += 1;
                    }
                }
            } else {
                if let Some(events) = predicted {
                    self.fail(format!(
                        "request {id}: the final {cqe:?} came instead of the predicted post {events:#x}"
                    ));
                }
                if req.fin.replace(cqe.res).is_some() {
                    self.fail(format!("a second final CQE {cqe:?} of request {id}"));
                }
            }
        }
    }

    /// After an operation that predicted posts for the kernel only: waits
    /// until each has come (io_uring posts them before the call returns;
    /// the wait is only a bound).
    fn kernel_extra_done(&mut self) {
        let start = Instant::now();
        while !self.kernel_extra.is_empty() {
            if start.elapsed() > GRACE {
                self.fail(format!(
                    "predicted kernel posts missing: {:?}",
                    self.kernel_extra
                ));
            }
            self.ring.wait(Duration::from_millis(20));
            self.absorb();
        }
    }

    /// How many completions aiopoll's queue must hold now: one per request
    /// whose final CQE the kernel posted, or multishot request with a post
    /// this window on either side.
    fn expected(&self) -> usize {
        self.live
            .values()
            .filter(|r| {
                r.fin.is_some() || (r.kind == Kind::Multishot && (r.posted | r.ours_extra) != 0)
            })
            .count()
            + self.shared.len()
    }

    /// Waits until aiopoll's side holds the completions the kernel's says
    /// it must, and every linked timeout of a finished poll has posted,
    /// without reaping: aiopoll's completions must come on their own
    /// (inline, from the poller thread, or from deferred work run by the
    /// context's thread), not from a reap. (Readiness merged into a
    /// multishot completion already waiting does not change the count; its
    /// wakeup has completed inline or left deferred work pending before the
    /// operation returned, which the reap runs, or waits for, first.)
    fn settle(&mut self) {
        let start = Instant::now();
        loop {
            self.absorb();
            let ours = self.context.completions();
            let expected = self.expected();
            let timeouts_due = self.live.values().any(|r| {
                matches!(r.kind, Kind::Deadline(_)) && r.fin.is_some() != r.timeout.is_some()
            });
            if ours == expected && !timeouts_due {
                return;
            }
            if start.elapsed() > GRACE {
                // Reap and compare what there is, for a detailed message.
                self.compare_reaped();
                self.fail(format!(
                    "{ours} completions wait on aiopoll's side, the kernel's CQEs say \
                     {expected}, and nothing reaped (linked timeouts still due: {timeouts_due})"
                ));
            }
            if ours > expected || timeouts_due {
                self.ring.wait(Duration::from_millis(20));
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Waits until the kernel has posted request `id`'s final CQE (a linked
    /// timeout fires in timer context, a moment after the submit).
    fn kernel_wait_for(&mut self, id: u64) {
        let start = Instant::now();
        while self.live.get(&id).is_some_and(|r| r.fin.is_none()) {
            if start.elapsed() > GRACE {
                self.fail(format!("the kernel did not complete {id}"));
            }
            self.ring.wait(Duration::from_millis(20));
            self.absorb();
        }
    }

    fn submit(&mut self) {
        if self.live.len() >= 32 {
            return;
        }
        let sources = self.open_sources();
        let src = sources[self.rng.below(sources.len())];
        let mask = self.random_mask();
        let kind = match self.rng.below(10) {
            0..=4 => Kind::OneShot,
            5..=7 => Kind::Multishot,
            8 => Kind::Deadline(Due::Past),
            _ => Kind::Deadline(Due::Far),
        };
        let tag = (kind == Kind::OneShot && self.rng.chance(30))
            .then(|| SHARED + self.rng.below(TAGS as usize) as u64);
        self.submit_on(src, mask, kind, tag);
    }

    /// Submits on both sides; returns the request's id. `tag`: a shared
    /// user data value (one-shot requests only) instead of the id.
    fn submit_on(&mut self, src: Src, mask: u32, kind: Kind, tag: Option<u64>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let user_data = tag.unwrap_or(id);
        self.note(format!(
            "submit {id} {kind:?} {src:?} {mask:#x} ud {user_data:#x}"
        ));
        let (fd, source) = self.source(src);
        let events = Events::from_linux(mask).expect("poll events only");
        let ours = match kind {
            Kind::OneShot => self.context.submit(&source, events, user_data),
            Kind::Multishot => self.context.submit_multishot(&source, events, user_data),
            Kind::Deadline(due) => {
                let deadline = match due {
                    Due::Past => Instant::now(),
                    Due::Far => Instant::now() + FAR,
                };
                self.context
                    .submit_with_deadline(&source, events, user_data, deadline)
            }
        };
        let handle = match ours {
            Ok(handle) => handle,
            Err(error) => self.fail(format!("aiopoll refused submit {id}: {error}")),
        };
        self.live.insert(
            id,
            Req {
                src,
                kind,
                mask,
                user_data,
                handle,
                posted: 0,
                posts: 0,
                fin: None,
                timeout: None,
                ours_extra: 0,
            },
        );
        if tag.is_none() {
            self.owner.insert(user_data, id);
        }
        self.by_handle.insert(handle, id);
        let poll = poll_add(fd, mask, user_data, kind == Kind::Multishot);
        match kind {
            Kind::Deadline(due) => {
                let timespec = match due {
                    Due::Past => types::Timespec::new(),
                    Due::Far => types::Timespec::from(FAR),
                };
                let timeout = opcode::LinkTimeout::new(&timespec)
                    .build()
                    .user_data(TIMEOUT + id);
                self.ring
                    .push(&[poll.flags(squeue::Flags::IO_LINK), timeout]);
            }
            _ => self.ring.push(&[poll]),
        }
        self.absorb();
        if kind == Kind::Deadline(Due::Past) {
            // Both sides time it out unless it is ready now; wait for the
            // kernel's timer before anything can make it ready.
            self.kernel_wait_for(id);
        }
        id
    }

    /// A request to remove or update one at a time: mostly live ones, some
    /// finished; never one with a shared tag.
    fn pick_single(&mut self) -> Option<u64> {
        let mut ids: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, r)| !r.shared())
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() || self.rng.chance(15) {
            let shared = SHARED..SHARED + TAGS;
            ids.extend(
                self.done
                    .iter()
                    .filter(|d| !shared.contains(&d.2))
                    .map(|d| d.0),
            );
        }
        (!ids.is_empty()).then(|| ids[self.rng.below(ids.len())])
    }

    /// The handle and user data of request `id`, live or finished.
    fn handle_of(&self, id: u64) -> (Handle, u64) {
        match self.live.get(&id) {
            Some(req) => (req.handle, req.user_data),
            None => {
                let done = self.done.iter().find(|d| d.0 == id).expect("known");
                (done.1, done.2)
            }
        }
    }

    fn remove(&mut self) {
        if let Some(id) = self.pick_single() {
            self.remove_id(id);
        }
    }

    /// `POLL_REMOVE` against `cancel`; returns the kernel's result.
    fn remove_id(&mut self, id: u64) -> i32 {
        let (handle, user_data) = self.handle_of(id);
        self.note(format!("remove {id} (ud {user_data:#x})"));
        let ours = match self.context.cancel(handle) {
            Ok(_) => 0,
            Err(_) => ENOENT,
        };
        let kernel = self.ring.op(opcode::PollRemove::new(user_data).build());
        if ours != kernel {
            self.fail(format!("remove {id}: aiopoll {ours}, io_uring {kernel}"));
        }
        if kernel == 0 {
            self.figures.bump("remove_found");
        } else {
            self.figures.bump("remove_not_found");
        }
        self.absorb();
        kernel
    }

    fn update(&mut self) {
        let Some(id) = self.pick_single() else {
            return;
        };
        let events = self.rng.chance(60).then(|| self.random_mask());
        let kind = self.live.get(&id).map(|r| r.kind);
        let user_data = if events.is_none() || self.rng.chance(50) {
            if kind == Some(Kind::OneShot) && self.rng.chance(30) {
                Some(SHARED + self.rng.below(TAGS as usize) as u64)
            } else {
                self.next_rename += 1;
                Some(RENAMED + self.next_rename)
            }
        } else {
            None
        };
        self.update_id(id, events, user_data);
    }

    /// A poll update against `update`; returns the kernel's result and
    /// aiopoll's answer.
    fn update_id(
        &mut self,
        id: u64,
        events: Option<u32>,
        user_data: Option<u64>,
    ) -> (i32, Option<Updated>) {
        let (handle, old) = self.handle_of(id);
        self.note(format!(
            "update {id} (ud {old:#x}) events {events:x?} user data {user_data:x?}"
        ));
        // io_uring re-arms the request even for new user data alone: a
        // multishot request whose events are ready posts them again
        // (difference 2), if the update finds it.
        let rearm = match self.live.get(&id) {
            Some(req) if req.kind == Kind::Multishot && req.fin.is_none() && events.is_none() => {
                let (fd, _) = self.source(req.src);
                kernel_readiness(fd) & req.events()
            }
            _ => 0,
        };
        let ours = self.context.update(
            handle,
            events.map(|mask| Events::from_linux(mask).expect("poll events only")),
            user_data,
        );
        if rearm != 0 && ours.is_ok() {
            self.kernel_extra.insert(id, rearm);
            self.figures.bump("rearm_extra");
        }
        let kernel = self.ring.op(poll_update(old, user_data, events));
        let ours_res = if ours.is_ok() { 0 } else { ENOENT };
        if ours_res != kernel {
            self.fail(format!("update {id}: aiopoll {ours:?}, io_uring {kernel}"));
        }
        match ours {
            Ok(updated) => {
                self.figures.bump("update_ok");
                if updated == Updated::Completed {
                    self.figures.bump("update_completed");
                }
                let req = self.live.get_mut(&id).expect("an update found it");
                if let Some(mask) = events {
                    req.mask = mask;
                }
                if let Some(user_data) = user_data {
                    req.user_data = user_data;
                    if !(SHARED..SHARED + TAGS).contains(&user_data) {
                        self.owner.insert(user_data, id);
                    }
                }
            }
            Err(_) => self.figures.bump("update_not_found"),
        }
        self.absorb();
        self.kernel_extra_done();
        (kernel, ours.ok())
    }

    fn cancel_user_data(&mut self) {
        let user_data = match self.rng.below(10) {
            0..=5 => SHARED + self.rng.below(TAGS as usize) as u64,
            6..=7 => match self.pick_single() {
                Some(id) => self.handle_of(id).1,
                None => return,
            },
            8 => RENAMED + self.next_rename + 1, // nobody's
            _ => self.next_id + 100,             // nobody's
        };
        self.cancel_user_data_of(user_data);
    }

    /// `ASYNC_CANCEL` with `_ALL` by user data against `cancel_user_data`;
    /// returns the number cancelled.
    fn cancel_user_data_of(&mut self, user_data: u64) -> i32 {
        self.note(format!("cancel user data {user_data:#x}"));
        let ours = self.context.cancel_user_data(user_data) as i32;
        let kernel = self
            .ring
            .op(
                opcode::AsyncCancel2::new(types::CancelBuilder::user_data(user_data).all()).build(),
            );
        if ours != kernel {
            self.fail(format!(
                "cancel user data {user_data:#x}: aiopoll {ours}, io_uring {kernel}"
            ));
        }
        self.figures.bump("cancel_data_calls");
        self.figures.add("cancel_data_cancelled", kernel as usize);
        if kernel > 1 {
            self.figures.bump("cancel_data_several");
        }
        self.absorb();
        kernel
    }

    fn cancel_source(&mut self) {
        let sources = self.open_sources();
        let src = sources[self.rng.below(sources.len())];
        self.cancel_source_of(src);
    }

    /// `ASYNC_CANCEL` with `_FD | _ALL` against `cancel_source`; returns the
    /// number cancelled.
    fn cancel_source_of(&mut self, src: Src) -> i32 {
        self.note(format!("cancel source {src:?}"));
        let (fd, source) = self.source(src);
        let ours = self.context.cancel_source(&source) as i32;
        let kernel = self
            .ring
            .op(opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build());
        if ours != kernel {
            self.fail(format!(
                "cancel source {src:?}: aiopoll {ours}, io_uring {kernel}"
            ));
        }
        self.figures.add("cancel_source_cancelled", kernel as usize);
        self.absorb();
        kernel
    }

    /// After an operation that woke `src`'s waiters: sometimes removes or
    /// updates one of the requests on it at once, before anything else
    /// happens. A wakeup that got there first must win on both sides.
    fn maybe_act_on(&mut self, src: Src) {
        if !self.rng.chance(40) {
            return;
        }
        let ids: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, r)| r.src == src && !r.shared())
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.below(ids.len())];
        if self.rng.chance(70) {
            self.remove_id(id);
        } else {
            let events = self.random_mask();
            self.update_id(id, Some(events), None);
        }
    }

    /// In fd mode, after a write, a read or a close, and after fresh
    /// descriptors are registered: waits for the poller thread to deliver
    /// what it raised (see the aio differential test).
    fn catch_up(&self) {
        if let OurCounter::Fd(fd) = &self.counters[0].ours {
            fd.catch_up();
        }
    }

    /// The live multishot requests on `src` that have not ended.
    fn multishots_on(&self, src: Src) -> Vec<u64> {
        self.live
            .iter()
            .filter(|(_, r)| r.src == src && r.kind == Kind::Multishot && r.fin.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    fn counter_write(&mut self) {
        let i = self.rng.below(self.counters.len());
        let values = [1, 2, 5, 1 << 40, u64::MAX - 1, u64::MAX, u64::MAX - 3];
        let value = values[self.rng.below(values.len())];
        self.counter_write_at(i, value);
        self.maybe_act_on(Src::Counter(i));
    }

    /// Writes `value` to eventfd `i` on both sides; returns the result.
    fn counter_write_at(&mut self, i: usize, value: u64) -> i64 {
        self.note(format!("eventfd {i} write {value:#x}"));
        let counter = &self.counters[i];
        let kernel = raw_write(counter.fd, &value.to_ne_bytes());
        let ours = counter.ours.write(value);
        self.catch_up();
        if ours != kernel {
            self.fail(format!(
                "eventfd {i} write {value:#x}: aiopoll {ours}, kernel {kernel}"
            ));
        }
        if self.fd_mode && kernel > 0 {
            // Difference 5: the `Fd` posts the eventfd's readiness, io_uring
            // the write's key (IN).
            let ready = self.counters[i].ours.readiness().to_linux();
            for id in self.multishots_on(Src::Counter(i)) {
                let req = self.live.get_mut(&id).expect("live");
                let extra = ready & req.events() & !IN;
                if extra != 0 {
                    req.ours_extra |= ready & req.events();
                    self.figures.bump("fd_write_extra");
                }
            }
        }
        self.absorb();
        kernel
    }

    fn counter_read(&mut self) {
        let i = self.rng.below(self.counters.len());
        self.counter_read_at(i);
        self.maybe_act_on(Src::Counter(i));
    }

    /// Reads eventfd `i` on both sides; returns the count read, or minus
    /// errno.
    fn counter_read_at(&mut self, i: usize) -> i64 {
        self.note(format!("eventfd {i} read"));
        let counter = &self.counters[i];
        let mut bytes = [0; 8];
        let kernel = raw_read(counter.fd, &mut bytes);
        let value = u64::from_ne_bytes(bytes);
        let ours = counter.ours.read();
        self.catch_up();
        let same = if kernel > 0 {
            ours == (kernel, value)
        } else {
            ours.0 == kernel
        };
        if !same {
            self.fail(format!(
                "eventfd {i} read: aiopoll {ours:?}, kernel {kernel} {value}"
            ));
        }
        self.absorb();
        if kernel > 0 {
            value as i64
        } else {
            kernel
        }
    }

    fn pipe_write(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let pages = 1 + self.rng.below(20);
        if self.pipe_write_at(i, pages).is_some() && self.pipes[i].read.is_some() {
            self.maybe_act_on(Src::PipeRead(i));
        }
    }

    /// Writes `pages` pages to pipe `i` on both sides; returns the result
    /// (`None` if its write end is closed).
    fn pipe_write_at(&mut self, i: usize, pages: usize) -> Option<i64> {
        self.note(format!("pipe {i} write {pages} pages"));
        let pipe = &self.pipes[i];
        let (fd, writer) = pipe.write.as_ref()?;
        let data: Vec<u8> = (0..pages * PAGE)
            .map(|k| pipe.next.wrapping_add(k as u8))
            .collect();
        let kernel = raw_write(*fd, &data);
        let ours = writer.write(&data);
        self.catch_up();
        if ours != kernel {
            self.fail(format!(
                "pipe {i} write {pages} pages: aiopoll {ours}, kernel {kernel}"
            ));
        }
        if kernel > 0 {
            let pipe = &mut self.pipes[i];
            pipe.next = pipe.next.wrapping_add(kernel as u8);
        }
        if !self.fd_mode && kernel == -EAGAIN && self.pipes[i].read.is_some() {
            // Difference 4: a Linux pipe wakes its readers even when a write
            // fails for want of room; aiopoll's pipe does not.
            for id in self.multishots_on(Src::PipeRead(i)) {
                let events = (IN | RDNORM) & self.live[&id].events();
                if events != 0 {
                    self.kernel_extra.insert(id, events);
                    self.figures.bump("pipe_eagain_extra");
                }
            }
        }
        self.absorb();
        self.kernel_extra_done();
        Some(kernel)
    }

    fn pipe_read(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let pages = 1 + self.rng.below(20);
        if self.pipe_read_at(i, pages).is_some() && self.pipes[i].write.is_some() {
            self.maybe_act_on(Src::PipeWrite(i));
        }
    }

    /// Reads up to `pages` pages from pipe `i` on both sides; returns the
    /// result (`None` if its read end is closed).
    fn pipe_read_at(&mut self, i: usize, pages: usize) -> Option<i64> {
        self.note(format!("pipe {i} read {pages} pages"));
        let writer_fd = self.pipes[i].write.as_ref().map(|w| w.0);
        let (fd, reader) = self.pipes[i].read.as_ref()?;
        let was_full = writer_fd.is_some_and(|w| kernel_readiness(w) & OUT == 0);
        let mut kernel_data = vec![0u8; pages * PAGE];
        let mut our_data = vec![0u8; pages * PAGE];
        let kernel = raw_read(*fd, &mut kernel_data);
        let ours = reader.read(&mut our_data);
        self.catch_up();
        if ours != kernel {
            self.fail(format!(
                "pipe {i} read {pages} pages: aiopoll {ours}, kernel {kernel}"
            ));
        }
        if kernel > 0 {
            let n = kernel as usize;
            if kernel_data[..n] != our_data[..n] {
                self.fail(format!("pipe {i}: the data read differ"));
            }
        }
        if !self.fd_mode && kernel > 0 && !was_full && writer_fd.is_some() {
            // Difference 4: aiopoll's pipe wakes its writers at every read;
            // Linux's only when a read frees a page of a full pipe.
            for id in self.multishots_on(Src::PipeWrite(i)) {
                let req = self.live.get_mut(&id).expect("live");
                let events = (OUT | WRNORM) & req.events();
                if events != 0 {
                    req.ours_extra |= events;
                    self.figures.bump("pipe_read_extra");
                }
            }
        }
        self.absorb();
        Some(kernel)
    }

    fn close_end(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let read = self.rng.chance(50);
        if self.close_end_at(i, read) {
            let other = if read {
                Src::PipeWrite(i)
            } else {
                Src::PipeRead(i)
            };
            self.maybe_act_on(other);
        }
    }

    /// Closes pipe `i`'s read (or write) end on both sides, unless requests
    /// wait on it; a pipe with both ends closed is made anew. Returns
    /// whether the other end is still open (and its requests were woken).
    fn close_end_at(&mut self, i: usize, read: bool) -> bool {
        let src = if read {
            Src::PipeRead(i)
        } else {
            Src::PipeWrite(i)
        };
        // io_uring holds the file open while a request is on it, aiopoll's
        // source completes them SourceGone: not comparable, skip.
        if self.live.values().any(|r| r.src == src) {
            return false;
        }
        let pipe = &mut self.pipes[i];
        let end = if read {
            pipe.read.take()
        } else {
            pipe.write.take()
        };
        let Some((fd, ours)) = end else {
            return false;
        };
        self.note(format!(
            "pipe {i} close {}",
            if read { "read end" } else { "write end" }
        ));
        close(fd);
        drop(ours);
        let pipe = &mut self.pipes[i];
        let fresh = pipe.read.is_none() && pipe.write.is_none();
        if fresh {
            *pipe = Pipe::new(self.fd_mode);
        }
        // In fd mode this also delivers the edge epoll raises when it
        // registers a fresh pipe's ready write end, which would otherwise
        // reach a multishot request submitted after it (a second post).
        self.catch_up();
        self.absorb();
        !fresh
    }

    /// Reaps both sides and compares the window, request by request (see
    /// the module doc); returns what each request did, by id.
    fn compare(&mut self) -> Vec<Window> {
        self.note("reap".into());
        self.settle();
        self.compare_reaped()
    }

    /// [`compare`](Self::compare) without waiting first.
    fn compare_reaped(&mut self) -> Vec<Window> {
        let mut completions: Vec<Completion> = Vec::new();
        loop {
            let batch = self
                .context
                .get_events(0, 64, Some(Duration::ZERO))
                .expect("min <= max");
            if batch.is_empty() {
                break;
            }
            completions.extend(batch);
        }
        // aiopoll's side, by request: merged readiness, final outcome.
        let mut ours: BTreeMap<u64, (Option<u32>, Option<Outcome>)> = BTreeMap::new();
        let mut shared_ours: Vec<(u64, i32)> = Vec::new();
        for completion in &completions {
            let Some(&id) = self.by_handle.get(&completion.handle) else {
                self.fail(format!("a completion of no request: {completion:?}"));
            };
            let Some(req) = self.live.get(&id) else {
                self.fail(format!(
                    "a completion of finished request {id}: {completion:?}"
                ));
            };
            // Difference 3: aiopoll reports the user data the request has now.
            if completion.user_data != req.user_data {
                self.fail(format!(
                    "request {id}'s completion {completion:?} has not its user data {:#x}",
                    req.user_data
                ));
            }
            let entry = ours.entry(id).or_default();
            if completion.more {
                let Outcome::Ready(events) = completion.outcome else {
                    self.fail(format!("more without readiness: {completion:?}"));
                };
                if req.kind != Kind::Multishot || entry.0.is_some() || entry.1.is_some() {
                    self.fail(format!(
                        "request {id}: readiness {completion:?} after another completion of this window"
                    ));
                }
                entry.0 = Some(u32::from(events.bits()));
            } else {
                if entry.1.is_some() {
                    self.fail(format!("request {id} completed twice: {completion:?}"));
                }
                entry.1 = Some(completion.outcome);
                if req.shared() {
                    shared_ours.push((req.user_data, kernel_result(completion.outcome)));
                }
            }
        }
        // Shared tags: as multisets.
        let mut shared_kernel = std::mem::take(&mut self.shared);
        shared_kernel.sort_unstable();
        shared_ours.sort_unstable();
        if shared_kernel != shared_ours {
            self.fail(format!(
                "shared tags' completions differ: io_uring {shared_kernel:?}, aiopoll {shared_ours:?}"
            ));
        }
        let mut windows = Vec::new();
        let mut finished = Vec::new();
        for (&id, req) in &self.live {
            let (merged, outcome) = ours.get(&id).copied().unwrap_or_default();
            if req.shared() {
                if let Some(outcome) = outcome {
                    finished.push(id);
                    windows.push(Window {
                        id,
                        merged: None,
                        posts: 0,
                        fin: Some(kernel_result(outcome)),
                    });
                }
                continue;
            }
            let expected_merged = req.posted | req.ours_extra;
            if merged.unwrap_or(0) != expected_merged {
                self.fail(format!(
                    "request {id}: aiopoll's merged readiness {merged:x?}, io_uring's posts \
                     {:#x} ({} CQEs) and aiopoll-only posts {:#x}",
                    req.posted, req.posts, req.ours_extra
                ));
            }
            let fin = outcome.map(kernel_result);
            if fin != req.fin {
                self.fail(format!(
                    "request {id}: aiopoll's final {outcome:?}, io_uring's {:?}",
                    req.fin
                ));
            }
            if let Kind::Deadline(due) = req.kind {
                let timeout = match outcome {
                    None => None,
                    Some(Outcome::TimedOut) => Some(ETIME),
                    // The poll completed at its submit while its timer,
                    // already due, was armed: the timer may fire first and
                    // find nothing to cancel (a race inside the kernel).
                    Some(Outcome::Ready(_)) if due == Due::Past => {
                        if req.timeout == Some(ENOENT) {
                            self.figures.bump("past_ready_timeout_enoent");
                            Some(ENOENT)
                        } else {
                            self.figures.bump("past_ready_timeout_ecanceled");
                            Some(ECANCELED)
                        }
                    }
                    Some(_) => Some(ECANCELED),
                };
                if timeout != req.timeout {
                    self.fail(format!(
                        "request {id}: aiopoll's {outcome:?} means a linked timeout \
                         {timeout:?}, io_uring's is {:?}",
                        req.timeout
                    ));
                }
            }
            if merged.is_some() {
                self.figures.bump("windows");
                if req.posts > 1 {
                    self.figures.bump("merged");
                }
            }
            if let Some(outcome) = outcome {
                finished.push(id);
                match outcome {
                    Outcome::Ready(_) => self.figures.bump("ready"),
                    Outcome::Cancelled => self.figures.bump("cancelled"),
                    Outcome::TimedOut => self.figures.bump("timed_out"),
                    Outcome::SourceGone => {}
                }
            }
            if merged.is_some() || outcome.is_some() {
                windows.push(Window {
                    id,
                    merged,
                    posts: req.posts,
                    fin,
                });
            }
        }
        self.figures
            .add("finals", ours.values().filter(|o| o.1.is_some()).count());
        for id in finished {
            let req = self.live.remove(&id).expect("live");
            if self.done.len() == 40 {
                self.done.pop_front();
            }
            self.done.push_back((id, req.handle, req.user_data));
        }
        for req in self.live.values_mut() {
            req.posted = 0;
            req.posts = 0;
            req.ours_extra = 0;
        }
        windows
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=23 => self.submit(),
            24..=29 => self.remove(),
            30..=35 => self.update(),
            36..=39 => self.cancel_user_data(),
            40..=42 => self.cancel_source(),
            43..=54 => self.counter_write(),
            55..=61 => self.counter_read(),
            62..=72 => self.pipe_write(),
            73..=82 => self.pipe_read(),
            83..=86 => self.close_end(),
            _ => {
                self.compare();
            }
        }
        self.settle();
        compare_readiness(&self.counters, &self.pipes, &self.at());
    }

    /// Reaps, removes or cancels everything left on both sides, and
    /// compares once more.
    fn finish(mut self) -> Figures {
        self.compare();
        let left: Vec<u64> = self.live.keys().copied().collect();
        for id in left {
            if !self.live.contains_key(&id) {
                continue; // a shared tag's cancel took it
            }
            if self.live[&id].shared() {
                let tag = self.live[&id].user_data;
                assert!(
                    self.cancel_user_data_of(tag) > 0,
                    "{}: final cancel",
                    self.at()
                );
            } else {
                assert_eq!(self.remove_id(id), 0, "{}: final remove", self.at());
            }
            self.settle();
            self.compare();
        }
        assert!(self.live.is_empty(), "{}: {:?}", self.at(), self.live);
        assert_eq!(self.context.in_use(), 0);
        for counter in &self.counters {
            close(counter.fd);
        }
        for pipe in &mut self.pipes {
            for fd in [
                pipe.read.take().map(|e| e.0),
                pipe.write.take().map(|e| e.0),
            ]
            .into_iter()
            .flatten()
            {
                close(fd);
            }
        }
        self.figures
    }
}

fn run_seed(seed: u64, steps: usize, fd_mode: bool, ring: Ring) -> Figures {
    let mut run = Run::new(seed, fd_mode, ring);
    for step in 0..steps {
        run.step = step;
        run.step();
    }
    run.figures.add("steps", steps);
    run.finish()
}

/// Runs the fixed seeds (and `AIOPOLL_DIFF_SEEDS` more); returns the
/// figures, or `None` if io_uring is unavailable.
fn run_seeds(
    test: &str,
    fixed: std::ops::RangeInclusive<u64>,
    steps: usize,
    fd_mode: bool,
) -> Option<(usize, Figures)> {
    let extra = extra_seeds();
    let mut figures = Figures::default();
    let mut count = 0;
    for seed in fixed.chain((0..extra).map(|k| 1_000 + k)) {
        let ring = match Ring::new() {
            Ok(ring) => ring,
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
        figures.merge(&run_seed(seed, steps, fd_mode, ring));
        count += 1;
    }
    println!("{test}: {count} seeds x {steps} steps: {figures:#?}");
    Some((count, figures))
}

#[test]
fn uring_poll_matches_on_fixed_seeds() {
    let Some((_, f)) = run_seeds(
        "uring_poll_matches_on_fixed_seeds",
        SEEDS,
        steps(STEPS),
        false,
    ) else {
        return;
    };
    // Every feature and every modelled difference of this run was seen.
    let seen = [
        "merged",
        "ready",
        "cancelled",
        "timed_out",
        "remove_found",
        "remove_not_found",
        "update_ok",
        "update_completed",
        "update_not_found",
        "cancel_data_several",
        "cancel_source_cancelled",
        "pipe_read_extra",
        "pipe_eagain_extra",
        "rearm_extra",
    ];
    assert!(seen.iter().all(|name| f.get(name) > 0), "{f:#?}");
}

/// The same random sequences with aiopoll's side on `Fd`s over twin kernel
/// eventfds and pipes. Fewer seeds: every completion on this side crosses a
/// thread.
#[test]
fn uring_poll_matches_on_fds() {
    let Some((_, f)) = run_seeds("uring_poll_matches_on_fds", 1..=8, 300, true) else {
        return;
    };
    let seen = [
        "merged",
        "cancelled",
        "timed_out",
        "update_ok",
        "fd_write_extra",
    ];
    assert!(seen.iter().all(|name| f.get(name) > 0), "{f:#?}");
}

/// A final completion in a window, as [`Run::compare`] reports it.
fn fin(id: u64, res: u32) -> Window {
    Window {
        id,
        merged: None,
        posts: 0,
        fin: Some(res as i32),
    }
}

/// `fin` for a cancelled (or timed out) request.
fn gone(id: u64) -> Window {
    Window {
        fin: Some(ECANCELED),
        ..fin(id, 0)
    }
}

/// Multishot readiness in a window: aiopoll's merged events, and how many
/// CQEs io_uring posted (not counting those predicted for it alone).
fn posted(id: u64, merged: u32, posts: usize) -> Window {
    Window {
        id,
        merged: Some(merged),
        posts,
        fin: None,
    }
}

/// Each feature on a scripted sequence, run on both sides and compared as
/// in the random runs (every result and completion), with what io_uring
/// answers spelled out; then each modelled difference once.
fn table_cases(fd_mode: bool, ring: Ring) {
    const PRI: u32 = 0x2;
    const RDHUP: u32 = 0x2000;
    let mut run = Run::new(0, fd_mode, ring);
    let (c, r, w) = (Src::Counter(0), Src::PipeRead(0), Src::PipeWrite(0));

    // One-shot: ready at submit (an eventfd is writable: OUT), then by a
    // write; a remove right after that wakeup finds nothing on both sides.
    let id = run.submit_on(c, IN | OUT, Kind::OneShot, None);
    assert_eq!(run.compare(), [fin(id, OUT)]);
    let id = run.submit_on(c, IN, Kind::OneShot, None);
    assert_eq!(run.counter_write_at(0, 1), 8);
    assert_eq!(run.remove_id(id), ENOENT);
    assert_eq!(run.compare(), [fin(id, IN)]);
    assert_eq!(run.counter_read_at(0), 1);

    // Multishot: posted at submit (OUT), then at each write (IN): io_uring
    // posts three CQEs, aiopoll merges them into one completion.
    let id = run.submit_on(c, IN | OUT, Kind::Multishot, None);
    run.counter_write_at(0, 1);
    run.counter_write_at(0, 2);
    assert_eq!(run.compare(), [posted(id, IN | OUT, 3)]);
    // A read (key OUT) posts again; a remove ends it after that readiness.
    assert_eq!(run.counter_read_at(0), 3);
    assert_eq!(run.remove_id(id), 0);
    assert_eq!(
        run.compare(),
        [Window {
            fin: Some(ECANCELED),
            ..posted(id, OUT, 1)
        }]
    );
    assert_eq!(run.remove_id(id), ENOENT);

    // Update: a request for RDHUP (never on an eventfd) updated to OUT
    // completes at once with OUT; the update of a finished one finds
    // nothing.
    let id = run.submit_on(c, RDHUP, Kind::OneShot, None);
    assert_eq!(run.compare(), []);
    assert_eq!(
        run.update_id(id, Some(OUT), None),
        (0, Some(Updated::Completed))
    );
    assert_eq!(run.compare(), [fin(id, OUT)]);
    assert_eq!(run.update_id(id, Some(IN), None), (ENOENT, None));
    // New user data for a one-shot request: its completion carries it.
    let id = run.submit_on(c, IN, Kind::OneShot, None);
    assert_eq!(
        run.update_id(id, None, Some(RENAMED + 1_000)),
        (0, Some(Updated::Waiting))
    );
    run.counter_write_at(0, 1);
    assert_eq!(run.compare(), [fin(id, IN)]);
    run.counter_read_at(0);

    // Difference 2: new user data alone for a multishot request whose OUT
    // is ready: io_uring re-arms it and posts OUT again (predicted, so not
    // counted), aiopoll posts nothing.
    let id = run.submit_on(c, OUT, Kind::Multishot, None);
    assert_eq!(run.compare(), [posted(id, OUT, 1)]);
    let before = run.figures.get("rearm_extra");
    run.update_id(id, None, Some(RENAMED + 1_001));
    assert_eq!(run.figures.get("rearm_extra"), before + 1);
    assert_eq!(run.compare(), []);
    // Difference 3: readiness posted under one user data, then renamed
    // before the reap: io_uring's CQE carries the old one, aiopoll's merged
    // completion the new one (each checked by `compare`).
    run.counter_write_at(0, 1);
    run.counter_read_at(0); // OUT posted
    assert_eq!(
        run.update_id(id, Some(OUT), Some(RENAMED + 1_002)),
        (0, Some(Updated::Waiting))
    ); // a new mask re-polls on both sides: OUT posted again
    assert_eq!(run.compare(), [posted(id, OUT, 2)]);
    assert_eq!(run.remove_id(id), 0);
    assert_eq!(run.compare(), [gone(id)]);

    // Cancel by user data: three requests on the pipe's read end and one
    // on the eventfd share a tag (PRI: never ready on either); one call
    // cancels the four, a second finds none.
    let tag = SHARED + 1;
    let ids: Vec<u64> = [r, r, r, c]
        .into_iter()
        .map(|src| run.submit_on(src, PRI, Kind::OneShot, Some(tag)))
        .collect();
    assert_eq!(run.cancel_user_data_of(tag), 4);
    assert_eq!(
        run.compare(),
        ids.iter().map(|&id| gone(id)).collect::<Vec<_>>()
    );
    assert_eq!(run.cancel_user_data_of(tag), 0);

    // Cancel by source: a one-shot, a multishot and a deadline request on
    // the read end go; the write end's request stays.
    let a = run.submit_on(r, PRI, Kind::OneShot, None);
    let b = run.submit_on(r, PRI, Kind::Multishot, None);
    let d = run.submit_on(r, PRI, Kind::Deadline(Due::Far), None);
    let keep = run.submit_on(w, PRI, Kind::OneShot, None);
    assert_eq!(run.cancel_source_of(r), 3);
    assert_eq!(run.compare(), [gone(a), gone(b), gone(d)]);
    assert_eq!(run.cancel_source_of(r), 0);
    assert_eq!(run.remove_id(keep), 0);
    assert_eq!(run.compare(), [gone(keep)]);

    // Deadlines (linked timeouts). Past and not ready: timed out (the poll
    // -ECANCELED, its timeout -ETIME). Past and ready: ready. Far: ready
    // when a write comes, cancelled by a remove (the timeout -ECANCELED).
    let id = run.submit_on(c, IN, Kind::Deadline(Due::Past), None);
    assert_eq!(run.live[&id].timeout, Some(ETIME));
    assert_eq!(run.compare(), [gone(id)]);
    let id = run.submit_on(c, OUT, Kind::Deadline(Due::Past), None);
    assert_eq!(run.compare(), [fin(id, OUT)]);
    let id = run.submit_on(c, IN, Kind::Deadline(Due::Far), None);
    run.counter_write_at(0, 1);
    assert_eq!(run.live[&id].timeout, Some(ECANCELED));
    assert_eq!(run.compare(), [fin(id, IN)]);
    run.counter_read_at(0);
    let id = run.submit_on(c, IN, Kind::Deadline(Due::Far), None);
    assert_eq!(run.remove_id(id), 0);
    assert_eq!(run.compare(), [gone(id)]);

    // A close wakes the other end's requests (unkeyed: aiopoll's pipe
    // defers the work, io_uring's task work runs before close returns), and
    // a remove right after it finds nothing on both sides: the wakeup came
    // first.
    let id = run.submit_on(r, IN, Kind::OneShot, None);
    let multi = run.submit_on(r, IN, Kind::Multishot, None);
    assert!(run.close_end_at(0, false));
    assert_eq!(run.remove_id(id), ENOENT);
    assert_eq!(run.compare(), [fin(id, HUP), posted(multi, HUP, 1)]);
    assert_eq!(run.remove_id(multi), 0);
    assert_eq!(run.compare(), [gone(multi)]);
    assert!(!run.close_end_at(0, true)); // a fresh pipe

    if fd_mode {
        // Difference 5: an eventfd write (key IN) posts OUT again to a
        // multishot request for OUT on an `Fd`, which sees readiness.
        let id = run.submit_on(c, OUT, Kind::Multishot, None);
        assert_eq!(run.compare(), [posted(id, OUT, 1)]);
        run.counter_write_at(0, 1);
        assert_eq!(run.compare(), [posted(id, OUT, 0)]);
        run.counter_read_at(0);
        assert_eq!(run.compare(), [posted(id, OUT, 1)]);
        assert_eq!(run.remove_id(id), 0);
        assert_eq!(run.compare(), [gone(id)]);
    } else {
        // Difference 4: a read from a pipe that was not full posts OUT to a
        // multishot request on aiopoll's write end only.
        let out = run.submit_on(w, OUT, Kind::Multishot, None);
        assert_eq!(run.compare(), [posted(out, OUT, 1)]);
        run.pipe_write_at(0, 1);
        run.pipe_read_at(0, 1);
        assert_eq!(run.compare(), [posted(out, OUT, 0)]);
        // A write that fails for want of room posts IN to a multishot
        // request on Linux's read end only (predicted, so not counted).
        let inn = run.submit_on(r, IN, Kind::Multishot, None);
        assert_eq!(run.pipe_write_at(0, 16), Some(65_536));
        let before = run.figures.get("pipe_eagain_extra");
        assert_eq!(run.pipe_write_at(0, 1), Some(-EAGAIN));
        assert_eq!(run.figures.get("pipe_eagain_extra"), before + 1);
        assert_eq!(run.compare(), [posted(inn, IN, 1)]);
        // A read from the full pipe wakes the writers on both sides.
        run.pipe_read_at(0, 1);
        assert_eq!(run.compare(), [posted(out, OUT, 1)]);
        assert_eq!(run.cancel_source_of(w), 1);
        assert_eq!(run.cancel_source_of(r), 1);
        assert_eq!(run.compare(), [gone(out), gone(inn)]);
    }
    let figures = run.finish();
    assert!(figures.get("finals") > 20, "{figures:?}");
}

#[test]
fn uring_table_cases() {
    match Ring::new() {
        Ok(ring) => table_cases(false, ring),
        Err(why) => skip("uring_table_cases", &why),
    }
}

/// The table on `Fd`s over twin kernel eventfds and pipes.
#[test]
fn uring_table_cases_on_fds() {
    match Ring::new() {
        Ok(ring) => table_cases(true, ring),
        Err(why) => skip("uring_table_cases_on_fds", &why),
    }
}

/// Difference 1, deterministically. On a ring whose task work runs only
/// when it waits for completions (`IORING_SETUP_DEFER_TASKRUN`), a wakeup
/// has reached the poll but not completed it yet. Then `POLL_REMOVE` and a
/// poll update fail `-EALREADY` (and the wakeup completes the request),
/// while `ASYNC_CANCEL` finds and counts the request, which completes
/// `-ECANCELED`: the wakeup is lost. aiopoll's cancels and update first run
/// the request's pending deferred work, so the wakeup always wins: they find
/// nothing (`NotFound`, a count of 0), and the request completes with what
/// woke it. Shown on eventfd writes (keyed wakeups, completed inline on
/// aiopoll's side) and on a pipe's write end closing (unkeyed: aiopoll's
/// pipe defers the work).
#[test]
fn wakeup_whose_work_has_not_run() {
    let test = "wakeup_whose_work_has_not_run";
    if let Err(why) = Ring::new() {
        skip(test, &why);
        return;
    }
    let mut builder = IoUring::builder();
    builder.setup_single_issuer().setup_defer_taskrun();
    let mut ring = match Ring::with(&builder) {
        Ok(ring) => ring,
        Err(why) => {
            skip(
                test,
                &format!("IORING_SETUP_DEFER_TASKRUN (Linux 6.1): {why}"),
            );
            return;
        }
    };
    let one = 1u64.to_ne_bytes();
    let cancel = |builder| opcode::AsyncCancel2::new(builder).build();

    // io_uring. Eventfd: a write, then a remove; a write, then an update.
    let fd = kernel_eventfd();
    ring.push(&[poll_add(fd, IN, 1, false)]);
    assert_eq!(raw_write(fd, &one), 8);
    assert_eq!(ring.op(opcode::PollRemove::new(1).build()), EALREADY);
    assert_eq!(ring.wait_request(1).res, IN as i32);
    assert_eq!(raw_read(fd, &mut [0; 8]), 8);
    ring.push(&[poll_add(fd, IN, 2, false)]);
    assert_eq!(raw_write(fd, &one), 8);
    assert_eq!(ring.op(poll_update(2, Some(3), None)), EALREADY);
    assert_eq!(ring.wait_request(2).res, IN as i32);
    assert_eq!(raw_read(fd, &mut [0; 8]), 8);
    // A write, then a cancel of everything on the eventfd: both lost.
    ring.push(&[poll_add(fd, IN, 4, false), poll_add(fd, IN, 5, false)]);
    assert_eq!(raw_write(fd, &one), 8);
    assert_eq!(
        ring.op(cancel(types::CancelBuilder::fd(types::Fd(fd)).all())),
        2
    );
    assert_eq!(ring.wait_request(4).res, ECANCELED);
    assert_eq!(ring.wait_request(5).res, ECANCELED);
    close(fd);
    // Pipe: the write end closes, then a remove; again, then a cancel by
    // user data.
    for (user_data, by_user_data) in [(6, false), (7, true)] {
        let [read, write] = kernel_pipe();
        ring.push(&[poll_add(read, IN, user_data, false)]);
        close(write);
        if by_user_data {
            let all = types::CancelBuilder::user_data(user_data).all();
            assert_eq!(ring.op(cancel(all)), 1);
            assert_eq!(ring.wait_request(user_data).res, ECANCELED);
        } else {
            assert_eq!(
                ring.op(opcode::PollRemove::new(user_data).build()),
                EALREADY
            );
            assert_eq!(ring.wait_request(user_data).res, HUP as i32);
        }
        close(read);
    }
    assert!(ring.cqes.is_empty(), "{:?}", ring.cqes);

    // aiopoll: the same, and the wakeup wins each time.
    let context: StdContext<8> = StdContext::new();
    let counter = aiopoll_std::EventCounter::new();
    let handle = context.submit(&counter, Events::IN, 1).expect("room");
    counter.write(1).expect("room");
    assert!(context.cancel(handle).is_err());
    counter.read().expect("readable");
    let handle = context.submit(&counter, Events::IN, 2).expect("room");
    counter.write(1).expect("room");
    assert!(context.update(handle, None, Some(3)).is_err());
    counter.read().expect("readable");
    context.submit(&counter, Events::IN, 4).expect("room");
    context.submit(&counter, Events::IN, 5).expect("room");
    counter.write(1).expect("room");
    assert_eq!(context.cancel_source(&counter), 0);
    let (reader, writer) = aiopoll_std::pipe();
    let handle = context.submit(&reader, Events::IN, 6).expect("room");
    drop(writer);
    assert!(context.cancel(handle).is_err());
    let (reader, writer) = aiopoll_std::pipe();
    context.submit(&reader, Events::IN, 7).expect("room");
    drop(writer);
    assert_eq!(context.cancel_user_data(7), 0);
    let mut done: Vec<(u64, Outcome)> = context
        .get_events(6, 8, None)
        .expect("min <= max")
        .iter()
        .map(|c| (c.user_data, c.outcome))
        .collect();
    done.sort_unstable_by_key(|d| d.0);
    let ready = Outcome::Ready(Events::IN);
    let hup = Outcome::Ready(Events::HUP);
    assert_eq!(
        done,
        [
            (1, ready),
            (2, ready),
            (4, ready),
            (5, ready),
            (6, hup),
            (7, hup)
        ]
    );
}

/// Difference 6: a mask bit that is not a poll event. io_uring drops it
/// (the request waits for ERR/HUP only, and is found by a remove); aiopoll
/// refuses it before anything is submitted.
#[test]
fn unknown_event_bits() {
    let mut ring = match Ring::new() {
        Ok(ring) => ring,
        Err(why) => {
            skip("unknown_event_bits", &why);
            return;
        }
    };
    let fd = kernel_eventfd();
    ring.push(&[poll_add(fd, 1 << 20, 1, false)]);
    assert_eq!(raw_write(fd, &1u64.to_ne_bytes()), 8);
    assert!(ring.cqes.is_empty(), "{:?}", ring.cqes);
    assert_eq!(ring.op(opcode::PollRemove::new(1).build()), 0);
    assert_eq!(ring.wait_request(1).res, ECANCELED);
    close(fd);
    assert!(Events::from_linux(1 << 20).is_err());
}

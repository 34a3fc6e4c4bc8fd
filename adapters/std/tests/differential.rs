//! Differential test against the kernel's own aio poll (Linux only).
//!
//! Random operation sequences (submit with masks, eventfd writes and
//! reads, pipe writes and reads, closing pipe ends, cancel, reap) run
//! twice: on real eventfds and pipes through `io_setup` / `io_submit`
//! (`IOCB_CMD_POLL`) / `io_cancel` / `io_getevents`, and on
//! [`EventCounter`] and [`pipe`] through a [`StdContext`]. Every submit,
//! cancel, read and write result must match; after every operation the
//! completions reaped on each side must match as a set, and every open
//! source's readiness must equal what `poll(2)` reports for its kernel twin.
//!
//! Known kernel behaviour this accounts for (see
//! `shared/design/kernel-poll.md`):
//! - a request completed inline by a keyed wakeup reports the whole key;
//!   aiopoll reports ready ∩ requested: the kernel's result is compared
//!   masked by requested | ERR | HUP;
//! - completions from the kernel's work queue (cancel, unkeyed wakeups on
//!   close) arrive a moment after the call: the harness waits for them, with
//!   a generous timeout (a missing completion fails the test; the time is
//!   not what is tested);
//! - Linux counts a pipe's capacity in pages, not bytes: pipe transfers are
//!   whole pages (4,096 bytes), for which the two agree exactly;
//! - an eventfd write of 0 wakes readers in Linux although nothing became
//!   readable; the sequences never write 0 (`EventCounter` wakes nobody).
//!
//! A second run puts aiopoll's side on [`Fd`]s over twin kernel eventfds
//! and pipes, so the `Fd` source (poll(2) readiness, `polling` edges, a
//! poller thread) is held to the same standard.
//!
//! The fixed seeds run in `cargo test`; `AIOPOLL_DIFF_SEEDS=N` runs N more
//! in each run (and `AIOPOLL_DIFF_STEPS` sets the steps per seed of the
//! first).
#![cfg(all(target_os = "linux", target_endian = "little", not(miri)))]

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use aiopoll_std::{
    pipe, AsSource, Completion, EventCounter, Events, Fd, Handle, PipeReader, PipeWriter,
    SharedSource, SourceError, StdContext, SubmitError,
};

/// The fixed seeds: 1 to 32.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=32;
const STEPS: usize = 500;
const PAGE: usize = 4096;
/// How long to wait for a completion the kernel delivers from its work
/// queue. Only a bound on waiting: the comparison is what is tested.
const KERNEL_GRACE: Duration = Duration::from_secs(5);
const IOCB_CMD_POLL: u16 = 5;
const EINPROGRESS: i64 = libc::EINPROGRESS as i64;
const EINVAL: i64 = libc::EINVAL as i64;
const EAGAIN: i64 = libc::EAGAIN as i64;
const EPIPE: i64 = libc::EPIPE as i64;
/// Every poll bit aiopoll knows (Linux's values).
const KNOWN: [u32; 12] = [
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x2000,
];

/// `struct iocb` (little-endian layout).
#[repr(C)]
#[derive(Default)]
struct Iocb {
    aio_data: u64,
    aio_key: u32,
    aio_rw_flags: i32,
    aio_lio_opcode: u16,
    aio_reqprio: i16,
    aio_fildes: u32,
    aio_buf: u64,
    aio_nbytes: u64,
    aio_offset: i64,
    aio_reserved2: u64,
    aio_flags: u32,
    aio_resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

fn errno() -> i64 {
    i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A syscall's result: the value, or minus errno.
fn check(ret: libc::c_long) -> i64 {
    if ret < 0 {
        -errno()
    } else {
        ret
    }
}

/// The kernel's aio context.
struct Kernel {
    context: libc::c_ulong,
    /// Each request's iocb, at a stable address (io_cancel finds requests
    /// by it).
    iocbs: HashMap<u64, Box<Iocb>>,
}

impl Kernel {
    fn new() -> Kernel {
        let mut context: libc::c_ulong = 0;
        // SAFETY: io_setup writes the new context id to `context`.
        let ret = unsafe { libc::syscall(libc::SYS_io_setup, 256 as libc::c_long, &mut context) };
        assert_eq!(check(ret), 0, "io_setup");
        Kernel {
            context,
            iocbs: HashMap::new(),
        }
    }

    fn submit(&mut self, fd: RawFd, mask: u32, id: u64) -> i64 {
        let iocb = Box::new(Iocb {
            aio_data: id,
            aio_lio_opcode: IOCB_CMD_POLL,
            aio_fildes: fd as u32,
            aio_buf: u64::from(mask),
            ..Iocb::default()
        });
        let mut list = [&*iocb as *const Iocb];
        // SAFETY: one valid iocb pointer; the iocb stays alive (in `iocbs`)
        // for as long as the kernel may refer to it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_submit,
                self.context,
                1 as libc::c_long,
                list.as_mut_ptr(),
            )
        };
        self.iocbs.insert(id, iocb);
        check(ret)
    }

    fn cancel(&mut self, id: u64) -> i64 {
        let iocb: *const Iocb = &**self.iocbs.get(&id).expect("submitted");
        let mut result = IoEvent::default();
        // SAFETY: `iocb` is the address submitted; `result` is writable.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_cancel,
                self.context,
                iocb,
                &mut result as *mut IoEvent,
            )
        };
        check(ret)
    }

    /// Completions available now, or within `wait` when `min` is 1.
    fn get_events(&mut self, min: i64, wait: Duration) -> Vec<IoEvent> {
        let mut events = [IoEvent::default(); 64];
        let timeout = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `events` has room for 64 events; `timeout` is valid.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.context,
                min as libc::c_long,
                events.len() as libc::c_long,
                events.as_mut_ptr(),
                &timeout as *const libc::timespec,
            )
        };
        let count = check(ret);
        assert!(count >= 0, "io_getevents: {count}");
        events[..count as usize].to_vec()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: destroys the context made in `new`; the kernel cancels
        // what is left and stops referring to our iocbs before it returns.
        unsafe { libc::syscall(libc::SYS_io_destroy, self.context) };
    }
}

fn close(fd: RawFd) {
    // SAFETY: `fd` is a descriptor this test opened and closes once.
    unsafe { libc::close(fd) };
}

fn kernel_eventfd() -> RawFd {
    // SAFETY: plain eventfd creation.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    fd
}

/// A non-blocking kernel pipe of 64 KiB: `[read end, write end]`.
fn kernel_pipe() -> [RawFd; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2");
    // SAFETY: `fds[1]` is an open pipe.
    let size = unsafe { libc::fcntl(fds[1], libc::F_GETPIPE_SZ) };
    if size != 65_536 {
        // SAFETY: as above.
        let set = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 65_536) };
        assert_eq!(set, 65_536, "the kernel pipe must hold 64 KiB");
    }
    fds
}

/// Takes ownership of a descriptor this test opened, as an `Fd` source.
fn owned(fd: RawFd) -> Fd<OwnedFd> {
    // SAFETY: `fd` was just opened by this test and is owned by nothing else.
    Fd::new(unsafe { OwnedFd::from_raw_fd(fd) }).expect("an OS poller")
}

fn raw_write(fd: RawFd, data: &[u8]) -> i64 {
    // SAFETY: writes from `data`, which is that long, to an open descriptor.
    check(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } as libc::c_long)
}

fn raw_read(fd: RawFd, data: &mut [u8]) -> i64 {
    // SAFETY: reads into `data`, which is that long, from an open descriptor.
    check(unsafe { libc::read(fd, data.as_mut_ptr().cast(), data.len()) } as libc::c_long)
}

/// aiopoll's side of an eventfd: the in-process `EventCounter`, or, to test
/// `Fd`, a second real eventfd in an `Fd`.
enum OurCounter {
    Native(EventCounter),
    Fd(Fd<OwnedFd>),
}

impl OurCounter {
    fn write(&self, value: u64) -> i64 {
        match self {
            OurCounter::Native(counter) => ours_io(counter.write(value).map(|()| 8)),
            OurCounter::Fd(fd) => raw_write(fd.get_ref().as_raw_fd(), &value.to_ne_bytes()),
        }
    }

    /// The result, and the value read.
    fn read(&self) -> (i64, u64) {
        match self {
            OurCounter::Native(counter) => match counter.read() {
                Ok(value) => (8, value),
                Err(error) => (ours_io(Err(error)), 0),
            },
            OurCounter::Fd(fd) => {
                let mut value = [0; 8];
                let ret = raw_read(fd.get_ref().as_raw_fd(), &mut value);
                (ret, u64::from_ne_bytes(value))
            }
        }
    }

    fn readiness(&self) -> Events {
        match self {
            OurCounter::Native(counter) => counter.readiness(),
            OurCounter::Fd(fd) => fd.readiness(),
        }
    }

    fn source(&self) -> SharedSource {
        match self {
            OurCounter::Native(counter) => counter.as_source(),
            OurCounter::Fd(fd) => fd.as_source(),
        }
    }
}

/// aiopoll's side of a pipe end: this crate's pipe, or a second kernel
/// pipe's end in an `Fd`.
enum OurEnd {
    Reader(PipeReader),
    Writer(PipeWriter),
    Fd(Fd<OwnedFd>),
}

impl OurEnd {
    fn write(&self, data: &[u8]) -> i64 {
        match self {
            OurEnd::Writer(writer) => ours_io(writer.write(data)),
            OurEnd::Fd(fd) => raw_write(fd.get_ref().as_raw_fd(), data),
            OurEnd::Reader(_) => -i64::from(libc::EBADF),
        }
    }

    fn read(&self, data: &mut [u8]) -> i64 {
        match self {
            OurEnd::Reader(reader) => ours_io(reader.read(data)),
            OurEnd::Fd(fd) => raw_read(fd.get_ref().as_raw_fd(), data),
            OurEnd::Writer(_) => -i64::from(libc::EBADF),
        }
    }

    fn readiness(&self) -> Events {
        match self {
            OurEnd::Reader(reader) => reader.readiness(),
            OurEnd::Writer(writer) => writer.readiness(),
            OurEnd::Fd(fd) => fd.readiness(),
        }
    }

    fn source(&self) -> SharedSource {
        match self {
            OurEnd::Reader(reader) => reader.as_source(),
            OurEnd::Writer(writer) => writer.as_source(),
            OurEnd::Fd(fd) => fd.as_source(),
        }
    }
}

/// One eventfd on both sides.
struct Counter {
    fd: RawFd,
    ours: OurCounter,
}

impl Counter {
    fn new(fd_mode: bool) -> Counter {
        Counter {
            fd: kernel_eventfd(),
            ours: if fd_mode {
                OurCounter::Fd(owned(kernel_eventfd()))
            } else {
                OurCounter::Native(EventCounter::new())
            },
        }
    }
}

/// One pipe on both sides; an end is `None` once closed.
struct Pipe {
    read: Option<(RawFd, OurEnd)>,
    write: Option<(RawFd, OurEnd)>,
    /// Next byte value written (both sides write the same bytes).
    next: u8,
}

impl Pipe {
    fn new(fd_mode: bool) -> Pipe {
        let [read, write] = kernel_pipe();
        let (our_read, our_write) = if fd_mode {
            let [r, w] = kernel_pipe();
            (OurEnd::Fd(owned(r)), OurEnd::Fd(owned(w)))
        } else {
            let (reader, writer) = pipe();
            (OurEnd::Reader(reader), OurEnd::Writer(writer))
        };
        Pipe {
            read: Some((read, our_read)),
            write: Some((write, our_write)),
            next: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Src {
    Counter(usize),
    PipeRead(usize),
    PipeWrite(usize),
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A request in flight on both sides.
struct Pending {
    src: Src,
    mask: u32,
}

struct Run {
    /// aiopoll's side uses `Fd`s on twin kernel objects, whose completions
    /// come from the poller thread a moment later.
    fd_mode: bool,
    seed: u64,
    step: usize,
    rng: Rng,
    kernel: Kernel,
    context: StdContext<64>,
    counters: Vec<Counter>,
    pipes: Vec<Pipe>,
    pending: BTreeMap<u64, Pending>,
    /// Every request ever submitted, for cancel (finished ones too).
    handles: BTreeMap<u64, (Handle, u32)>,
    next_id: u64,
    /// How many completions were compared.
    compared: usize,
    /// In fd mode, how many completions aiopoll's side owes (after a close,
    /// every request on the other end completes): `compare` waits for them.
    owed: usize,
    /// The last operations, for failure messages.
    log: std::collections::VecDeque<String>,
}

/// An operation's result as Linux reports it: a value, or minus errno.
fn ours_submit(result: Result<Handle, SubmitError>) -> i64 {
    match result {
        Ok(_) => 1,
        Err(SubmitError::Busy) => -EAGAIN,
        Err(_) => -EINVAL,
    }
}

fn ours_io(result: Result<usize, SourceError>) -> i64 {
    match result {
        Ok(count) => count as i64,
        Err(SourceError::WouldBlock) => -EAGAIN,
        Err(SourceError::BrokenPipe) => -EPIPE,
        Err(_) => -EINVAL,
    }
}

impl Run {
    fn new(seed: u64) -> Run {
        Run::with_mode(seed, false)
    }

    fn with_mode(seed: u64, fd_mode: bool) -> Run {
        Run {
            fd_mode,
            seed,
            step: 0,
            rng: Rng(seed),
            kernel: Kernel::new(),
            context: StdContext::new(),
            counters: (0..2).map(|_| Counter::new(fd_mode)).collect(),
            pipes: (0..2).map(|_| Pipe::new(fd_mode)).collect(),
            pending: BTreeMap::new(),
            handles: BTreeMap::new(),
            next_id: 1,
            compared: 0,
            owed: 0,
            log: std::collections::VecDeque::new(),
        }
    }

    fn at(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
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

    fn random_mask(&mut self) -> u32 {
        if self.rng.chance(3) {
            return 1 << 20; // not a poll bit: EINVAL on both sides
        }
        if self.rng.chance(5) {
            return 0; // waits for ERR / HUP only
        }
        if self.rng.chance(50) {
            // What programs mostly ask for.
            let common = [0x1, 0x4, 0x40, 0x100, 0x5, 0x41, 0x104];
            return common[self.rng.below(common.len())];
        }
        let mut mask = 0;
        for _ in 0..1 + self.rng.below(3) {
            mask |= KNOWN[self.rng.below(KNOWN.len())];
        }
        mask
    }

    fn submit(&mut self) {
        if self.pending.len() >= 32 {
            return;
        }
        let sources = self.open_sources();
        let src = sources[self.rng.below(sources.len())];
        let mask = self.random_mask();
        self.submit_on(src, mask);
    }

    /// Submits on both sides; returns the request's id and the result
    /// (1, or minus errno), which must agree.
    fn submit_on(&mut self, src: Src, mask: u32) -> (u64, i64) {
        let id = self.next_id;
        self.note(format!("submit {id} {src:?} {mask:#x}"));
        self.next_id += 1;
        let (fd, ours) = match src {
            Src::Counter(i) => {
                let counter = &self.counters[i];
                (
                    counter.fd,
                    self.submit_ours(&counter.ours.source(), mask, id),
                )
            }
            Src::PipeRead(i) => {
                let (fd, reader) = self.pipes[i].read.as_ref().expect("open");
                (*fd, self.submit_ours(&reader.source(), mask, id))
            }
            Src::PipeWrite(i) => {
                let (fd, writer) = self.pipes[i].write.as_ref().expect("open");
                (*fd, self.submit_ours(&writer.source(), mask, id))
            }
        };
        let kernel = self.kernel.submit(fd, mask, id);
        assert_eq!(
            ours_submit(ours),
            kernel,
            "{}: submit {mask:#x} on {src:?}",
            self.at()
        );
        if let Ok(handle) = ours {
            self.pending.insert(id, Pending { src, mask });
            self.handles.insert(id, (handle, mask));
        }
        (id, kernel)
    }

    fn submit_ours(
        &self,
        source: &impl AsSource,
        mask: u32,
        id: u64,
    ) -> Result<Handle, SubmitError> {
        let events = Events::from_linux(mask).map_err(|unknown| SubmitError::UnknownEvents {
            unknown: unknown.unknown,
        })?;
        self.context.submit(source, events, id)
    }

    fn cancel(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        // Mostly recent requests; any of them may have finished.
        let ids: Vec<u64> = self.handles.keys().rev().take(40).copied().collect();
        let id = ids[self.rng.below(ids.len())];
        self.cancel_id(id);
    }

    /// Cancels on both sides; returns minus errno, which must agree.
    fn cancel_id(&mut self, id: u64) -> i64 {
        self.note(format!("cancel {id}"));
        let (handle, _) = self.handles[&id];
        let ours = match self.context.cancel(handle) {
            Ok(_) => -EINPROGRESS,
            Err(_) => -EINVAL,
        };
        let kernel = self.kernel.cancel(id);
        assert_eq!(ours, kernel, "{}: cancel {id}", self.at());
        kernel
    }

    fn counter_write(&mut self) {
        let i = self.rng.below(self.counters.len());
        let values = [1, 2, 5, 1 << 40, u64::MAX - 1, u64::MAX, u64::MAX - 3];
        let value = values[self.rng.below(values.len())];
        self.counter_write_at(i, value);
    }

    /// Writes `value` to eventfd `i` on both sides; returns the result.
    fn counter_write_at(&mut self, i: usize, value: u64) -> i64 {
        self.note(format!("eventfd {i} write {value:#x}"));
        let counter = &self.counters[i];
        let kernel = raw_write(counter.fd, &value.to_ne_bytes());
        let ours = counter.ours.write(value);
        assert_eq!(ours, kernel, "{}: eventfd {i} write {value:#x}", self.at());
        kernel
    }

    fn counter_read(&mut self) {
        let i = self.rng.below(self.counters.len());
        self.counter_read_at(i);
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
        if kernel > 0 {
            assert_eq!(ours, (kernel, value), "{}: eventfd {i} read", self.at());
        } else {
            assert_eq!(ours.0, kernel, "{}: eventfd {i} read", self.at());
        }
        if kernel > 0 {
            value as i64
        } else {
            kernel
        }
    }

    fn pipe_write(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let pages = 1 + self.rng.below(20);
        self.pipe_write_at(i, pages);
    }

    /// Writes `pages` pages to pipe `i` on both sides; returns the result
    /// (`None` if its write end is closed).
    fn pipe_write_at(&mut self, i: usize, pages: usize) -> Option<i64> {
        self.note(format!("pipe {i} write {pages} pages"));
        let at = self.at();
        let pipe = &mut self.pipes[i];
        let (fd, writer) = pipe.write.as_ref()?;
        let data: Vec<u8> = (0..pages * PAGE)
            .map(|k| pipe.next.wrapping_add(k as u8))
            .collect();
        let kernel = raw_write(*fd, &data);
        let ours = writer.write(&data);
        assert_eq!(ours, kernel, "{at}: pipe {i} write {pages} pages");
        if kernel > 0 {
            pipe.next = pipe.next.wrapping_add(kernel as u8);
        }
        Some(kernel)
    }

    fn pipe_read(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let pages = 1 + self.rng.below(20);
        self.pipe_read_at(i, pages);
    }

    /// Reads up to `pages` pages from pipe `i` on both sides; returns the
    /// result (`None` if its read end is closed).
    fn pipe_read_at(&mut self, i: usize, pages: usize) -> Option<i64> {
        self.note(format!("pipe {i} read {pages} pages"));
        let (fd, reader) = self.pipes[i].read.as_ref()?;
        let mut kernel_data = vec![0u8; pages * PAGE];
        let mut our_data = vec![0u8; pages * PAGE];
        let kernel = raw_read(*fd, &mut kernel_data);
        let ours = reader.read(&mut our_data);
        assert_eq!(ours, kernel, "{}: pipe {i} read {pages} pages", self.at());
        if kernel > 0 {
            let n = kernel as usize;
            assert!(
                kernel_data[..n] == our_data[..n],
                "{}: pipe {i} data",
                self.at()
            );
        }
        Some(kernel)
    }

    fn close_end(&mut self) {
        let i = self.rng.below(self.pipes.len());
        let read = self.rng.chance(50);
        self.close_end_at(i, read);
    }

    /// Closes pipe `i`'s read (or write) end on both sides, unless requests
    /// wait on it; a pipe with both ends closed is made anew.
    fn close_end_at(&mut self, i: usize, read: bool) {
        let src = if read {
            Src::PipeRead(i)
        } else {
            Src::PipeWrite(i)
        };
        // Linux keeps a file open while an aio request holds it, so closing
        // an end with requests on it does not close it there; aiopoll
        // completes them SourceGone. Not comparable: skip.
        if self.pending.values().any(|p| p.src == src) {
            return;
        }
        self.note(format!(
            "pipe {i} close {}",
            if read { "read end" } else { "write end" }
        ));
        let pipe = &mut self.pipes[i];
        let end = if read {
            pipe.read.take()
        } else {
            pipe.write.take()
        };
        if let Some((fd, ours)) = end {
            close(fd);
            drop(ours);
            let other = if read {
                Src::PipeWrite(i)
            } else {
                Src::PipeRead(i)
            };
            self.owed = self.pending.values().filter(|p| p.src == other).count();
        }
        if pipe.read.is_none() && pipe.write.is_none() {
            *pipe = Pipe::new(self.fd_mode);
        }
    }

    /// Reaps both sides and compares the completions as sets; returns them
    /// (sorted by user data), as aiopoll reports them.
    fn compare(&mut self) -> Vec<(u64, i64)> {
        let masked = |pending: &BTreeMap<u64, Pending>,
                      handles: &BTreeMap<u64, (Handle, u32)>,
                      e: &IoEvent| {
            let mask = pending
                .get(&e.data)
                .map(|p| p.mask)
                .or_else(|| handles.get(&e.data).map(|h| h.1))
                .unwrap_or(0);
            (e.data, e.res & i64::from(mask | 0x18))
        };
        let ours = |context: &StdContext<64>, wait: Duration| {
            let min = usize::from(!wait.is_zero());
            context
                .get_events(min, 64, Some(wait))
                .expect("min <= max")
                .iter()
                .map(|c: &Completion| (c.user_data, c.outcome.to_linux()))
                .collect::<Vec<_>>()
        };
        let mut want = ours(&self.context, Duration::ZERO);
        let mut got = Vec::new();
        for event in self.kernel.get_events(0, Duration::ZERO) {
            got.push(masked(&self.pending, &self.handles, &event));
        }
        let start = Instant::now();
        loop {
            want.sort_unstable();
            got.sort_unstable();
            if start.elapsed() >= KERNEL_GRACE {
                break;
            }
            let owed = self.fd_mode && want.len() < self.owed;
            if got == want && !owed {
                // Settled, unless a late completion is already there.
                let before = (got.len(), want.len());
                for event in self.kernel.get_events(0, Duration::ZERO) {
                    got.push(masked(&self.pending, &self.handles, &event));
                }
                want.extend(ours(&self.context, Duration::ZERO));
                if (got.len(), want.len()) == before {
                    break;
                }
            } else if got.len() < want.len() {
                // Completions from the kernel's work queue come a moment
                // later.
                for event in self.kernel.get_events(1, Duration::from_millis(20)) {
                    got.push(masked(&self.pending, &self.handles, &event));
                }
            } else if self.fd_mode {
                // So do those of `Fd`s, from the poller thread.
                want.extend(ours(&self.context, Duration::from_millis(20)));
            } else {
                // aiopoll's own sources complete synchronously: a
                // completion the kernel has and aiopoll lacks is a failure.
                break;
            }
        }
        self.owed = 0;
        got.sort_unstable();
        if got != want {
            let requests: Vec<_> = want
                .iter()
                .chain(&got)
                .filter_map(|(id, _)| Some((*id, self.pending.get(id)?.src)))
                .collect();
            panic!(
                "{}: completions (user data, result) differ\n kernel: {got:?}\n  ours: {want:?}\n requests: {requests:?}\n last ops: {:?}",
                self.at(),
                self.log
            );
        }
        for (id, _) in &want {
            assert!(
                self.pending.remove(id).is_some(),
                "{}: {id} completed twice",
                self.at()
            );
        }
        self.compared += want.len();
        want
    }

    /// Compares every open source's readiness with what `poll(2)` says of
    /// its kernel twin.
    fn compare_readiness(&self) {
        let mut sources: Vec<(RawFd, Events, String)> = Vec::new();
        for (i, counter) in self.counters.iter().enumerate() {
            sources.push((counter.fd, counter.ours.readiness(), format!("eventfd {i}")));
        }
        for (i, pipe) in self.pipes.iter().enumerate() {
            if let Some((fd, reader)) = &pipe.read {
                sources.push((*fd, reader.readiness(), format!("pipe {i} read end")));
            }
            if let Some((fd, writer)) = &pipe.write {
                sources.push((*fd, writer.readiness(), format!("pipe {i} write end")));
            }
        }
        for (fd, ours, what) in sources {
            let mut entry = libc::pollfd {
                fd,
                events: KNOWN.iter().fold(0, |all, bit| all | *bit as libc::c_short),
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1, zero timeout.
            let ret = unsafe { libc::poll(&mut entry, 1, 0) };
            assert!(ret >= 0, "poll");
            assert_eq!(
                ours.to_linux(),
                entry.revents as u32,
                "{}: readiness of {what}",
                self.at()
            );
        }
    }

    fn note(&mut self, op: String) {
        if self.log.len() == 16 {
            self.log.pop_front();
        }
        self.log.push_back(format!("{}: {op}", self.step));
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=34 => self.submit(),
            35..=44 => self.cancel(),
            45..=57 => self.counter_write(),
            58..=66 => self.counter_read(),
            67..=81 => self.pipe_write(),
            82..=95 => self.pipe_read(),
            _ => self.close_end(),
        }
        self.compare();
        self.compare_readiness();
    }

    fn finish(mut self) -> (usize, aiopoll_std::Stats) {
        // Cancel everything left, on both sides, and compare once more.
        let left: Vec<u64> = self.pending.keys().copied().collect();
        for id in left {
            let (handle, _) = self.handles[&id];
            assert!(
                self.context.cancel(handle).is_ok(),
                "{}: final cancel",
                self.at()
            );
            assert_eq!(
                self.kernel.cancel(id),
                -EINPROGRESS,
                "{}: final cancel",
                self.at()
            );
        }
        self.compare();
        assert!(self.pending.is_empty());
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
        (self.compared, self.context.stats())
    }
}

/// `AIOPOLL_DIFF_SEEDS`: how many seeds to run beyond the fixed ones.
fn extra_seeds() -> u64 {
    std::env::var("AIOPOLL_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn run_seed(seed: u64, steps: usize, fd_mode: bool) -> (usize, aiopoll_std::Stats) {
    let mut run = Run::with_mode(seed, fd_mode);
    for step in 0..steps {
        run.step = step;
        run.step();
    }
    run.finish()
}

#[test]
fn kernel_aio_poll_matches_on_fixed_seeds() {
    let steps = std::env::var("AIOPOLL_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STEPS);
    let extra = extra_seeds();
    let mut compared = 0;
    let mut paths = [0u32; 4];
    let seeds = SEEDS.chain((0..extra).map(|k| 1_000 + k));
    let mut count = 0;
    for seed in seeds {
        let (matched, stats) = run_seed(seed, steps, false);
        compared += matched;
        paths[0] += stats.completed_at_submit;
        paths[1] += stats.completed_by_wakeup;
        paths[2] += stats.completed_by_deferred_work;
        paths[3] += stats.cancelled;
        count += 1;
    }
    println!(
        "{count} seeds x {steps} steps: {compared} completions matched the kernel's \
         (at submit {}, by wakeup {}, by deferred work {}, cancelled {})",
        paths[0], paths[1], paths[2], paths[3]
    );
    // Every completion path was exercised.
    assert!(paths.iter().all(|&n| n > 0), "{paths:?}");
}

/// The cases of `kernel-poll.md`'s table that involve eventfds and pipes,
/// each a scripted sequence run on both sides (every result and completion
/// compared as in the random runs), plus what the table says the kernel does.
#[test]
fn kernel_table_cases() {
    const IN: u32 = 0x1;
    const PRI: u32 = 0x2;
    const OUT: u32 = 0x4;
    const ERR: i64 = 0x8;
    const HUP: i64 = 0x10;
    const RDNORM: u32 = 0x40;
    let mut run = Run::new(0);
    let (c, p) = (Src::Counter(0), 0);

    // eventfd ready to write, ask IN or OUT: completes at submit, res OUT.
    let (id, ret) = run.submit_on(c, IN | OUT);
    assert_eq!(ret, 1);
    assert_eq!(run.compare(), [(id, OUT as i64)]);

    // pipe read end, ask IN, then the write end is closed: res HUP.
    let (id, _) = run.submit_on(Src::PipeRead(p), IN);
    assert_eq!(run.compare(), []);
    run.close_end_at(p, false);
    assert_eq!(run.compare(), [(id, HUP)]);
    // pipe read end with the writer gone, ask PRI only: HUP at submit.
    let (id, _) = run.submit_on(Src::PipeRead(p), PRI);
    assert_eq!(run.compare(), [(id, HUP)]);
    run.close_end_at(p, true); // both ends gone: a fresh pipe

    // pipe write end full, ask OUT, then the read end is closed: res ERR.
    assert_eq!(run.pipe_write_at(p, 20), Some(65_536));
    assert_eq!(run.pipe_write_at(p, 1), Some(-EAGAIN));
    let (id, _) = run.submit_on(Src::PipeWrite(p), OUT);
    assert_eq!(run.compare(), []);
    run.close_end_at(p, true);
    assert_eq!(run.compare(), [(id, ERR)]);
    assert_eq!(run.pipe_write_at(p, 1), Some(-EPIPE));
    run.close_end_at(p, false);

    // cancel of a pending request: EINPROGRESS, then a completion with 0;
    // cancel again, and of a completed request: EINVAL.
    let (id, _) = run.submit_on(c, PRI);
    assert_eq!(run.cancel_id(id), -EINPROGRESS);
    assert_eq!(run.compare(), [(id, 0)]);
    assert_eq!(run.cancel_id(id), -EINVAL);
    let (done, _) = run.submit_on(c, OUT);
    assert_eq!(run.compare(), [(done, OUT as i64)]);
    assert_eq!(run.cancel_id(done), -EINVAL);

    // unknown mask bit: EINVAL.
    assert_eq!(run.submit_on(c, 1 << 20).1, -EINVAL);

    // zero mask on a not-ready eventfd: queued, a write does not complete
    // it, cancel works.
    run.counter_write_at(0, u64::MAX - 1);
    let (zero, _) = run.submit_on(c, 0);
    assert_eq!(run.counter_read_at(0), (u64::MAX - 1) as i64);
    assert_eq!(run.counter_write_at(0, 1), 8);
    assert_eq!(run.compare(), []);
    assert_eq!(run.cancel_id(zero), -EINPROGRESS);
    assert_eq!(run.compare(), [(zero, 0)]);
    run.counter_read_at(0);

    // 8 polls on one eventfd, one write: all 8 complete (as a set); a
    // second write after completion: nothing more (one-shot).
    let ids: Vec<u64> = (0..8).map(|_| run.submit_on(c, IN).0).collect();
    assert_eq!(run.compare(), []);
    run.counter_write_at(0, 1);
    let done = run.compare();
    assert_eq!(done.len(), 8);
    assert!(done
        .iter()
        .all(|(id, res)| ids.contains(id) && *res == IN as i64));
    run.counter_write_at(0, 1);
    assert_eq!(run.compare(), []);
    run.counter_read_at(0);

    // eventfd, ask RDNORM only: never completes (keys are IN / OUT).
    let (rdnorm, _) = run.submit_on(c, RDNORM);
    run.counter_write_at(0, 3);
    assert_eq!(run.compare(), []);
    assert_eq!(run.cancel_id(rdnorm), -EINPROGRESS);
    assert_eq!(run.compare(), [(rdnorm, 0)]);
    run.counter_read_at(0);

    // RDNORM on a pipe read end, then a write: the kernel reports IN|RDNORM
    // (the whole key), masked here to RDNORM, which is aiopoll's result.
    let (id, _) = run.submit_on(Src::PipeRead(p), RDNORM);
    run.pipe_write_at(p, 1);
    assert_eq!(run.compare(), [(id, RDNORM as i64)]);

    // Every completion above, compared once each.
    assert_eq!(run.finish().0, 17);
}

/// The same random sequences with aiopoll's side on `Fd`s: twin kernel
/// eventfds and pipes, notified by the `polling` crate's poller thread,
/// readiness from `poll(2)`. Fewer seeds: every completion on this side
/// crosses a thread.
#[test]
fn fd_sources_match_kernel_aio_poll() {
    let extra = extra_seeds();
    let mut compared = 0;
    let mut deferred = 0;
    for seed in (1..=8).chain((0..extra).map(|k| 1_000 + k)) {
        let (matched, stats) = run_seed(seed, 300, true);
        compared += matched;
        deferred += stats.completed_by_deferred_work;
    }
    println!(
        "Fd: {} seeds x 300 steps: {compared} completions matched the kernel's \
         ({deferred} by deferred work)",
        8 + extra
    );
    assert!(deferred > 0);
}

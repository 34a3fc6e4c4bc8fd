//! What the kernel differential tests share (`differential.rs` against
//! Linux aio, `uring_differential.rs` against io_uring): eventfds and pipes
//! on both sides, the sequences' random numbers, and the readiness check.
//!
//! Each source exists twice: a kernel object the kernel's poll watches, and
//! aiopoll's twin, either aiopoll-std's own source (`EventCounter`, `pipe`)
//! or, in *fd mode*, an `Fd` over a second kernel object of the same kind.
// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use aiopoll_std::{
    pipe, AsSource, EventCounter, Events, Fd, PipeReader, PipeWriter, SharedSource, SourceError,
};

pub const PAGE: usize = 4096;
/// How long to wait for a completion that comes a moment after the
/// operation (from the kernel's work, or from aiopoll's poller or
/// deferred-work thread). Only a bound on waiting: a completion still
/// missing after it fails the test; the time is not what is tested.
pub const GRACE: Duration = Duration::from_secs(5);
pub const EINPROGRESS: i64 = libc::EINPROGRESS as i64;
pub const EINVAL: i64 = libc::EINVAL as i64;
pub const EAGAIN: i64 = libc::EAGAIN as i64;
pub const EPIPE: i64 = libc::EPIPE as i64;
/// Every poll bit aiopoll knows (Linux's values).
pub const KNOWN: [u32; 12] = [
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x2000,
];

pub fn errno() -> i64 {
    i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A syscall's result: the value, or minus errno.
pub fn check(ret: libc::c_long) -> i64 {
    if ret < 0 {
        -errno()
    } else {
        ret
    }
}

pub fn close(fd: RawFd) {
    // SAFETY: `fd` is a descriptor this test opened and closes once.
    unsafe { libc::close(fd) };
}

pub fn kernel_eventfd() -> RawFd {
    // SAFETY: plain eventfd creation.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    fd
}

/// A non-blocking kernel pipe of 64 KiB: `[read end, write end]`.
pub fn kernel_pipe() -> [RawFd; 2] {
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
pub fn owned(fd: RawFd) -> Fd<OwnedFd> {
    // SAFETY: `fd` was just opened by this test and is owned by nothing else.
    Fd::new(unsafe { OwnedFd::from_raw_fd(fd) }).expect("an OS poller")
}

pub fn raw_write(fd: RawFd, data: &[u8]) -> i64 {
    // SAFETY: writes from `data`, which is that long, to an open descriptor.
    check(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } as libc::c_long)
}

pub fn raw_read(fd: RawFd, data: &mut [u8]) -> i64 {
    // SAFETY: reads into `data`, which is that long, from an open descriptor.
    check(unsafe { libc::read(fd, data.as_mut_ptr().cast(), data.len()) } as libc::c_long)
}

/// What `poll(2)` reports for a kernel descriptor now (every bit asked).
pub fn kernel_readiness(fd: RawFd) -> u32 {
    let mut entry = libc::pollfd {
        fd,
        events: KNOWN.iter().fold(0, |all, bit| all | *bit as libc::c_short),
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout.
    let ret = unsafe { libc::poll(&mut entry, 1, 0) };
    assert!(ret >= 0, "poll");
    u32::from(entry.revents as u16)
}

/// An I/O result as Linux reports it: a value, or minus errno.
pub fn ours_io(result: Result<usize, SourceError>) -> i64 {
    match result {
        Ok(count) => count as i64,
        Err(SourceError::WouldBlock) => -EAGAIN,
        Err(SourceError::BrokenPipe) => -EPIPE,
        Err(_) => -EINVAL,
    }
}

/// aiopoll's side of an eventfd: the in-process `EventCounter`, or, to test
/// `Fd`, a second real eventfd in an `Fd`.
pub enum OurCounter {
    Native(EventCounter),
    Fd(Fd<OwnedFd>),
}

impl OurCounter {
    pub fn write(&self, value: u64) -> i64 {
        match self {
            OurCounter::Native(counter) => ours_io(counter.write(value).map(|()| 8)),
            OurCounter::Fd(fd) => raw_write(fd.get_ref().as_raw_fd(), &value.to_ne_bytes()),
        }
    }

    /// The result, and the value read.
    pub fn read(&self) -> (i64, u64) {
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

    pub fn readiness(&self) -> Events {
        match self {
            OurCounter::Native(counter) => counter.readiness(),
            OurCounter::Fd(fd) => fd.readiness(),
        }
    }

    pub fn source(&self) -> SharedSource {
        match self {
            OurCounter::Native(counter) => counter.as_source(),
            OurCounter::Fd(fd) => fd.as_source(),
        }
    }
}

/// aiopoll's side of a pipe end: this crate's pipe, or a second kernel
/// pipe's end in an `Fd`.
pub enum OurEnd {
    Reader(PipeReader),
    Writer(PipeWriter),
    Fd(Fd<OwnedFd>),
}

impl OurEnd {
    pub fn write(&self, data: &[u8]) -> i64 {
        match self {
            OurEnd::Writer(writer) => ours_io(writer.write(data)),
            OurEnd::Fd(fd) => raw_write(fd.get_ref().as_raw_fd(), data),
            OurEnd::Reader(_) => -i64::from(libc::EBADF),
        }
    }

    pub fn read(&self, data: &mut [u8]) -> i64 {
        match self {
            OurEnd::Reader(reader) => ours_io(reader.read(data)),
            OurEnd::Fd(fd) => raw_read(fd.get_ref().as_raw_fd(), data),
            OurEnd::Writer(_) => -i64::from(libc::EBADF),
        }
    }

    pub fn readiness(&self) -> Events {
        match self {
            OurEnd::Reader(reader) => reader.readiness(),
            OurEnd::Writer(writer) => writer.readiness(),
            OurEnd::Fd(fd) => fd.readiness(),
        }
    }

    pub fn source(&self) -> SharedSource {
        match self {
            OurEnd::Reader(reader) => reader.as_source(),
            OurEnd::Writer(writer) => writer.as_source(),
            OurEnd::Fd(fd) => fd.as_source(),
        }
    }
}

/// One eventfd on both sides.
pub struct Counter {
    pub fd: RawFd,
    pub ours: OurCounter,
}

impl Counter {
    pub fn new(fd_mode: bool) -> Counter {
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
pub struct Pipe {
    pub read: Option<(RawFd, OurEnd)>,
    pub write: Option<(RawFd, OurEnd)>,
    /// Next byte value written (both sides write the same bytes).
    pub next: u8,
}

impl Pipe {
    pub fn new(fd_mode: bool) -> Pipe {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Src {
    Counter(usize),
    PipeRead(usize),
    PipeWrite(usize),
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Asserts that every open source's readiness equals what `poll(2)` says
/// of its kernel twin.
pub fn compare_readiness(counters: &[Counter], pipes: &[Pipe], at: &str) {
    let mut sources: Vec<(RawFd, Events, String)> = Vec::new();
    for (i, counter) in counters.iter().enumerate() {
        sources.push((counter.fd, counter.ours.readiness(), format!("eventfd {i}")));
    }
    for (i, pipe) in pipes.iter().enumerate() {
        if let Some((fd, reader)) = &pipe.read {
            sources.push((*fd, reader.readiness(), format!("pipe {i} read end")));
        }
        if let Some((fd, writer)) = &pipe.write {
            sources.push((*fd, writer.readiness(), format!("pipe {i} write end")));
        }
    }
    for (fd, ours, what) in sources {
        assert_eq!(
            ours.to_linux(),
            kernel_readiness(fd),
            "{at}: readiness of {what}"
        );
    }
}

/// `AIOPOLL_DIFF_SEEDS`: how many seeds to run beyond the fixed ones.
pub fn extra_seeds() -> u64 {
    std::env::var("AIOPOLL_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `AIOPOLL_DIFF_STEPS`: the steps per seed, instead of `default`.
pub fn steps(default: usize) -> usize {
    std::env::var("AIOPOLL_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

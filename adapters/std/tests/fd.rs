//! `Fd`: real descriptors as sources (Linux).
#![cfg(all(target_os = "linux", not(miri)))]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use aiopoll_std::{CancelError, Completion, Events, Fd, Outcome, StdContext};

/// User data and outcome of each completion (the handle and `more` have
/// tests of their own).
fn pairs(completions: &[Completion]) -> Vec<(u64, Outcome)> {
    completions
        .iter()
        .map(|completion| (completion.user_data, completion.outcome))
        .collect()
}

#[test]
fn a_socket_becomes_readable_when_its_peer_writes() {
    let context = StdContext::<4>::new();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let socket = Fd::new(ours).unwrap();
    assert!(socket.readiness().contains(Events::OUT | Events::WRNORM));
    // Writable now: completes at submit, with what was asked.
    context.submit(&socket, Events::OUT, 1).unwrap();
    // Not readable yet: waits until the OS poller's thread reports an edge.
    context
        .submit(&socket, Events::IN | Events::RDNORM, 2)
        .unwrap();
    let first = context.get_events(1, 4, None).unwrap();
    assert_eq!(pairs(&first), [(1, Outcome::Ready(Events::OUT))]);
    std::thread::scope(|scope| {
        scope.spawn(|| peer.write_all(b"hello").unwrap());
        let done = context.get_events(1, 4, None).unwrap();
        assert_eq!(
            pairs(&done),
            [(2, Outcome::Ready(Events::IN | Events::RDNORM))]
        );
    });
    let mut buf = [0; 8];
    assert_eq!(socket.get_ref().read(&mut buf).unwrap(), 5);
    // The peer hangs up: a request for PRI alone still sees HUP.
    context.submit(&socket, Events::PRI, 3).unwrap();
    drop(peer);
    let done = context.get_events(1, 4, None).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].user_data, 3);
    assert!(matches!(done[0].outcome, Outcome::Ready(events) if events.contains(Events::HUP)));
}

#[test]
fn dropping_an_fd_completes_its_requests_source_gone() {
    let context = StdContext::<4>::new();
    let (ours, _peer) = UnixStream::pair().unwrap();
    let socket = Fd::new(ours).unwrap();
    context.submit(&socket, Events::IN, 1).unwrap();
    assert_eq!(
        context
            .get_events(0, 4, Some(std::time::Duration::ZERO))
            .unwrap(),
        []
    );
    drop(socket);
    assert_eq!(
        pairs(&context.get_events(1, 4, None).unwrap()),
        [(1, Outcome::SourceGone)]
    );
}

#[test]
fn a_regular_file_is_refused() {
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    assert!(Fd::new(file).is_err());
}

#[test]
fn many_descriptors_share_one_poller_thread() {
    let context = StdContext::<64>::new();
    let pairs: Vec<_> = (0..32)
        .map(|_| {
            let (ours, peer) = UnixStream::pair().unwrap();
            (Fd::new(ours).unwrap(), peer)
        })
        .collect();
    for (k, (socket, _)) in pairs.iter().enumerate() {
        context.submit(socket, Events::IN, k as u64).unwrap();
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for (_, peer) in &pairs {
                (&*peer).write_all(b"x").unwrap();
            }
        });
        let mut seen = Vec::new();
        while seen.len() < pairs.len() {
            seen.extend(
                context
                    .get_events(1, 64, None)
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.user_data, c.outcome)),
            );
        }
        seen.sort_by_key(|s| s.0);
        let want: Vec<_> = (0..32).map(|k| (k, Outcome::Ready(Events::IN))).collect();
        assert_eq!(seen, want);
    });
}

/// A non-blocking eventfd, as a file.
fn eventfd() -> File {
    // SAFETY: plain eventfd creation; the result is checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    // SAFETY: `fd` was just opened and is owned by nothing else.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking pipe: `(read end, write end)`.
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2");
    // SAFETY: both were just opened and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (File::from(read), File::from(write))
}

#[test]
fn readiness_that_comes_and_goes_completes_a_request_at_the_edge() {
    // Issue 10's scenario on a real eventfd: ask IN, write 3, read it back,
    // then reap. Linux completes the request at the write; so does `Fd`,
    // once the poller thread has collected the edge (`catch_up`), whether
    // or not anybody reaps.
    let context = StdContext::<4>::new();
    let counter = Fd::new(eventfd()).unwrap();
    let handle = context.submit(&counter, Events::IN, 1).unwrap();
    counter.get_ref().write_all(&3u64.to_ne_bytes()).unwrap();
    counter.catch_up();
    let mut count = [0; 8];
    counter.get_ref().read_exact(&mut count).unwrap();
    assert_eq!(u64::from_ne_bytes(count), 3);
    assert_eq!(counter.readiness(), Events::OUT);
    assert_eq!(context.completions(), 1, "completed before any reap");
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        pairs(&context.get_events(1, 4, None).unwrap()),
        [(1, Outcome::Ready(Events::IN))]
    );
    assert!(context.stats().completed_by_wakeup >= 1);
}

#[test]
fn a_pipe_written_and_read_back_and_a_writer_closing_after_data() {
    let context = StdContext::<4>::new();
    let (read, write) = pipe();
    let reader = Fd::new(read).unwrap();
    let mut writer = write;
    // Data written and read back before a reap: the request saw it.
    context.submit(&reader, Events::IN, 1).unwrap();
    writer.write_all(b"x").unwrap();
    reader.catch_up();
    let mut byte = [0; 1];
    reader.get_ref().read_exact(&mut byte).unwrap();
    // The writer closes after data arrived: IN|RDNORM from the write (as
    // Linux reports it), not IN|RDNORM|HUP from a later look.
    let handle = context
        .submit(&reader, Events::IN | Events::RDNORM, 2)
        .unwrap();
    writer.write_all(b"y").unwrap();
    reader.catch_up();
    drop(writer);
    reader.catch_up();
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        pairs(&context.get_events(2, 4, None).unwrap()),
        [
            (1, Outcome::Ready(Events::IN)),
            (2, Outcome::Ready(Events::IN | Events::RDNORM))
        ]
    );
}

#[test]
fn a_cancel_after_a_close_and_catching_up_finds_the_request_completed() {
    // Issue 10's close-then-cancel scenario on an `Fd`: closing the write
    // end raises HUP on the read end. Once the poller thread has delivered
    // it, the cancel finds the request completed, as in Linux.
    let context = StdContext::<4>::new();
    let (read, write) = pipe();
    let reader = Fd::new(read).unwrap();
    let handle = context.submit(&reader, Events::IN, 1).unwrap();
    drop(write);
    reader.catch_up();
    assert_eq!(context.cancel(handle), Err(CancelError::NotFound));
    assert_eq!(
        pairs(&context.get_events(1, 4, None).unwrap()),
        [(1, Outcome::Ready(Events::HUP))]
    );
}

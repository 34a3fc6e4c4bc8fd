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

// Reapers wait in the OS poller themselves (one leads, the others follow):
// the hand-offs between them, with real descriptors and threads. The model
// test in the crate (`handoff`) runs every interleaving of the same
// hand-offs; these run the real system calls.

#[test]
fn a_completion_that_is_not_an_fds_wakes_a_reaper_waiting_in_the_poller() {
    // An `Fd` exists, so a reaper that finds nothing waits in epoll; an
    // EventCounter's completion must end that wait (through the poller's
    // notification), whether it lands before or during it.
    let context = StdContext::<4>::new();
    let (ours, _peer) = UnixStream::pair().unwrap();
    let socket = Fd::new(ours).unwrap();
    context.submit(&socket, Events::IN, 0).unwrap();
    let counter = aiopoll_std::EventCounter::new();
    for round in 1..=200u64 {
        context.submit(&counter, Events::IN, round).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| counter.write(1).unwrap());
            assert_eq!(
                pairs(&context.get_events(1, 4, None).unwrap()),
                [(round, Outcome::Ready(Events::IN))]
            );
        });
        counter.read().unwrap();
    }
    assert_eq!(context.in_use(), 1, "the socket's request still waits");
}

#[test]
fn two_reapers_share_the_poller_and_no_completion_is_lost() {
    const SOCKETS: usize = 8;
    const ROUNDS: usize = 200;
    let context = StdContext::<16>::new();
    let pairs: Vec<_> = (0..SOCKETS)
        .map(|_| {
            let (ours, peer) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            (Fd::new(ours).unwrap(), peer)
        })
        .collect();
    for (k, (socket, _)) in pairs.iter().enumerate() {
        context.submit(socket, Events::IN, k as u64).unwrap();
    }
    let stop = aiopoll_std::EventCounter::new();
    context.submit(&stop, Events::IN, u64::MAX).unwrap();
    let served = std::sync::atomic::AtomicUsize::new(0);
    let reaper = || {
        let mut mine = 0;
        loop {
            let completions = context.get_events(1, 2, None).unwrap();
            for completion in completions {
                if completion.user_data == u64::MAX {
                    // Still readable: completes again for the other reaper.
                    context.submit(&stop, Events::IN, u64::MAX).unwrap();
                    return mine;
                }
                let (socket, _) = &pairs[completion.user_data as usize];
                let mut byte = [0; 1];
                socket.get_ref().read_exact(&mut byte).unwrap();
                mine += 1;
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                context
                    .submit(socket, Events::IN, completion.user_data)
                    .unwrap();
            }
        }
    };
    std::thread::scope(|scope| {
        let first = scope.spawn(reaper);
        let second = scope.spawn(reaper);
        for round in 1..=ROUNDS {
            for (_, peer) in &pairs {
                (&*peer).write_all(b"x").unwrap();
            }
            // The next round once every byte of this one was read: each
            // socket then has one request waiting again. A reaper that
            // failed ends the wait (its join reports why).
            while served.load(std::sync::atomic::Ordering::SeqCst) < round * SOCKETS {
                if first.is_finished() || second.is_finished() {
                    break;
                }
                std::thread::yield_now();
            }
        }
        stop.write(1).unwrap();
        let total = first.join().unwrap() + second.join().unwrap();
        assert_eq!(total, ROUNDS * SOCKETS);
    });
}

#[test]
fn reapers_of_two_contexts_share_the_poller() {
    // Whichever reaper waits in epoll collects the other context's edges
    // too; the other's reaper is woken by its completion, or rung for the
    // poller when the leader leaves.
    const ROUNDS: u64 = 200;
    let contexts = [StdContext::<4>::new(), StdContext::<4>::new()];
    let sockets: Vec<_> = (0..2)
        .map(|_| {
            let (ours, peer) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            (Fd::new(ours).unwrap(), peer)
        })
        .collect();
    let served = [
        std::sync::atomic::AtomicU64::new(0),
        std::sync::atomic::AtomicU64::new(0),
    ];
    std::thread::scope(|scope| {
        let mut reapers = Vec::new();
        for k in 0..2 {
            let (context, (socket, _), served) = (&contexts[k], &sockets[k], &served[k]);
            reapers.push(scope.spawn(move || {
                for round in 1..=ROUNDS {
                    context.submit(socket, Events::IN, round).unwrap();
                    assert_eq!(
                        pairs(&context.get_events(1, 4, None).unwrap()),
                        [(round, Outcome::Ready(Events::IN))]
                    );
                    let mut byte = [0; 1];
                    socket.get_ref().read_exact(&mut byte).unwrap();
                    served.store(round, std::sync::atomic::Ordering::SeqCst);
                }
            }));
        }
        for round in 1..=ROUNDS {
            // Alternately, and each after the other's reaper is done with
            // the previous round: one reaper often leads while the other's
            // socket becomes readable.
            for k in [round as usize % 2, 1 - round as usize % 2] {
                (&sockets[k].1).write_all(b"x").unwrap();
                while served[k].load(std::sync::atomic::Ordering::SeqCst) < round {
                    // A reaper that failed ends the wait (the scope's join
                    // reports why).
                    if reapers.iter().any(|reaper| reaper.is_finished()) {
                        return;
                    }
                    std::thread::yield_now();
                }
            }
        }
    });
}

#[test]
fn an_awaited_request_on_an_fd_completes_while_no_reaper_waits() {
    // A reaper of another context has just left the poller (its request
    // completed); nobody reaps now, yet the awaited request's edge must be
    // collected: the poller thread is called for it.
    let context = StdContext::<4>::new();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let socket = Fd::new(ours).unwrap();
    let other = StdContext::<4>::new();
    let (theirs, mut their_peer) = UnixStream::pair().unwrap();
    let their_socket = Fd::new(theirs).unwrap();
    for _ in 0..50 {
        other.submit(&their_socket, Events::IN, 1).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| their_peer.write_all(b"x").unwrap());
            assert_eq!(other.get_events(1, 4, None).unwrap().len(), 1);
        });
        let mut byte = [0; 1];
        their_socket.get_ref().read_exact(&mut byte).unwrap();
        std::thread::scope(|scope| {
            let request = context.request(&socket, Events::IN);
            let waiter = scope.spawn(|| futures_executor::block_on(request));
            peer.write_all(b"y").unwrap();
            assert_eq!(waiter.join().unwrap(), Ok(Outcome::Ready(Events::IN)));
        });
        socket.get_ref().read_exact(&mut byte).unwrap();
    }
}

#[test]
fn a_drained_socket_waits_for_its_next_edge_and_gets_it() {
    let context = StdContext::<4>::new();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let socket = Fd::new(ours).unwrap();
    peer.write_all(b"abc").unwrap();
    socket.catch_up();
    context.submit(&socket, Events::IN, 1).unwrap();
    assert_eq!(
        pairs(&context.get_events(1, 4, None).unwrap()),
        [(1, Outcome::Ready(Events::IN))]
    );
    // A short read: the socket is drained, and its `Fd` knows it.
    let mut buf = [0; 64];
    assert_eq!(socket.read(&mut buf).unwrap(), 3);
    context.submit(&socket, Events::IN, 2).unwrap();
    socket.catch_up();
    let mut none = [Completion::EMPTY; 4];
    assert_eq!(context.reap(&mut none), 0, "nothing to read yet");
    // The next byte's edge completes it.
    peer.write_all(b"d").unwrap();
    assert_eq!(
        pairs(&context.get_events(1, 4, None).unwrap()),
        [(2, Outcome::Ready(Events::IN))]
    );
    assert_eq!(socket.read(&mut buf).unwrap(), 1);
    assert_eq!(&buf[..1], b"d");
    // A write that finds the send buffer full: the next request for OUT
    // waits for room, which the peer's reads make.
    let chunk = [7u8; 4096];
    let mut sent = 0;
    let mut full = false;
    for _ in 0..100_000 {
        match socket.write(&chunk) {
            Ok(count) if count == chunk.len() => sent += count,
            Ok(count) => {
                sent += count;
                full = true;
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                full = true;
                break;
            }
            Err(error) => panic!("write: {error}"),
        }
    }
    assert!(full, "a socket's send buffer is finite");
    context.submit(&socket, Events::OUT, 3).unwrap();
    socket.catch_up();
    assert_eq!(context.reap(&mut none), 0, "no room yet");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut sink = vec![0; sent];
            peer.read_exact(&mut sink).unwrap();
        });
        assert_eq!(
            pairs(&context.get_events(1, 4, None).unwrap()),
            [(3, Outcome::Ready(Events::OUT))]
        );
    });
}

#[test]
fn reads_that_drain_never_lose_an_edge_to_a_racing_writer() {
    // The writer sends bursts of single bytes and waits for each burst to
    // be read back, so the last byte of a burst has no later byte behind
    // it: if its edge were lost, the reader would wait for ever. The reader
    // submits, reaps and reads in small pieces, each short read marking the
    // socket drained, while a thread of another context waits in the OS
    // poller and collects every edge the moment it is raised, so edges land
    // between the reads and their marks. Each completion has data behind it
    // (one reader), so the rounds are bounded by the bytes.
    const BURSTS: usize = 2_000;
    const BURST: usize = 3;
    let context = StdContext::<4>::new();
    let collector = StdContext::<2>::new();
    let release = aiopoll_std::EventCounter::new();
    collector.submit(&release, Events::IN, 0).unwrap();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let socket = Fd::new(ours).unwrap();
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    /// Lets the collector go however the reader ends, so that a failed
    /// assertion is reported instead of waiting for it for ever.
    struct Release<'a>(&'a aiopoll_std::EventCounter);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            let _ = self.0.write(1);
        }
    }
    std::thread::scope(|scope| {
        let _release = Release(&release);
        // Owned by this closure: the writer's wait ends with it too.
        let ack = ack;
        scope.spawn(|| collector.get_events(1, 2, None).unwrap());
        scope.spawn(move || {
            for burst in 0..BURSTS {
                for i in 0..BURST {
                    peer.write_all(&[((burst * BURST + i) % 251) as u8])
                        .unwrap();
                }
                acked.recv().unwrap();
            }
        });
        let mut received = Vec::with_capacity(BURSTS * BURST);
        let mut buf = [0; 2];
        for _ in 0..BURSTS * BURST {
            context.submit(&socket, Events::IN, 1).unwrap();
            let done = context.get_events(1, 4, None).unwrap();
            assert_eq!(done.len(), 1);
            assert!(
                matches!(done[0].outcome, Outcome::Ready(events) if events.contains(Events::IN))
            );
            let count = socket.read(&mut buf).unwrap();
            assert!(count > 0, "a completion for IN has data behind it");
            let before = received.len() / BURST;
            received.extend_from_slice(&buf[..count]);
            if received.len() / BURST > before {
                // A whole burst: the writer may send the next.
                let _ = ack.send(());
            }
            if received.len() == BURSTS * BURST {
                break;
            }
        }
        assert_eq!(received.len(), BURSTS * BURST);
        assert!(received
            .iter()
            .enumerate()
            .all(|(i, byte)| *byte == (i % 251) as u8));
    });
}

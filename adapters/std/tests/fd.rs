//! `Fd`: real descriptors as sources (Linux).
#![cfg(all(target_os = "linux", not(miri)))]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use aiopoll_std::{Completion, Events, Fd, Outcome, StdContext};

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
    assert_eq!(
        first,
        [Completion {
            user_data: 1,
            outcome: Outcome::Ready(Events::OUT)
        }]
    );
    std::thread::scope(|scope| {
        scope.spawn(|| peer.write_all(b"hello").unwrap());
        let done = context.get_events(1, 4, None).unwrap();
        assert_eq!(
            done,
            [Completion {
                user_data: 2,
                outcome: Outcome::Ready(Events::IN | Events::RDNORM)
            }]
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
        context.get_events(1, 4, None).unwrap(),
        [Completion {
            user_data: 1,
            outcome: Outcome::SourceGone
        }]
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

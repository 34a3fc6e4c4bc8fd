//! `echo-mio`: the echo server as a mio user writes it: one thread, one
//! `Poll`, edge-triggered events, a `Vec` of connections with a free list,
//! and the idle timeout as a sweep every 100 ms over the connections' last
//! activity (`--threads` is ignored: one event loop). Stops when standard
//! input ends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const SWEEP: Duration = Duration::from_millis(100);

struct Connection {
    stream: TcpStream,
    last_heard: Instant,
    unsent: Vec<u8>,
}

/// Writes what is unsent; `Ok(false)` if the socket had no room for all.
fn flush(connection: &mut Connection) -> std::io::Result<bool> {
    let mut sent = 0;
    let result = loop {
        if sent == connection.unsent.len() {
            break Ok(true);
        }
        match connection.stream.write(&connection.unsent[sent..]) {
            Ok(0) => break Err(ErrorKind::WriteZero.into()),
            Ok(count) => sent += count,
            Err(error) if error.kind() == ErrorKind::WouldBlock => break Ok(false),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => break Err(error),
        }
    };
    connection.unsent.drain(..sent);
    result
}

/// Flushes, then reads and echoes until the socket has nothing more (or no
/// room): `Ok(false)` when the connection is to be closed.
fn serve(connection: &mut Connection, buffer: &mut [u8]) -> std::io::Result<bool> {
    if !flush(connection)? {
        return Ok(true);
    }
    loop {
        match connection.stream.read(buffer) {
            Ok(0) => return Ok(false),
            Ok(count) => {
                connection.last_heard = Instant::now();
                connection.unsent.extend_from_slice(&buffer[..count]);
                if !flush(connection)? {
                    return Ok(true); // a writable edge brings us back
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn main() -> std::io::Result<()> {
    let options = common::options();
    let mut listener = TcpListener::bind(options.listen)?;
    common::announce(listener.local_addr()?);
    std::thread::spawn(|| {
        common::wait_for_end_of_input();
        std::process::exit(0);
    });
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 16 * 1024];
    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        let timeout = next_sweep.saturating_duration_since(Instant::now());
        if let Err(error) = poll.poll(&mut events, Some(timeout)) {
            if error.kind() != ErrorKind::Interrupted {
                return Err(error);
            }
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        Err(error) => {
                            eprintln!("echo-mio: accept: {error}");
                            break;
                        }
                    };
                    let index = free.pop().unwrap_or_else(|| {
                        connections.push(None);
                        connections.len() - 1
                    });
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if poll
                        .registry()
                        .register(&mut stream, Token(index), interest)
                        .is_err()
                    {
                        free.push(index);
                        continue;
                    }
                    connections[index] = Some(Connection {
                        stream,
                        last_heard: Instant::now(),
                        unsent: Vec::new(),
                    });
                }
                continue;
            }
            let index = event.token().0;
            let Some(Some(connection)) = connections.get_mut(index) else {
                continue;
            };
            if !matches!(serve(connection, &mut buffer), Ok(true)) {
                if let Some(mut connection) = connections[index].take() {
                    let _ = poll.registry().deregister(&mut connection.stream);
                }
                free.push(index);
            }
        }
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + SWEEP;
            for (index, place) in connections.iter_mut().enumerate() {
                if place
                    .as_ref()
                    .is_some_and(|connection| connection.last_heard.elapsed() >= options.idle)
                {
                    if let Some(mut connection) = place.take() {
                        let _ = poll.registry().deregister(&mut connection.stream);
                    }
                    free.push(index);
                }
            }
        }
    }
}

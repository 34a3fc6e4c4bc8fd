//! A small TCP echo server on one thread: the listener and every
//! connection are `Fd` requests in one context, and each connection has a
//! `Timer` that closes it after a second of silence.
//!
//! Run: `cargo run -p aiopoll-std --example tcp_echo`
//! (it starts a client thread itself, and exits once the client's
//! connection has timed out).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use aiopoll_std::{Events, Fd, Outcome, StdContext, Timer};

const IDLE: Duration = Duration::from_secs(1);
/// User data: the listener, then per connection `2k` (socket) and `2k+1`
/// (its idle timer).
const LISTENER: u64 = u64::MAX;

struct Connection {
    socket: Fd<TcpStream>,
    idle: Timer,
}

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let listener = Fd::new(listener)?;
    let context = StdContext::<64>::new();
    let room = "64 slots: room for the listener and 31 connections";
    context.submit(&listener, Events::IN, LISTENER).expect(room);

    // A client: three messages, then silence until the server hangs up.
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(address)?;
        for message in ["hello", "echo", "bye"] {
            stream.write_all(message.as_bytes())?;
            let mut buf = [0; 16];
            let n = stream.read(&mut buf)?;
            println!("client got {:?}", String::from_utf8_lossy(&buf[..n]));
        }
        let n = stream.read(&mut [0; 16])?;
        println!("client: server closed the connection (read {n})");
        Ok(())
    });

    let mut connections: HashMap<u64, Connection> = HashMap::new();
    let mut next = 0u64;
    let mut served = 0;
    while served == 0 || !connections.is_empty() {
        for done in context.get_events(1, 16, None).expect("min <= max") {
            let Outcome::Ready(_) = done.outcome else {
                continue; // the source went away with its connection
            };
            if done.user_data == LISTENER {
                // Accept everything pending, then wait for more.
                while let Ok((stream, peer)) = listener.get_ref().accept() {
                    stream.set_nonblocking(true)?;
                    let connection = Connection {
                        socket: Fd::new(stream)?,
                        idle: Timer::new(),
                    };
                    connection.idle.arm(IDLE).expect("timer thread");
                    context
                        .submit(&connection.socket, Events::IN, 2 * next)
                        .expect(room);
                    context
                        .submit(&connection.idle, Events::IN, 2 * next + 1)
                        .expect(room);
                    println!("server: accepted {peer}");
                    connections.insert(next, connection);
                    next += 1;
                    served += 1;
                }
                context.submit(&listener, Events::IN, LISTENER).expect(room);
                continue;
            }
            let key = done.user_data / 2;
            let Some(connection) = connections.get(&key) else {
                continue;
            };
            if done.user_data % 2 == 1 {
                // The idle timer fired (a re-arm after it was queued would
                // have cleared it: check).
                if connection.idle.is_expired() {
                    println!("server: connection {key} idle, closing");
                    connections.remove(&key); // drops socket and timer
                } else {
                    context
                        .submit(&connection.idle, Events::IN, done.user_data)
                        .expect(room);
                }
                continue;
            }
            let mut buf = [0; 1024];
            match connection.socket.get_ref().read(&mut buf) {
                Ok(0) => {
                    connections.remove(&key);
                    continue;
                }
                Ok(n) => {
                    connection.socket.get_ref().write_all(&buf[..n])?;
                    // Activity: push the idle deadline back. The timer's
                    // request stays as it is; it completes when the new
                    // deadline passes.
                    connection.idle.arm(IDLE).expect("timer thread");
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            context
                .submit(&connection.socket, Events::IN, 2 * key)
                .expect(room);
        }
    }
    client.join().expect("client thread")?;
    Ok(())
}

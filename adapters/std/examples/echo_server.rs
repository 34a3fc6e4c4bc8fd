//! A TCP echo server with aiopoll-std as its event engine: one
//! [`StdContext`] shared by several reaping threads, every connection a
//! socket request and an idle-timer request, admission within the
//! context's capacity, and no panic on a full context.
//!
//! ```text
//! cargo run --release -p aiopoll-std --example echo_server -- \
//!     [--listen 127.0.0.1:0] [--reapers 2] [--idle-ms 10000] [--max-connections 10000]
//! ```
//!
//! It prints `listening on ADDRESS`, echoes every byte back to whoever sent
//! it, closes a connection after `--idle-ms` without a byte from its peer,
//! and stops when its standard input ends (Ctrl-D), printing what it did.
//! `cargo xtask test` load-tests it (hundreds of clients checking every
//! reply, idle clients timed), and `cargo xtask server-bench` compares it
//! with tokio, mio and thread-per-connection servers.
//!
//! How it budgets slots: every connection has at most two requests in
//! flight (its socket, its idle timer), and a request holds its slot until
//! its completion is reaped, even after its connection was closed (the
//! dropped sources complete it with `SourceGone`). So a connection's place
//! is given back only when both its completions have been reaped, and the
//! server accepts a connection only when it has a place: the listener's
//! request is not re-submitted while every place is taken (waiting clients
//! queue in the kernel's backlog). With `SLOTS = 2 × MAX_CONNECTIONS + 2`
//! (the listener and the stop counter), `Busy` cannot happen; if it did, the
//! connection would be closed, not the server.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aiopoll_std::{Completion, EventCounter, Events, Fd, Outcome, StdContext, SubmitError, Timer};

/// The most connections the server admits at once.
const MAX_CONNECTIONS: usize = 10_000;
/// Two requests per connection (socket, idle timer), plus the listener and
/// the stop counter.
const SLOTS: usize = 2 * MAX_CONNECTIONS + 2;

/// User data of the two fixed requests; a connection's are `2 × place`
/// (socket) and `2 × place + 1` (idle timer).
const LISTENER: u64 = u64::MAX;
const STOP: u64 = u64::MAX - 1;

/// At most this many accepts, and reads, per completion, so one busy
/// source cannot starve the others (a source still ready completes again
/// at once when re-submitted, behind what is queued).
const ACCEPTS_PER_TURN: usize = 64;
const READS_PER_TURN: usize = 4;

struct Options {
    listen: SocketAddr,
    reapers: usize,
    idle: Duration,
    max_connections: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        reapers: 2,
        idle: Duration::from_secs(10),
        max_connections: MAX_CONNECTIONS,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|number| *number > 0)
                .ok_or(format!("{flag} needs a whole number above 0"))
        };
        match flag.as_str() {
            "--listen" => options.listen = value.parse().map_err(|_| "bad --listen address")?,
            "--reapers" => options.reapers = number()? as usize,
            "--idle-ms" => options.idle = Duration::from_millis(number()?),
            "--max-connections" => {
                options.max_connections = number()? as usize;
                if options.max_connections > MAX_CONNECTIONS {
                    return Err(format!(
                        "--max-connections is at most {MAX_CONNECTIONS} (the context's slots)"
                    ));
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// One connection's place; `io` is `None` while the place is free or its
/// connection is closed but not all of its completions are reaped yet.
#[derive(Default)]
struct Place {
    io: Option<Connection>,
    /// Requests submitted and not reaped yet: the place is reused only at 0.
    in_flight: u8,
}

struct Connection {
    socket: Fd<TcpStream>,
    idle: Timer,
    /// When the peer last sent something: the idle timer is armed for the
    /// remaining time when it fires, instead of at every read.
    last_heard: Instant,
    /// Bytes to echo that the socket had no room for yet.
    unsent: Vec<u8>,
}

/// Free places, and whether the listener's request is in flight.
struct Admission {
    free: Vec<usize>,
    listening: bool,
}

/// What the server did (printed when it stops).
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    /// Connections holding a place now, and the most there ever were.
    open: AtomicU64,
    most_open: AtomicU64,
    closed_by_peer: AtomicU64,
    closed_idle: AtomicU64,
    closed_on_error: AtomicU64,
    busy: AtomicU64,
}

struct Server {
    context: StdContext<SLOTS>,
    listener: Fd<TcpListener>,
    stop: EventCounter,
    places: Box<[Mutex<Place>]>,
    admission: Mutex<Admission>,
    idle: Duration,
    counters: Counters,
}

/// A lock that a panicking thread left behind is still usable here: every
/// critical section leaves its data consistent before anything can fail.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    fn new(listener: TcpListener, options: &Options) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let places = (0..options.max_connections)
            .map(|_| Mutex::new(Place::default()))
            .collect();
        Ok(Server {
            context: StdContext::new(),
            listener: Fd::new(listener)?,
            stop: EventCounter::new(),
            places,
            admission: Mutex::new(Admission {
                // Popped from the end: lowest places first.
                free: (0..options.max_connections).rev().collect(),
                listening: true,
            }),
            idle: options.idle,
            counters: Counters::default(),
        })
    }

    fn start(&self) -> Result<(), SubmitError> {
        self.context.submit(&self.stop, Events::IN, STOP)?;
        self.context.submit(&self.listener, Events::IN, LISTENER)?;
        Ok(())
    }

    /// A reaping thread: takes completions and serves them until the stop
    /// counter is written.
    fn reap(&self) {
        let mut completions = [Completion::EMPTY; 64];
        // This thread's read buffer (zeroing one per read would cost more
        // than the read).
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let count = match self.context.get_events_into(1, &mut completions, None) {
                Ok(count) => count,
                // Only `MinAboveMax`, which 1 <= 64 rules out.
                Err(_) => return,
            };
            let mut stopping = false;
            for completion in &completions[..count] {
                match completion.user_data {
                    STOP => stopping = true,
                    LISTENER => self.accept(),
                    data => self.serve(data, completion.outcome, &mut buffer),
                }
            }
            if stopping {
                // Still readable: the request completes again at once, for
                // the next reaper to see.
                let _ = self.context.submit(&self.stop, Events::IN, STOP);
                return;
            }
        }
    }

    /// The listener is ready: accept while there are places, then submit
    /// the listener again, or leave it idle until a place is given back.
    fn accept(&self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let place = {
                let mut admission = lock(&self.admission);
                let Some(place) = admission.free.pop() else {
                    // Full: `release` submits the listener again.
                    admission.listening = false;
                    return;
                };
                place
            };
            match self.listener.get_ref().accept() {
                Ok((stream, _)) => {
                    let open = self.counters.open.fetch_add(1, Ordering::Relaxed) + 1;
                    self.counters.most_open.fetch_max(open, Ordering::Relaxed);
                    self.open(place, stream);
                }
                Err(error) => {
                    lock(&self.admission).free.push(place);
                    if error.kind() != ErrorKind::WouldBlock {
                        // E.g. out of descriptors: try again when ready.
                        eprintln!("echo_server: accept: {error}");
                    }
                    break;
                }
            }
        }
        self.listen();
    }

    /// Submits the listener's request (its one request in flight).
    fn listen(&self) {
        if let Err(error) = self.context.submit(&self.listener, Events::IN, LISTENER) {
            // Cannot happen within the budget; the next place given back
            // tries again.
            eprintln!("echo_server: listener: {error}");
            lock(&self.admission).listening = false;
        }
    }

    /// Gives a place back once its connection's completions are all reaped.
    fn release(&self, place: usize) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        let resume = {
            let mut admission = lock(&self.admission);
            admission.free.push(place);
            !std::mem::replace(&mut admission.listening, true)
        };
        if resume {
            self.listen();
        }
    }

    fn open(&self, place: usize, stream: TcpStream) {
        let opened = stream.set_nonblocking(true).and_then(|()| {
            let connection = Connection {
                socket: Fd::new(stream)?,
                idle: Timer::new(),
                last_heard: Instant::now(),
                unsent: Vec::new(),
            };
            connection
                .idle
                .arm(self.idle)
                .map_err(std::io::Error::other)?;
            Ok(connection)
        });
        let connection = match opened {
            Ok(connection) => connection,
            Err(error) => {
                eprintln!("echo_server: new connection: {error}");
                self.release(place);
                return;
            }
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        // Submitted under the place's lock: a reaper that gets a completion
        // at once waits here until the place is filled in.
        let mut slot = lock(&self.places[place]);
        let socket = self
            .context
            .submit(&connection.socket, Events::IN, 2 * place as u64);
        let timer = self
            .context
            .submit(&connection.idle, Events::IN, 2 * place as u64 + 1);
        slot.in_flight = u8::from(socket.is_ok()) + u8::from(timer.is_ok());
        slot.io = Some(connection);
        if socket.is_err() || timer.is_err() {
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            // Dropping the sources completes whichever request went in.
            slot.io = None;
        }
        if slot.in_flight == 0 {
            drop(slot);
            self.release(place);
        }
    }

    /// A completion of connection `data / 2`: its socket (even) or its idle
    /// timer (odd).
    fn serve(&self, data: u64, outcome: Outcome, buffer: &mut [u8]) {
        let place = (data / 2) as usize;
        let is_socket = data & 1 == 0;
        let Some(mutex) = self.places.get(place) else {
            return;
        };
        let mut slot = lock(mutex);
        slot.in_flight -= 1;
        let resubmit = match (&mut slot.io, outcome) {
            (Some(connection), Outcome::Ready(_)) if is_socket => self.echo(connection, buffer),
            (Some(connection), Outcome::Ready(_)) => self.check_idle(connection),
            // Closed while this was in flight (`SourceGone`), or anything
            // else no request here asks for.
            (Some(_), _) => Err(Closed::Error),
            (None, _) => Err(Closed::Already),
        };
        let closed = match resubmit {
            Ok(events) => {
                let submitted = slot.io.as_ref().map(|connection| {
                    if is_socket {
                        self.context.submit(&connection.socket, events, data)
                    } else {
                        self.context.submit(&connection.idle, events, data)
                    }
                });
                match submitted {
                    Some(Ok(_)) => {
                        slot.in_flight += 1;
                        None
                    }
                    _ => {
                        self.counters.busy.fetch_add(1, Ordering::Relaxed);
                        Some(Closed::Error)
                    }
                }
            }
            Err(closed) => Some(closed),
        };
        match closed {
            None | Some(Closed::Already) => {}
            Some(Closed::ByPeer) => self.count(&self.counters.closed_by_peer),
            Some(Closed::Idle) => self.count(&self.counters.closed_idle),
            Some(Closed::Error) => self.count(&self.counters.closed_on_error),
        }
        if closed.is_some() {
            // Drops the socket and the timer: the other request, if in
            // flight, completes `SourceGone` and gives the place back.
            slot.io = None;
            if slot.in_flight == 0 {
                drop(slot);
                self.release(place);
            }
        }
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The socket is ready: send what is left, read and echo, and say what
    /// to wait for next.
    fn echo(&self, connection: &mut Connection, buffer: &mut [u8]) -> Result<Events, Closed> {
        if !flush(connection)? {
            return Ok(Events::OUT); // the peer is not reading: wait for room
        }
        for _ in 0..READS_PER_TURN {
            // `Fd::read`: a short read tells the socket's `Fd` that it is
            // drained, so the request for IN submitted next waits for the
            // next edge without a `poll(2)`.
            match connection.socket.read(buffer) {
                Ok(0) => return Err(Closed::ByPeer),
                Ok(count) => {
                    connection.last_heard = Instant::now();
                    connection.unsent.extend_from_slice(&buffer[..count]);
                    if !flush(connection)? {
                        return Ok(Events::OUT);
                    }
                    if count < buffer.len() {
                        // Most likely drained. No need to read on until
                        // `WouldBlock`: submitting polls the socket, so a
                        // request for data already there completes at once.
                        return Ok(Events::IN);
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(Events::IN),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Closed::Error),
            }
        }
        // More may be waiting: a new request completes at once if so.
        Ok(Events::IN)
    }

    /// The idle timer fired: close the connection if the peer has been
    /// quiet for the whole timeout, else arm it for the rest.
    fn check_idle(&self, connection: &mut Connection) -> Result<Events, Closed> {
        let quiet = connection.last_heard.elapsed();
        if quiet >= self.idle {
            return Err(Closed::Idle);
        }
        connection
            .idle
            .arm(self.idle - quiet)
            .map_err(|_| Closed::Error)?;
        Ok(Events::IN)
    }

    fn print_counters(&self) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        println!(
            "echo_server: accepted {} connections, at most {} at once; closed {} by the peer, {} idle, {} on errors; {} refused submits (busy)",
            load(&counters.accepted),
            load(&counters.most_open),
            load(&counters.closed_by_peer),
            load(&counters.closed_idle),
            load(&counters.closed_on_error),
            load(&counters.busy),
        );
    }
}

/// Why a connection closes.
enum Closed {
    ByPeer,
    Idle,
    Error,
    /// It was closed before this completion was reaped.
    Already,
}

/// Writes what is unsent; `Ok(false)` if the socket had no room for all.
fn flush(connection: &mut Connection) -> Result<bool, Closed> {
    let mut sent = 0;
    let result = loop {
        if sent == connection.unsent.len() {
            break Ok(true);
        }
        match connection.socket.write(&connection.unsent[sent..]) {
            Ok(0) => break Err(Closed::Error),
            Ok(count) => sent += count,
            Err(error) if error.kind() == ErrorKind::WouldBlock => break Ok(false),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => break Err(Closed::Error),
        }
    };
    connection.unsent.drain(..sent);
    result
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let listener = TcpListener::bind(options.listen)?;
    let address = listener.local_addr()?;
    let server = Server::new(listener, &options)?;
    server.start()?;
    println!("listening on {address}");
    std::io::stdout().flush()?;

    let served = std::thread::scope(|scope| {
        let started = (0..options.reapers).try_for_each(|reaper| {
            std::thread::Builder::new()
                .name(format!("echo-reaper-{reaper}"))
                .spawn_scoped(scope, || server.reap())
                .map(drop)
        });
        // Serve until standard input ends (or stop at once if a reaper
        // could not be started).
        let served =
            started.and_then(|()| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()));
        // The scope waits for the reapers: stop them whatever happened.
        server.stop.write(1).map_err(std::io::Error::other)?;
        served
    });
    server.print_counters();
    served?;
    Ok(())
}

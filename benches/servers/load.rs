//! `echo-load`: a load generator for line echo servers on this machine.
//!
//! ```text
//! echo-load --addr 127.0.0.1:PORT [--clients 200] [--lines 500] [--line-bytes 32]
//!           [--idle-clients 20 --idle-ms 2000 --idle-bound-ms 5000]
//!           [--threads 2] [--no-warmup] [--max-seconds 300]
//! ```
//!
//! Each active client sends a line, waits for it to come back whole,
//! checks it byte for byte, and sends the next: `--lines` times, then it
//! hangs up. Each line names its client and number, so a reply sent to the
//! wrong client or out of order is caught. Idle clients connect and send
//! nothing: the server must close them no sooner than `--idle-ms` after
//! they connected and no later than `--idle-bound-ms` after that.
//!
//! With warm-up (the default) every client first sends one untimed line,
//! so every connection has been accepted before the clock starts; then all
//! start together. `--no-warmup` starts at once (for a server that admits
//! fewer connections than there are clients, which then wait in its
//! backlog).
//!
//! It prints one line of `key=value` figures (lines/s, latency percentiles
//! in microseconds, idle closes) and exits with 1 if any check failed,
//! saying which on standard error. Every loop is bounded: by its count, and
//! by `--max-seconds` (a guard against a hung server, far above what a run
//! takes), after which unfinished clients count as failures.
//!
//! It talks to the given address only, which must be a loopback address.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Clients per load thread that connect and warm up together.
const WARMUP_BATCH: usize = 32;

struct Options {
    addr: SocketAddr,
    clients: usize,
    lines: usize,
    line_bytes: usize,
    idle_clients: usize,
    idle: Duration,
    idle_bound: Duration,
    threads: usize,
    warmup: bool,
    max_time: Duration,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        clients: 200,
        lines: 500,
        line_bytes: 32,
        idle_clients: 0,
        idle: Duration::from_secs(2),
        idle_bound: Duration::from_secs(5),
        threads: 2,
        warmup: true,
        max_time: Duration::from_secs(300),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-warmup" {
            options.warmup = false;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("{flag} needs a whole number"))
        };
        match flag.as_str() {
            "--addr" => options.addr = value.parse().map_err(|_| "bad --addr")?,
            "--clients" => options.clients = number()? as usize,
            "--lines" => options.lines = number()? as usize,
            "--line-bytes" => options.line_bytes = number()? as usize,
            "--idle-clients" => options.idle_clients = number()? as usize,
            "--idle-ms" => options.idle = Duration::from_millis(number()?),
            "--idle-bound-ms" => options.idle_bound = Duration::from_millis(number()?),
            "--threads" => options.threads = (number()? as usize).max(1),
            "--max-seconds" => options.max_time = Duration::from_secs(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !options.addr.ip().is_loopback() || options.addr.port() == 0 {
        return Err("--addr must be a loopback address with its port".into());
    }
    if options.line_bytes < 24 {
        return Err("--line-bytes must be at least 24".into());
    }
    Ok(options)
}

/// The `number`th line of client `client`: names both, ends in `\n`.
fn line(client: usize, number: usize, bytes: usize) -> Vec<u8> {
    let mut text = format!("{client:07} {number:09} ").into_bytes();
    text.resize(bytes - 1, b'x');
    text.push(b'\n');
    text
}

enum Role {
    /// Sends lines `0..=lines` (0 is the warm-up line, untimed).
    Active,
    /// Sends nothing; waits for the server to hang up.
    Idle,
}

struct Client {
    id: usize,
    role: Role,
    stream: TcpStream,
    connected_at: Instant,
    /// The line in flight, and how much of it went out and came back.
    number: usize,
    out: Vec<u8>,
    written: usize,
    echoed: usize,
    sent_at: Instant,
    done: bool,
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    lines: usize,
    finished_at: Option<Instant>,
    idle_closed_ms: Vec<u128>,
    failures: Vec<String>,
}

struct Shared {
    options: Options,
    start: Barrier,
    deadline: Instant,
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("echo-load: {message}");
            std::process::exit(2);
        }
    };
    let threads = options.threads;
    let deadline = Instant::now() + options.max_time;
    let shared = Arc::new(Shared {
        options,
        start: Barrier::new(threads + 1),
        deadline,
    });
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let shared = shared.clone();
            std::thread::spawn(move || run(&shared, thread))
        })
        .collect();
    // Every client connected (and warmed up): start the clock.
    shared.start.wait();
    let started = Instant::now();
    let mut total = Tally::default();
    for worker in workers {
        match worker.join() {
            Ok(tally) => {
                total.latencies_us.extend(tally.latencies_us);
                total.lines += tally.lines;
                total.finished_at = total.finished_at.max(tally.finished_at);
                total.idle_closed_ms.extend(tally.idle_closed_ms);
                total.failures.extend(tally.failures);
            }
            Err(_) => total.failures.push("a load thread panicked".into()),
        }
    }
    let options = &shared.options;
    let seconds = total.finished_at.map_or(0.0, |at| {
        at.saturating_duration_since(started).as_secs_f64()
    });
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| -> u32 {
        if total.latencies_us.is_empty() {
            return 0;
        }
        let index = ((total.latencies_us.len() - 1) as f64 * p).round() as usize;
        total.latencies_us[index]
    };
    let expected = options.clients * options.lines;
    if total.lines != expected {
        total
            .failures
            .push(format!("{} of {expected} lines echoed", total.lines));
    }
    if total.idle_closed_ms.len() != options.idle_clients {
        total.failures.push(format!(
            "{} of {} idle clients were disconnected",
            total.idle_closed_ms.len(),
            options.idle_clients
        ));
    }
    println!(
        "lines={} seconds={seconds:.3} lines_per_sec={:.0} p50_us={} p99_us={} max_us={} idle_closed={} idle_min_ms={} idle_max_ms={} failures={}",
        total.lines,
        if seconds > 0.0 { total.lines as f64 / seconds } else { 0.0 },
        percentile(0.5),
        percentile(0.99),
        total.latencies_us.last().copied().unwrap_or(0),
        total.idle_closed_ms.len(),
        total.idle_closed_ms.iter().min().copied().unwrap_or(0),
        total.idle_closed_ms.iter().max().copied().unwrap_or(0),
        total.failures.len(),
    );
    for failure in total.failures.iter().take(20) {
        eprintln!("echo-load: {failure}");
    }
    if !total.failures.is_empty() {
        std::process::exit(1);
    }
}

/// One load thread: its share of the clients, on one mio poll.
fn run(shared: &Shared, thread: usize) -> Tally {
    let mut tally = Tally::default();
    let options = &shared.options;
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(error) => {
            tally.failures.push(format!("mio poll: {error}"));
            shared.start.wait();
            return tally;
        }
    };
    let mut clients = Vec::new();
    let everyone = options.clients + options.idle_clients;
    let (active, idle): (Vec<usize>, Vec<usize>) = (thread..everyone)
        .step_by(options.threads)
        .partition(|id| *id < options.clients);
    if options.warmup {
        // A few at a time, each batch accepted (its warm-up line back)
        // before the next connects, so the server's accept backlog never
        // overflows (a dropped SYN is retried a second later, which would
        // skew the idle clients' timing); the idle clients last.
        let warm = |client: &Client| {
            !matches!(client.role, Role::Active) || client.number > 0 || client.done
        };
        for batch in active.chunks(WARMUP_BATCH) {
            for id in batch {
                connect(&mut poll, &mut clients, *id, options, &mut tally);
            }
            drive(shared, &mut poll, &mut clients, &mut tally, &warm);
        }
        for id in idle {
            connect(&mut poll, &mut clients, id, options, &mut tally);
        }
    } else {
        for id in active.into_iter().chain(idle) {
            connect(&mut poll, &mut clients, id, options, &mut tally);
        }
    }
    shared.start.wait();
    if options.warmup {
        // Everyone starts together: send line 1 on every active client.
        for client in clients
            .iter_mut()
            .filter(|client| matches!(client.role, Role::Active) && !client.done)
        {
            client.sent_at = Instant::now();
            send(client, &mut tally);
        }
    }
    let finished = |client: &Client| client.done;
    drive(shared, &mut poll, &mut clients, &mut tally, &finished);
    tally
}

/// Connects client `id` and adds it to `clients` (or counts a failure).
fn connect(
    poll: &mut Poll,
    clients: &mut Vec<Client>,
    id: usize,
    options: &Options,
    tally: &mut Tally,
) {
    let role = if id < options.clients {
        Role::Active
    } else {
        Role::Idle
    };
    let connected_at = Instant::now();
    let mut stream = match TcpStream::connect(options.addr) {
        Ok(stream) => stream,
        Err(error) => {
            tally
                .failures
                .push(format!("client {id}: connect: {error}"));
            return;
        }
    };
    let token = Token(clients.len());
    let interest = Interest::READABLE | Interest::WRITABLE;
    if let Err(error) = poll.registry().register(&mut stream, token, interest) {
        tally
            .failures
            .push(format!("client {id}: register: {error}"));
        return;
    }
    let first = if options.warmup { 0 } else { 1 };
    clients.push(Client {
        id,
        out: match role {
            Role::Active => line(id, first, options.line_bytes),
            Role::Idle => Vec::new(),
        },
        role,
        stream,
        connected_at,
        number: first,
        written: 0,
        echoed: 0,
        sent_at: connected_at,
        done: false,
    });
}

/// Runs the event loop until `stop` holds for every client (or the
/// deadline passes: then each client it does not hold for fails).
/// Latencies are recorded for lines from 1 on (0 is the warm-up line).
fn drive(
    shared: &Shared,
    poll: &mut Poll,
    clients: &mut [Client],
    tally: &mut Tally,
    stop: &dyn Fn(&Client) -> bool,
) {
    let options = &shared.options;
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 64 * 1024];
    while !clients.iter().all(stop) {
        let now = Instant::now();
        if now >= shared.deadline {
            for client in clients.iter_mut().filter(|client| !stop(client)) {
                tally.failures.push(format!(
                    "client {}: unfinished after {:?} (line {})",
                    client.id, options.max_time, client.number
                ));
                client.done = true;
            }
            return;
        }
        let wait = (shared.deadline - now).min(Duration::from_millis(100));
        if let Err(error) = poll.poll(&mut events, Some(wait)) {
            if error.kind() != ErrorKind::Interrupted {
                tally.failures.push(format!("mio poll: {error}"));
                return;
            }
        }
        for event in events.iter() {
            let Some(client) = clients.get_mut(event.token().0) else {
                continue;
            };
            if client.done {
                continue;
            }
            if event.is_writable() && client.written < client.out.len() {
                send(client, tally);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                receive(client, &mut buffer, tally, options);
            }
        }
    }
}

/// Writes what is left of the line in flight.
fn send(client: &mut Client, tally: &mut Tally) {
    while client.written < client.out.len() {
        match client.stream.write(&client.out[client.written..]) {
            Ok(count) => client.written += count,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::NotConnected => return,
            Err(error) => {
                fail(client, tally, format!("write: {error}"));
                return;
            }
        }
    }
}

/// Reads what came back and checks it; moves to the next line when the
/// whole line is back.
fn receive(client: &mut Client, buffer: &mut [u8], tally: &mut Tally, options: &Options) {
    loop {
        let count = match client.stream.read(buffer) {
            Ok(0) => {
                match client.role {
                    Role::Idle => {
                        let after = client.connected_at.elapsed();
                        tally.idle_closed_ms.push(after.as_millis());
                        if after < options.idle || after > options.idle + options.idle_bound {
                            tally.failures.push(format!(
                                "idle client {}: disconnected after {after:?}, outside {:?} + {:?}",
                                client.id, options.idle, options.idle_bound
                            ));
                        }
                        client.done = true;
                    }
                    Role::Active => fail(
                        client,
                        tally,
                        format!("the server hung up at line {}", client.number),
                    ),
                }
                return;
            }
            Ok(count) => count,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == ErrorKind::NotConnected => return,
            Err(error) => {
                if matches!(client.role, Role::Idle) && error.kind() == ErrorKind::ConnectionReset {
                    // A reset is a hang-up too.
                    tally
                        .idle_closed_ms
                        .push(client.connected_at.elapsed().as_millis());
                    client.done = true;
                } else {
                    fail(client, tally, format!("read: {error}"));
                }
                return;
            }
        };
        let Role::Active = client.role else {
            fail(client, tally, "an idle client was sent bytes".into());
            return;
        };
        let got = &buffer[..count];
        let expected = &client.out[client.echoed..];
        if got.len() > expected.len() || got != &expected[..got.len()] {
            fail(
                client,
                tally,
                format!(
                    "line {}: expected {:?}, got {:?}",
                    client.number,
                    String::from_utf8_lossy(expected),
                    String::from_utf8_lossy(got)
                ),
            );
            return;
        }
        client.echoed += count;
        if client.echoed < client.out.len() {
            continue;
        }
        // The whole line is back.
        if client.number > 0 {
            tally.lines += 1;
            let micros = client.sent_at.elapsed().as_micros();
            tally
                .latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
        if client.number == options.lines {
            client.done = true;
            // The clock stops when the last active client is done.
            tally.finished_at = tally.finished_at.max(Some(Instant::now()));
            // Hang up: dropping the stream happens with the client list;
            // shut down now so the server sees it at once.
            let _ = client.stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        client.number += 1;
        client.out = line(client.id, client.number, options.line_bytes);
        client.written = 0;
        client.echoed = 0;
        if client.number == 1 && options.warmup {
            // Warmed up: line 1 waits for everyone.
            return;
        }
        client.sent_at = Instant::now();
        send(client, tally);
    }
}

fn fail(client: &mut Client, tally: &mut Tally, why: String) {
    tally.failures.push(format!("client {}: {why}", client.id));
    client.done = true;
}

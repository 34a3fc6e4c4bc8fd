//! What the peer echo servers share: their options, and how they report
//! their address and learn when to stop.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// `--listen ADDR` (default 127.0.0.1:0), `--idle-ms MS` (default 10000),
/// `--threads N` (default 2; what it means is each server's own).
pub struct Options {
    pub listen: SocketAddr,
    pub idle: Duration,
    pub threads: usize,
}

pub fn options() -> Options {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        idle: Duration::from_secs(10),
        threads: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let bad = || -> ! {
            eprintln!("bad value `{value}` for {flag}");
            std::process::exit(2)
        };
        match flag.as_str() {
            "--listen" => options.listen = value.parse().unwrap_or_else(|_| bad()),
            "--idle-ms" => {
                options.idle = Duration::from_millis(value.parse().unwrap_or_else(|_| bad()))
            }
            "--threads" => {
                options.threads = value
                    .parse()
                    .ok()
                    .filter(|threads| *threads > 0)
                    .unwrap_or_else(|| bad())
            }
            _ => {
                eprintln!("unknown option {flag} (--listen ADDR, --idle-ms MS, --threads N)");
                std::process::exit(2)
            }
        }
    }
    options
}

/// Prints `listening on ADDRESS` (the line the load harness reads).
pub fn announce(address: SocketAddr) {
    println!("listening on {address}");
    let _ = std::io::stdout().flush();
}

/// Blocks until standard input ends.
pub fn wait_for_end_of_input() {
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}

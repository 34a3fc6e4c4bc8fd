//! `echo-threads`: the echo server with a thread per connection, blocking
//! reads with the idle timeout as the socket's read timeout. Stops when
//! standard input ends.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn serve(mut stream: TcpStream, idle: Duration) {
    if stream.set_read_timeout(Some(idle)).is_err() {
        return;
    }
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let count = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return, // closed, or idle (`WouldBlock`/`TimedOut`)
            Ok(count) => count,
        };
        if stream.write_all(&buffer[..count]).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let options = common::options();
    let listener = TcpListener::bind(options.listen)?;
    common::announce(listener.local_addr()?);
    let idle = options.idle;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let spawned = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || serve(stream, idle));
            if spawned.is_err() {
                eprintln!("echo-threads: no thread for a connection");
            }
        }
    });
    common::wait_for_end_of_input();
    Ok(())
}

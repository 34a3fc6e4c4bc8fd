//! A TCP echo server in tokio tasks (`echo_server` is one on reaping
//! threads): each connection is a task that awaits its socket's readiness
//! as an aiopoll request, and closes the connection after a second of
//! silence by dropping that request (`tokio::time::timeout`), which
//! cancels it.
//!
//! Run: `cargo run -p aiopoll-std --example tokio_echo`
//! (it starts a client itself, and exits once the client's connection has
//! timed out).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use aiopoll_std::{Events, Fd, StdContext};

type Context = Arc<StdContext<64>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let context = Context::default();
    tokio::spawn(accept(context, Fd::new(listener)?));
    tokio::task::spawn_blocking(move || client(address)).await?
}

async fn accept(context: Context, listener: Fd<TcpListener>) -> std::io::Result<()> {
    loop {
        context
            .request(&listener, Events::IN)
            .await
            .expect("a socket");
        while let Ok((stream, peer)) = listener.get_ref().accept() {
            println!("server: accepted {peer}");
            stream.set_nonblocking(true)?;
            tokio::spawn(echo(context.clone(), Fd::new(stream)?));
        }
    }
}

async fn echo(context: Context, socket: Fd<TcpStream>) -> std::io::Result<()> {
    let mut buf = [0; 1024];
    loop {
        let readable = context.request(&socket, Events::IN);
        if tokio::time::timeout(Duration::from_secs(1), readable)
            .await
            .is_err()
        {
            println!("server: connection idle, closing");
            return Ok(()); // the request was dropped (cancelled); `socket` goes
        }
        match socket.get_ref().read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => socket.get_ref().write_all(&buf[..n])?,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
}

/// Three messages, then silence until the server hangs up.
fn client(address: SocketAddr) -> std::io::Result<()> {
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
}

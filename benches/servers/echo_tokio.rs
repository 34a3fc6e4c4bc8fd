//! `echo-tokio`: the echo server as a tokio user writes it: a multi-thread
//! runtime with `--threads` workers, a task per connection, the idle
//! timeout as `tokio::time::timeout` around each read. Stops when standard
//! input ends.

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(mut stream: TcpStream, idle: std::time::Duration) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let count = match tokio::time::timeout(idle, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(count)) => count,
        };
        if stream.write_all(&buffer[..count]).await.is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let options = common::options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()?;
    let listener = std::net::TcpListener::bind(options.listen)?;
    listener.set_nonblocking(true)?;
    common::announce(listener.local_addr()?);
    let idle = options.idle;
    runtime.spawn(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(serve(stream, idle));
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    common::wait_for_end_of_input();
    runtime.shutdown_background();
    Ok(())
}

//! Ping-pong over two pipes between two threads, each waiting through its
//! own aiopoll context.
//!
//! Run: `cargo run -p aiopoll-std --example pipe_ping_pong`

use aiopoll_std::{pipe, Events, Outcome, PipeReader, PipeWriter, StdContext};

const ROUNDS: u32 = 5;

/// Waits until `reader` is readable, then reads one message.
fn receive(context: &StdContext<1>, reader: &PipeReader) -> String {
    context.submit(reader, Events::IN, 0).expect("a free slot");
    let done = context.get_events(1, 1, None).expect("min <= max");
    assert_eq!(done[0].outcome, Outcome::Ready(Events::IN));
    let mut buf = [0; 64];
    let n = reader.read(&mut buf).expect("readable");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn player(name: &str, serve: bool, inbox: PipeReader, outbox: PipeWriter) {
    let context = StdContext::<1>::new();
    for round in 1..=ROUNDS {
        if serve {
            outbox
                .write(format!("ping {round}").as_bytes())
                .expect("room");
            println!("{name} got {:?}", receive(&context, &inbox));
        } else {
            let message = receive(&context, &inbox);
            println!("{name} got {message:?}");
            outbox
                .write(message.replace("ping", "pong").as_bytes())
                .expect("room");
        }
    }
}

fn main() {
    let (to_bob, bob_inbox) = {
        let (reader, writer) = pipe();
        (writer, reader)
    };
    let (to_alice, alice_inbox) = {
        let (reader, writer) = pipe();
        (writer, reader)
    };
    std::thread::scope(|scope| {
        scope.spawn(|| player("alice", true, alice_inbox, to_bob));
        scope.spawn(|| player("bob", false, bob_inbox, to_alice));
    });
}

//! `chat chat` driven through pseudo-terminals: two users talk, one loses the server for a
//! while, and what it typed meanwhile arrives after the server returns.

mod common;

use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Session};

use common::{Server, GUARD};

type Pty = expectrl::session::OsSession;

fn open(server: &Server, user: &str) -> Pty {
    let mut command = server.chat(user);
    command.args(["chat", "general"]);
    let mut session = Session::spawn(command).expect("spawn chat in a pty");
    session.set_expect_timeout(Some(GUARD));
    session
}

fn expect(pty: &mut Pty, who: &str, text: &str) {
    if let Err(err) = pty.expect(text) {
        panic!("{who} never showed {text:?}: {err}");
    }
}

#[test]
fn two_users_talk_and_a_message_typed_offline_goes_out_on_reconnect() {
    let mut server = Server::start();
    let mut bob = open(&server, "bob");
    expect(&mut bob, "bob", "· connected");
    let mut alice = open(&server, "alice");
    expect(&mut alice, "alice", "· connected");
    // Both are members before anyone speaks.
    expect(&mut bob, "bob", "alice joined general");

    alice.send("hi bob\r").expect("type");
    expect(&mut alice, "alice", "queued \"hi bob\"");
    expect(&mut bob, "bob", "alice: hi bob");
    // Bob's screen showed it, so it is read.
    expect(&mut alice, "alice", "✓✓ read #1 \"hi bob\"");

    bob.send("hey").expect("type");
    expect(&mut alice, "alice", "[bob is typing]");
    bob.send("\r").expect("enter");
    expect(&mut alice, "alice", "bob: hey");

    server.stop();
    expect(&mut alice, "alice", "· reconnecting");
    alice
        .send("typed while the server is down\r")
        .expect("type");
    expect(
        &mut alice,
        "alice",
        "queued \"typed while the server is down\"",
    );
    server.resume();
    expect(
        &mut alice,
        "alice",
        "✓ sent #3 \"typed while the server is down\"",
    );
    expect(&mut bob, "bob", "alice: typed while the server is down");
    expect(&mut alice, "alice", "✓✓ read #3");

    // Ctrl-C leaves cleanly.
    alice.send([3u8]).expect("ctrl-c");
    let status = alice.get_process().wait().expect("alice exits");
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    bob.send([4u8]).expect("ctrl-d");
    let status = bob.get_process().wait().expect("bob exits");
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

//! The `chat` command against a server that terminates TLS itself, and one outbox file per
//! running command.

mod common;

use std::process::Stdio;

use chat_testkit::TestCert;
use common::*;

/// `chat serve --tls-cert --tls-key` prints an https:// address; `chat send --ca` reaches it;
/// without `--ca` the self-signed certificate is refused with exit 2 and a reason.
#[test]
fn send_over_https_needs_the_servers_ca() {
    let cert = TestCert::generate().expect("a certificate");
    let server = Server::start_tls(&cert);
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let sent = server
        .cmd("alice")
        .args(["send", "general", "over tls", "--json", "--ca"])
        .arg(cert.cert_path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&sent.get_output().stdout).into_owned();
    assert!(stdout.contains(r#""state":"sent""#), "{stdout}");
    let refused = server
        .cmd("bob")
        .args(["send", "general", "no ca"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("certificate was refused"), "{stderr}");
    // CHAT_CA_FILE works like --ca, and history over TLS shows what was sent.
    let history = server
        .cmd("alice")
        .env("CHAT_CA_FILE", cert.cert_path())
        .args(["history", "general"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&history.get_output().stdout).into_owned();
    assert!(stdout.contains("over tls"), "{stdout}");
}

/// While `chat listen` runs on alice's outbox, a second client command on it is refused
/// (exit 2, naming the file), `chat outbox list` still works, and a repair is refused.
#[test]
fn a_store_in_use_is_refused_to_a_second_command_and_read_only_to_outbox() {
    let server = Server::start();
    server
        .cmd("bob")
        .args(["send", "general", "hello alice"])
        .assert()
        .success();
    server
        .cmd("alice")
        .args(["send", "general", "joined"])
        .assert()
        .success();
    let mut listen = server
        .chat("alice")
        .args(["listen", "general", "--since", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn listen");
    let mut lines = Lines::new(listen.stdout.take().expect("stdout"));
    lines.wait_for("the backlog", |l| l.contains("hello alice"));

    let second = server
        .cmd("alice")
        .args(["send", "general", "twice"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&second.get_output().stderr).into_owned();
    assert!(
        stderr.contains("in use by another running client"),
        "{stderr}"
    );
    assert!(stderr.contains("alice.db"), "{stderr}");

    let listed = server
        .cmd("alice")
        .args(["outbox", "list", "--json"])
        .assert()
        .success();
    let rows = json_lines(&listed.get_output().stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0]["client_id"].as_str().expect("an id").to_owned();
    let repair = server
        .cmd("alice")
        .args(["outbox", "discard", &id])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&repair.get_output().stderr).into_owned();
    assert!(stderr.contains("must go through that client"), "{stderr}");

    let _ = listen.kill();
    let _ = listen.wait();
    // The owner is gone (killed: the kernel released its lock): the repair goes through.
    server
        .cmd("alice")
        .args(["outbox", "discard", &id])
        .assert()
        .success();
}

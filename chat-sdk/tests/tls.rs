//! TLS in the default transport: `https://` and `wss://` servers whose root the client
//! trusts work like plain ones; a certificate that does not verify is a typed error at
//! `connect()` and, for a running client, a stop with the reason in its connection state,
//! not a retry.

mod common;

use chat_sdk::{ConnectError, ConnectionState, DisconnectReason};
use chat_testkit::{TestCert, TestServer};
use common::*;

/// The certificate's file, as a client trusts it.
fn ca(server: &TestServer) -> std::path::PathBuf {
    server.ca_pem_path().expect("a TLS server").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_over_https_and_wss_with_a_trusted_root() {
    let server = TestServer::start_tls().await.expect("TLS server starts");
    let https = server.url();
    assert!(https.starts_with("https://"), "{https}");
    let wss = https.replacen("https://", "wss://", 1);
    let general = room("general");
    let (alice, _alice_events) = builder(&https, server.token("alice"))
        .add_root_certificate(ca(&server))
        .connect()
        .await
        .expect("alice connects over https://");
    let (bob, mut bob_events) = builder(&wss, server.token("bob"))
        .add_root_certificate(ca(&server))
        .connect()
        .await
        .expect("bob connects over wss://");
    alice.join(&general).await.expect("alice joins");
    bob.join(&general).await.expect("bob joins");
    let bodies: Vec<String> = (0..5).map(|i| format!("secret {i}")).collect();
    send_all(&alice, &general, &bodies).await;
    let got = collect_messages(&mut bob_events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_fails_connect_with_the_reason() {
    let server = TestServer::start_tls().await.expect("TLS server starts");
    let other = TestCert::generate().expect("another certificate");
    // Nothing vouches for it; or a root with its name but another key does.
    for (trusted, expected) in [
        (None, "UnknownIssuer"),
        (Some(other.cert_path().to_owned()), "BadSignature"),
    ] {
        let mut attempt = builder(&server.url(), server.token("alice"));
        if let Some(root) = &trusted {
            attempt = attempt.add_root_certificate(root);
        }
        match attempt.connect().await {
            Err(ConnectError::Certificate(reason)) => {
                assert!(reason.contains(expected), "{reason}")
            }
            Err(other) => panic!("expected a certificate error, got {other}"),
            Ok(_) => panic!("a certificate nobody vouches for was accepted"),
        }
    }
    // A root file that cannot be read is a configuration error, named.
    match builder(&server.url(), server.token("alice"))
        .add_root_certificate(server.temp_path("missing.pem"))
        .connect()
        .await
    {
        Err(ConnectError::Config(why)) => assert!(why.contains("missing.pem"), "{why}"),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("connected without the root it was told to trust"),
    }
}

/// A running client whose server rotates to a certificate it does not trust stops there,
/// saying why, instead of retrying forever.
#[tokio::test]
async fn a_running_client_stops_on_a_refused_certificate_and_says_why() {
    let mut server = TestServer::start_tls().await.expect("TLS server starts");
    let (client, _events) = builder(&server.url(), server.token("alice"))
        .add_root_certificate(ca(&server))
        .connect()
        .await
        .expect("connects to the trusted server");
    let mut state = client.connection_state();
    server.stop().await.expect("the server stops");
    server.replace_cert(TestCert::generate().expect("a new certificate"));
    server
        .resume()
        .await
        .expect("the server comes back with it");
    let stopped = tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, ConnectionState::Disconnected { .. })),
    )
    .await
    .expect("timed out")
    .expect("state")
    .clone();
    match stopped {
        ConnectionState::Disconnected {
            reason: DisconnectReason::Certificate { message },
        } => assert!(message.contains("BadSignature"), "{message}"),
        other => panic!("expected a certificate stop, got {other:?}"),
    }
    client.close().await;
}

/// With several URLs, a refused certificate moves the client on to the next one; a
/// first connect fails only when every URL refused.
#[tokio::test]
async fn a_refused_certificate_fails_over_to_the_next_url() {
    let untrusted = TestServer::start_tls().await.expect("TLS server starts");
    let trusted = TestServer::start_tls()
        .await
        .expect("second TLS server starts");
    let (client, _events) = builder(&untrusted.url(), untrusted.token("alice"))
        .fallback_url(trusted.url())
        .add_root_certificate(ca(&trusted))
        .connect()
        .await
        .expect("connects through the fallback");
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Connected
    );
    client.close().await;
}

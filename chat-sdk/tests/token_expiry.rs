//! A token that expires in the middle of a session: the server refuses the socket's next
//! request with `unauthorized` and closes it, the SDK's refresh hook gives a new token, and
//! the message that was refused is sent on the new connection, once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_testkit::TestServer;
use common::{builder, collect_messages, connect, room};

/// Waits until the wall clock has passed all of second `secs` (since the epoch): a token's
/// `exp` is wall-clock time in whole seconds, so only the real clock can make it pass.
async fn until_the_clock_passes(secs: u64) {
    let deadline = UNIX_EPOCH + Duration::from_secs(secs + 1);
    if let Ok(left) = deadline.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_mid_session_is_refused_and_the_refresh_hook_takes_over() {
    let server = TestServer::start_with(|config| config.token_leeway = Duration::ZERO)
        .await
        .expect("server starts");
    let general = room("general");
    let short = server.token_with_ttl("alice", Duration::from_secs(1));
    let short_expires = now_secs() + 1;
    let long = server.token_with_ttl("alice", Duration::from_secs(3600));
    let calls = Arc::new(AtomicUsize::new(0));
    let hook_calls = calls.clone();
    let (alice, _alice_events) = builder(&server.url(), short.clone())
        .token_refresh(move || {
            // The first refresh (before connecting: the token is about to expire) still
            // gives a short one, so the session outlives it; later ones are good for long.
            let token = if hook_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                short.clone()
            } else {
                long.clone()
            };
            async move { Ok::<_, String>(token) }
        })
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("join");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    let refused_before = refused_sends();

    until_the_clock_passes(short_expires).await;
    let id = alice
        .send(&general, "after the token expired")
        .await
        .expect("queued")
        .client_id();

    let got = collect_messages(&mut bob_events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    assert_eq!(got[0].seq, 1, "stored once");
    assert!(
        refused_sends() > refused_before,
        "the expired token was refused at the request"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the hook gave the token the message was sent with"
    );
    alice.close().await;
    bob.close().await;
}

/// Sends refused as `unauthorized` so far, one at a time or in batches.
fn refused_sends() -> u64 {
    let requests = &chat_server::metrics::REQUESTS;
    requests.get(&["message:send", "unauthorized"])
        + requests.get(&["message:send_batch", "unauthorized"])
}

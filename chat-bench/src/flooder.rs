//! The flooder: one more user beside the measured load, sending `message:send` as fast as
//! its socket takes them, never waiting for an answer — what a broken or hostile client
//! does. It is a bare rust_socketio client in a room of its own, so the measured clients
//! feel it only through the server: its rate limit, its CPU and its store. The question the
//! bench answers with it is how much a flood raises everyone else's latency.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::BenchError;

/// What the flooder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FlooderReport {
    /// `message:send` packets it wrote.
    pub emitted: u64,
    /// Packets per second it wrote, over its run.
    pub per_s: f64,
}

/// Connects the flooder to `url` as the owner of `token` and floods `room` until
/// `finished`; a send error (a reset, a restart) is waited out and flooding goes on.
pub async fn run(
    url: String,
    token: String,
    room: String,
    mut finished: watch::Receiver<bool>,
) -> Result<FlooderReport, BenchError> {
    let fail = |message: String| BenchError::Server(format!("the flooder: {message}"));
    let client = crate::raw::builder(&url, &token)
        .connect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let started = Instant::now();
    let mut emitted = 0u64;
    let _ = client.emit("room:join", json!({ "room": room })).await;
    while !*finished.borrow() {
        let message = json!({
            "room": room,
            "client_id": uuid::Uuid::new_v4().to_string(),
            "body": "flood",
        });
        match client.emit("message:send", message).await {
            Ok(()) => emitted += 1,
            // Disconnected: rust_socketio reconnects by itself; try again shortly.
            Err(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = finished.changed() => {}
                }
            }
        }
        // Let the runtime's other tasks (the measured clients) run between two packets.
        tokio::task::yield_now().await;
    }
    let _ = client.disconnect().await;
    Ok(FlooderReport {
        emitted,
        per_s: emitted as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON),
    })
}

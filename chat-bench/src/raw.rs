//! The baseline: the same load through bare rust_socketio, as an application without the SDK
//! would write it — emit `message:send`, re-join after rust_socketio reconnects by itself,
//! render `message:new` as it comes. No outbox, no resend, no catch-up. Having no acks, a
//! message counts as confirmed when `emit` returned `Ok`: all a bare client can know.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder as SioBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::error::BenchError;
use crate::live::{ClientRecord, Live};
use crate::schedule::Due;
use crate::sdk::room_name;
use crate::stamp::Stamp;

enum Incoming {
    Message(String),
    Opened,
}

/// A connected bare client that joined its room.
pub struct RawClient {
    index: u32,
    room: u32,
    room_id: chat_protocol::RoomId,
    client: SioClient,
    incoming: mpsc::UnboundedReceiver<Incoming>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("index", &self.index)
            .finish()
    }
}

/// A bare rust_socketio client of `url` over WebSocket, authenticated with `token`, that
/// reconnects by itself as quickly as rust_socketio allows.
pub fn builder(url: &str, token: &str) -> SioBuilder {
    SioBuilder::new(url)
        .transport_type(TransportType::Websocket)
        .reconnect(true)
        .reconnect_on_disconnect(true)
        .reconnect_delay(20, 500)
        .auth(json!({ "token": token }))
}

/// Connects bare client `index` and joins its room.
pub async fn connect(
    index: u32,
    room: u32,
    prefix: &str,
    url: &str,
    token: String,
) -> Result<RawClient, BenchError> {
    let fail = |message: String| BenchError::Client { index, message };
    let (tx, mut incoming) = mpsc::unbounded_channel();
    let room_id_for_join = room_name(prefix, room);
    let on_message = tx.clone();
    let room_id = room_name(prefix, room);
    let client = builder(url, &token)
        .on("message:new", move |payload: Payload, _| {
            if let Payload::Text(values) = payload {
                if let Some(body) = values.first().and_then(|v| v["body"].as_str()) {
                    let _ = on_message.send(Incoming::Message(body.to_owned()));
                }
            }
            async {}.boxed()
        })
        .on("open", move |_, client: SioClient| {
            // Re-join after every (re)connect so live events keep coming, as a bare app would.
            let room = room_id.clone();
            let tx = tx.clone();
            async move {
                let _ = tx.send(Incoming::Opened);
                tokio::spawn(async move {
                    let _ = client.emit("room:join", json!({ "room": room })).await;
                });
            }
            .boxed()
        })
        .connect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    // rust_socketio's `connect` returns before the Socket.IO handshake is done; requests sent
    // before it are lost. Wait for it, then for the first join to be answered.
    let opened = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match incoming.recv().await {
                Some(Incoming::Opened) => return true,
                Some(Incoming::Message(_)) => continue,
                None => return false,
            }
        }
    })
    .await;
    if !matches!(opened, Ok(true)) {
        return Err(fail("the connection did not open".into()));
    }
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    let joined_tx = std::sync::Mutex::new(Some(joined_tx));
    client
        .emit_with_ack(
            "room:join",
            json!({ "room": room_id_for_join }),
            Duration::from_secs(5),
            move |_, _| {
                if let Some(tx) = joined_tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(());
                }
                async {}.boxed()
            },
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::time::timeout(Duration::from_secs(5), joined_rx)
        .await
        .map_err(|_| fail("room:join was not answered".into()))?
        .map_err(|_| fail("room:join was not answered".into()))?;
    Ok(RawClient {
        index,
        room,
        room_id: room_id_for_join,
        client,
        incoming,
    })
}

impl RawClient {
    /// Sends on `schedule` and records deliveries until `finish` turns true.
    pub async fn run(
        mut self,
        live: Arc<Live>,
        room_of: Arc<Vec<u32>>,
        mut due: mpsc::UnboundedReceiver<Due>,
        mut finish: watch::Receiver<bool>,
    ) -> ClientRecord {
        let mut record = ClientRecord::new(self.index, self.room);
        let room = self.room_id.clone();
        let mut opened = 1u64; // the first open was awaited in `connect`
        loop {
            tokio::select! {
                biased;
                _ = crate::schedule::finished(&mut finish) => break,
                incoming = self.incoming.recv() => match incoming {
                    Some(Incoming::Message(body)) => {
                        if let Some(stamp) = Stamp::decode(&body) {
                            let sender_room = room_of.get(stamp.sender as usize).copied();
                            record.delivered(&live, stamp, sender_room);
                        }
                    }
                    Some(Incoming::Opened) => {
                        opened += 1;
                        if opened > 1 {
                            live.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => break,
                },
                Some((number, at)) = due.recv() => {
                    let stamp = record.stamp(&live, at, number);
                    let request = json!({
                        "room": room,
                        "client_id": uuid::Uuid::new_v4().to_string(),
                        "body": stamp.encode(),
                    });
                    match self.client.emit("message:send", request).await {
                        Ok(()) => record.emitted(&live, number),
                        Err(_) => record.failed(&live, number),
                    }
                }
            }
        }
        let _ = self.client.disconnect().await;
        record
    }
}

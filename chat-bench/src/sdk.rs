//! Load through the chat SDK: each client sends on its schedule with `Client::send`
//! (which returns once the message is in the outbox on disk, without blocking a runtime
//! thread for the fsync) and records what its application receives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{ClientId, RoomId};
use chat_sdk::transport::{SocketIoTransport, WebSocketTransport};
use chat_sdk::{ChatEvent, Client, ConnectionState, Events, MessageState, RetryPolicy};

use crate::opts::SdkTransport;
use tokio::sync::{mpsc, watch};

use crate::error::BenchError;
use crate::live::{ClientRecord, Live};
use crate::schedule::Due;
use crate::stamp::Stamp;

/// A connected SDK client that joined its room.
#[derive(Debug)]
pub struct SdkClient {
    index: u32,
    room: u32,
    room_id: RoomId,
    client: Client,
    events: Events,
}

/// Connects client `index` and joins its room.
pub async fn connect(
    index: u32,
    room: u32,
    prefix: &str,
    urls: &[String],
    token: String,
    store_dir: Option<&Path>,
    transport: SdkTransport,
) -> Result<SdkClient, BenchError> {
    let fail = |message: String| BenchError::Client { index, message };
    let (first, others) = urls
        .split_first()
        .ok_or_else(|| fail("no server URL".into()))?;
    let mut builder = builder(first, token);
    for url in others {
        builder = builder.fallback_url(url);
    }
    let mut builder = builder
        .outbox_capacity(1_000_000)
        .transport(match transport {
            SdkTransport::Websocket => Arc::new(WebSocketTransport),
            SdkTransport::Socketio => Arc::new(SocketIoTransport),
        });
    builder = match store_dir {
        Some(dir) => builder.store_path(dir.join(format!("client-{index}.db"))),
        None => builder.in_memory(),
    };
    let (client, events) = builder.connect().await.map_err(|e| fail(e.to_string()))?;
    let room_id = room_name(prefix, room);
    client
        .join(&room_id)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(SdkClient {
        index,
        room,
        room_id,
        client,
        events,
    })
}

/// A client builder with the bench's timings.
pub fn builder(url: &str, token: String) -> chat_sdk::ClientBuilder {
    Client::builder(url, token)
        // Reconnect fast (waits of 20 ms doubling to 250 ms, plus jitter): the faults here
        // last half a second, and a longer cap would measure mostly the wait after the
        // server is back. The SDK's default caps at 2 s, kinder to a big server restarting.
        .retry_policy(RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(250),
            ..RetryPolicy::default()
        })
        .ack_timeout(Duration::from_secs(2))
        // A link silent for 250 ms is probed; a probe unanswered for 500 ms ends it. The
        // probe touches no disk on the server, so it may be far shorter than the ack timeout.
        .health_interval(Duration::from_millis(250))
        .health_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
}

/// Most events taken from the stream at once: a client that fell behind catches up in
/// batches, writing its room position once per batch.
const EVENT_BATCH: usize = 256;

/// The name of bench room `room` of the run tagged `prefix`.
pub fn room_name(prefix: &str, room: u32) -> RoomId {
    RoomId::new(format!("bench-{prefix}-{room}")).expect("a valid room id")
}

impl SdkClient {
    /// Sends on `schedule` and records deliveries until `finish` turns true.
    pub async fn run(
        mut self,
        live: Arc<Live>,
        room_of: Arc<Vec<u32>>,
        mut due: mpsc::UnboundedReceiver<Due>,
        mut finish: watch::Receiver<bool>,
    ) -> ClientRecord {
        let mut record = ClientRecord::new(self.index, self.room);
        let mut in_flight: HashMap<ClientId, (u64, u64)> = HashMap::new();
        let mut down_since: Option<u64> = None;
        let mut sample = tokio::time::interval(Duration::from_millis(100));
        let mut batch = Vec::with_capacity(EVENT_BATCH);
        loop {
            tokio::select! {
                biased;
                _ = crate::schedule::finished(&mut finish) => break,
                taken = self.events.recv_many(&mut batch, EVENT_BATCH) => {
                    if taken == 0 {
                        break;
                    }
                    for event in batch.drain(..) {
                        self.handle(event, &live, &room_of, &mut record, &mut in_flight, &mut down_since);
                    }
                }
                Some((number, at)) = due.recv() => {
                    let stamp = record.stamp(&live, at, number);
                    match self.client.send(&self.room_id, stamp.encode()).await {
                        Ok(message) => {
                            in_flight.insert(message.client_id(), (number, stamp.actual_us));
                        }
                        Err(e) => {
                            tracing::warn!(client = self.index, error = %e, "send refused");
                            record.failed(&live, number);
                        }
                    }
                }
                _ = sample.tick() => {
                    if let Ok(depth) = self.client.outbox().depth() {
                        record.peak_outbox = record.peak_outbox.max(depth as u64);
                    }
                }
            }
        }
        self.client.close().await;
        record
    }

    fn handle(
        &self,
        event: ChatEvent,
        live: &Live,
        room_of: &[u32],
        record: &mut ClientRecord,
        in_flight: &mut HashMap<ClientId, (u64, u64)>,
        down_since: &mut Option<u64>,
    ) {
        match event {
            ChatEvent::Message(message) => {
                if let Some(stamp) = Stamp::decode(message.body.as_str()) {
                    let sender_room = room_of.get(stamp.sender as usize).copied();
                    record.delivered(live, stamp, sender_room);
                }
            }
            ChatEvent::Status {
                client_id, state, ..
            } => match state {
                MessageState::Sent { .. }
                | MessageState::Delivered { .. }
                | MessageState::Read { .. } => {
                    if let Some((number, sent_us)) = in_flight.remove(&client_id) {
                        record.acked(live, number, sent_us);
                    }
                }
                MessageState::Failed { .. } => {
                    if let Some((number, _)) = in_flight.remove(&client_id) {
                        record.failed(live, number);
                    }
                }
                _ => {}
            },
            ChatEvent::Connection(state) => match state {
                ConnectionState::Connected => {
                    if let Some(since) = down_since.take() {
                        let _ = record
                            .reconnect
                            .record(live.now_us().saturating_sub(since).max(1));
                        live.reconnects
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                ConnectionState::Reconnecting { .. } => {
                    down_since.get_or_insert_with(|| live.now_us());
                }
                _ => {}
            },
            _ => {}
        }
    }
}

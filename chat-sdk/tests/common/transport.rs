//! A transport wrapper for tests: counts every message put on the wire (per `client_id`, in
//! a `message:send` or a `message:send_batch`) and can swallow acks after the server
//! answered them, as a link that dies between the server's commit and the ack's arrival
//! would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_sdk::transport::{ConnectRequest, Inbound};
use chat_sdk::transport::{Connection, Transport, WebSocketTransport};
use chat_sdk::TransportError;
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Debug, Default)]
pub struct Wire {
    /// Messages put on the wire (alone or in a batch), by client_id, in wire order.
    pub sends: Mutex<Vec<String>>,
    /// How many upcoming acks of `message:send` or `message:send_batch` to swallow.
    pub swallow_acks: AtomicUsize,
    /// Connections made.
    pub connections: AtomicUsize,
    /// Every request put on the wire, by event name.
    pub requests: Mutex<HashMap<String, usize>>,
}

impl Wire {
    /// How many `event` requests went on the wire.
    pub fn requests_of(&self, event: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .get(event)
            .copied()
            .unwrap_or(0)
    }

    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.sends.lock().expect("lock").iter() {
            *counts.entry(id.clone()).or_insert(0) += 1;
        }
        counts
    }
}

#[derive(Debug, Default)]
pub struct CountingTransport {
    pub wire: Arc<Wire>,
}

#[derive(Debug)]
struct CountingConnection {
    inner: Arc<dyn Connection>,
    wire: Arc<Wire>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError> {
        let (inner, inbound) = WebSocketTransport.connect(request).await?;
        self.wire.connections.fetch_add(1, Ordering::SeqCst);
        let conn: Arc<dyn Connection> = Arc::new(CountingConnection {
            inner,
            wire: self.wire.clone(),
        });
        Ok((conn, inbound))
    }
}

#[async_trait]
impl Connection for CountingConnection {
    async fn request(&self, event: &str, payload: Value) -> Result<Value, TransportError> {
        *self
            .wire
            .requests
            .lock()
            .expect("lock")
            .entry(event.to_owned())
            .or_insert(0) += 1;
        let carried: Vec<String> = match event {
            "message:send" => vec![payload["client_id"].as_str().unwrap_or_default().to_owned()],
            "message:send_batch" => payload["messages"]
                .as_array()
                .map(|messages| {
                    messages
                        .iter()
                        .map(|m| m["client_id"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if !carried.is_empty() {
            self.wire.sends.lock().expect("lock").extend(carried);
            let answer = self.inner.request(event, payload).await?;
            let swallow = self
                .wire
                .swallow_acks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if swallow {
                self.inner.close("ack swallowed by the test");
                return Err(TransportError::AckTimeout(Duration::ZERO));
            }
            return Ok(answer);
        }
        self.inner.request(event, payload).await
    }

    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError> {
        self.inner.emit(event, payload).await
    }

    async fn closed(&self) -> String {
        self.inner.closed().await
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&self, reason: &str) {
        self.inner.close(reason)
    }
}

/// `user` connected to `server` through a [`CountingTransport`], a member of `room`.
pub async fn connect_counted(
    server: &chat_testkit::TestServer,
    user: &str,
    room: &chat_sdk::chat_protocol::RoomId,
) -> (chat_sdk::Client, chat_sdk::Events, Arc<Wire>) {
    let transport = Arc::new(CountingTransport::default());
    let wire = transport.wire.clone();
    let (client, events) = super::builder(&server.url(), server.token(user))
        .transport(transport)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    client.join(room).await.expect("join");
    (client, events, wire)
}

//! Typing throttle and automatic stop, on paused time with a recording transport: one
//! `typing:start` per 3 s however fast the keystrokes, `typing:stop` after 4 s of quiet, at
//! once on `stop_typing` or on sending a message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_sdk::chat_protocol::RoomId;
use chat_sdk::transport::{ConnectRequest, Inbound};
use chat_sdk::transport::{Connection, Transport};
use chat_sdk::{Client, TransportError};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<(Duration, String)>>>;

#[derive(Debug)]
struct Recorder {
    log: Log,
    epoch: Instant,
}

#[derive(Debug)]
struct RecordingConnection {
    log: Log,
    epoch: Instant,
    closed: watch::Sender<Option<String>>,
    _inbound: mpsc::Sender<Inbound>,
}

#[async_trait]
impl Transport for Recorder {
    async fn connect(
        &self,
        _request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError> {
        let (tx, rx) = mpsc::channel(16);
        let conn = RecordingConnection {
            log: self.log.clone(),
            epoch: self.epoch,
            closed: watch::channel(None).0,
            _inbound: tx,
        };
        Ok((Arc::new(conn), rx))
    }
}

#[async_trait]
impl Connection for RecordingConnection {
    async fn request(&self, event: &str, _payload: Value) -> Result<Value, TransportError> {
        Ok(match event {
            "message:send" => json!({"ok": true, "id": "m", "seq": 1, "ts": 0, "duplicate": false}),
            _ => json!({"ok": true, "presence": []}),
        })
    }

    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError> {
        let at = Instant::now() - self.epoch;
        let room = payload["room"].as_str().unwrap_or_default();
        self.log
            .lock()
            .expect("lock")
            .push((at, format!("{event} {room}")));
        Ok(())
    }

    async fn closed(&self) -> String {
        let mut rx = self.closed.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .map(|r| r.clone().unwrap_or_default());
        reason.unwrap_or_default()
    }

    fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    fn close(&self, reason: &str) {
        self.closed.send_replace(Some(reason.to_owned()));
    }
}

async fn client() -> (Client, Log) {
    let log: Log = Arc::default();
    let recorder = Recorder {
        log: log.clone(),
        epoch: Instant::now(),
    };
    let (client, events) = Client::builder("http://mock", "token")
        .in_memory()
        .health_interval(Duration::from_secs(3600))
        .transport(Arc::new(recorder))
        .connect()
        .await
        .expect("mock connects");
    drop(events);
    (client, log)
}

fn entries(log: &Log) -> Vec<(u64, String)> {
    log.lock()
        .expect("lock")
        .iter()
        .map(|(at, what)| (at.as_millis() as u64, what.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn keystrokes_are_throttled_and_stop_follows_quiet() {
    let (client, log) = client().await;
    let room = RoomId::new("r").expect("room");
    // A keystroke every 500 ms for 5 s.
    for _ in 0..10 {
        client.typing(&room).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then quiet.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        entries(&log),
        vec![
            (0, "typing:start r".to_owned()),
            (3000, "typing:start r".to_owned()),
            // Last keystroke at 4500 ms, stop 4 s later.
            (8500, "typing:stop r".to_owned()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn stop_typing_and_sending_stop_at_once_and_only_once() {
    let (client, log) = client().await;
    let room = RoomId::new("r").expect("room");
    client.typing(&room).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.stop_typing(&room).await;
    client.stop_typing(&room).await;
    tokio::time::sleep(Duration::from_secs(10)).await;

    client.typing(&room).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    client
        .send(&room, "done typing")
        .await
        .expect("queued")
        .client_id();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        entries(&log),
        vec![
            (0, "typing:start r".to_owned()),
            (1000, "typing:stop r".to_owned()),
            (11000, "typing:start r".to_owned()),
            (12000, "typing:stop r".to_owned()),
        ]
    );
}

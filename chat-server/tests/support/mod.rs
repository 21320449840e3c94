//! Test support: a minimal raw Socket.IO v5 / Engine.IO v4 client over WebSocket.
//!
//! The server's tests need control no full client gives: pipelining requests without waiting,
//! sending malformed or oversized packets, and seeing every event in arrival order. This
//! client speaks just enough of the protocol for that, over `ws://` or, trusting a given
//! certificate, `wss://`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_testkit::TestServer;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::Connector;

/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One raw connection.
pub struct RawClient {
    outgoing: mpsc::UnboundedSender<WsMessage>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    pending: Pending,
    next_ack: AtomicU64,
    closed: Option<oneshot::Receiver<()>>,
}

/// The connection was refused at the Socket.IO handshake, with this `message`.
#[derive(Debug)]
pub struct Refused(pub String);

impl RawClient {
    /// Connects to `addr` with `auth` as the Socket.IO auth object.
    pub async fn connect(addr: SocketAddr, auth: Value) -> Result<Self, Refused> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        Self::connect_url(url, None, auth).await
    }

    /// Connects to `addr` over TLS (`wss://`), trusting only the certificates in `ca_pem`.
    pub async fn connect_tls(addr: SocketAddr, ca_pem: &str, auth: Value) -> Result<Self, Refused> {
        let url = format!("wss://{addr}/socket.io/?EIO=4&transport=websocket");
        let connector = Connector::Rustls(client_config(ca_pem));
        Self::connect_url(url, Some(connector), auth).await
    }

    async fn connect_url(
        url: String,
        connector: Option<Connector>,
        auth: Value,
    ) -> Result<Self, Refused> {
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
            .await
            .map_err(|e| Refused(format!("websocket: {e}")))?;
        let (mut sink, mut stream) = ws.split();
        let open = next_text(&mut stream)
            .await
            .ok_or_else(|| Refused("no open packet".into()))?;
        assert!(
            open.starts_with('0'),
            "expected an Engine.IO open packet, got {open}"
        );
        sink.send(WsMessage::text(format!("40{auth}")))
            .await
            .map_err(|e| Refused(e.to_string()))?;
        let connected = loop {
            let text = next_text(&mut stream)
                .await
                .ok_or_else(|| Refused("closed".into()))?;
            if text == "2" {
                sink.send(WsMessage::text("3"))
                    .await
                    .map_err(|e| Refused(e.to_string()))?;
            } else {
                break text;
            }
        };
        if let Some(error) = connected.strip_prefix("44") {
            let error: Value = serde_json::from_str(error).unwrap_or(Value::Null);
            return Err(Refused(
                error["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        assert!(
            connected.starts_with("40"),
            "expected CONNECT, got {connected}"
        );

        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<WsMessage>();
        tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                let closing = matches!(message, WsMessage::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (events_tx, events) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let (closed_tx, closed) = oneshot::channel();
        let reader_pending = pending.clone();
        let pong = outgoing.clone();
        tokio::spawn(async move {
            while let Some(text) = next_text(&mut stream).await {
                if text == "2" {
                    let _ = pong.send(WsMessage::text("3"));
                } else if let Some(rest) = text.strip_prefix("42") {
                    if let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(rest) {
                        if items.len() == 2 {
                            let data = items.pop().unwrap();
                            let name = items.pop().unwrap().as_str().unwrap_or_default().to_owned();
                            let _ = events_tx.send((name, data));
                        }
                    }
                } else if let Some(rest) = text.strip_prefix("43") {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let id: u64 = digits.parse().unwrap_or(u64::MAX);
                    let args: Value =
                        serde_json::from_str(&rest[digits.len()..]).unwrap_or(Value::Null);
                    let arg = args.get(0).cloned().unwrap_or(Value::Null);
                    if let Some(reply) = reader_pending.lock().unwrap().remove(&id) {
                        let _ = reply.send(arg);
                    }
                } else if text.starts_with("41") || text.starts_with('1') {
                    break;
                }
            }
            let _ = closed_tx.send(());
        });
        Ok(Self {
            outgoing,
            events,
            pending,
            next_ack: AtomicU64::new(0),
            closed: Some(closed),
        })
    }

    /// Connects as `user` with a valid token; over TLS, trusting its certificate, when the
    /// server serves TLS.
    pub async fn as_user(server: &TestServer, user: &str) -> Self {
        let auth = json!({ "token": server.token(user) });
        let connected = match server.ca_pem() {
            Some(ca_pem) => Self::connect_tls(server.addr(), ca_pem, auth).await,
            None => Self::connect(server.addr(), auth).await,
        };
        connected.unwrap_or_else(|e| panic!("{user} could not connect: {e:?}"))
    }

    /// Sends a request asking for an ack; the answer arrives on the returned receiver.
    pub fn start_request(&self, event: &str, data: Value) -> oneshot::Receiver<Value> {
        let id = self.next_ack.fetch_add(1, Ordering::SeqCst);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, reply);
        self.send_text(format!("42{id}{}", json!([event, data])));
        answer
    }

    /// Sends a packet whose argument list is `args` verbatim (event name first), asking for
    /// an ack, and waits for it.
    pub async fn request_verbatim(&self, args: Value) -> Value {
        let id = self.next_ack.fetch_add(1, Ordering::SeqCst);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, reply);
        self.send_text(format!("42{id}{args}"));
        tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap_or_else(|_| panic!("no ack for {args} within {PATIENCE:?}"))
            .unwrap_or_else(|_| panic!("connection closed before the ack of {args}"))
    }

    /// Sends a request and waits for its ack.
    pub async fn request(&self, event: &str, data: Value) -> Value {
        let answer = self.start_request(event, data);
        tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event} within {PATIENCE:?}"))
            .unwrap_or_else(|_| panic!("connection closed before the ack of {event}"))
    }

    /// Sends an event without asking for an ack.
    pub fn emit(&self, event: &str, data: Value) {
        self.send_text(format!("42{}", json!([event, data])));
    }

    /// Sends a raw text frame.
    pub fn send_text(&self, text: String) {
        let _ = self.outgoing.send(WsMessage::text(text));
    }

    /// The next server event named `name`; other events are skipped.
    pub async fn next_event(&mut self, name: &str) -> Value {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Some((event, data)) if event == name => return data,
                    Some(_) => continue,
                    None => panic!("connection closed while waiting for {name}"),
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {name} event within {PATIENCE:?}"))
    }

    /// The next server event of any name.
    pub async fn next_any(&mut self) -> (String, Value) {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {PATIENCE:?}"))
            .expect("connection closed while waiting for an event")
    }

    /// Waits until the server closes the connection.
    pub async fn closed(&mut self) {
        if let Some(closed) = self.closed.take() {
            tokio::time::timeout(PATIENCE, closed)
                .await
                .expect("the connection stayed open")
                .ok();
        }
    }

    /// Joins `room` and returns the ack.
    pub async fn join(&self, room: &str) -> Value {
        let ack = self.request("room:join", json!({ "room": room })).await;
        assert_eq!(ack["ok"], true, "join failed: {ack}");
        ack
    }

    /// Sends a message with a fresh client id and returns the ack.
    pub async fn say(&self, room: &str, body: &str) -> Value {
        self.request("message:send", send_args(room, body)).await
    }
}

impl Drop for RawClient {
    /// Closes the WebSocket, as a client going away does.
    fn drop(&mut self) {
        let _ = self.outgoing.send(WsMessage::Close(None));
    }
}

/// A TLS client configuration (ring provider) that trusts only the certificates in `ca_pem`.
pub fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Arguments of a `message:send` with a fresh client id.
pub fn send_args(room: &str, body: &str) -> Value {
    json!({ "room": room, "client_id": uuid::Uuid::new_v4().to_string(), "body": body })
}

async fn next_text<S>(stream: &mut S) -> Option<String>
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    while let Some(message) = stream.next().await {
        match message {
            Ok(WsMessage::Text(text)) => return Some(text.to_string()),
            Ok(WsMessage::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
    None
}

/// Starts a test server with the given adjustments.
pub async fn server_with(adjust: impl FnOnce(&mut chat_server::ServerConfig)) -> TestServer {
    TestServer::start_with(adjust).await.expect("server starts")
}

/// Starts a test server with generous limits.
pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// The error code of a failed ack.
pub fn error_code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], false, "expected an error ack, got {ack}");
    ack["error"]["code"].as_str().unwrap_or_default()
}

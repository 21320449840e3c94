//! The [`Transport`] on rust_socketio 0.6, built around its measured defects.
//!
//! - A fresh rust_socketio client per connection, its own reconnection switched off: old
//!   acks die with the old client, and only the SDK's supervisor reconnects.
//! - One `emit_with_ack` in flight per client (a mutex), because concurrent acks corrupt its
//!   ack list (random ids in `0..999`, removal by index, a panicking receive task). The
//!   emit and the wait for its ack run on a task of their own that holds the mutex, so a
//!   caller that gives up (a health probe past its timeout) does not free the turn while
//!   rust_socketio still waits for that ack.
//! - Its ack timeout never fires a callback, so ours is a `tokio::time` timeout, over the
//!   emit as over the wait; when it passes, the connection is closed rather than trusted
//!   again.
//! - Closing disconnects on the runtime the connection was made on, so a connection closed
//!   from a thread outside it is still disconnected.
//! - A refused handshake returns `Ok` from `connect()` and only raises an `Error` event with
//!   `Received an ConnectError frame: {...}`: we wait for the Socket.IO `CONNECT` (or that
//!   error) before reporting success, and parse the code out of it.
//! - Transport loss arrives as an `Error` event, a server-side disconnect as `Close`; both
//!   mark the connection dead.
//! - Callbacks only `try_send` into channels or flip flags; they never await or emit,
//!   because one receive task runs every callback (and acks run under a write lock).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder as SioBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{
    parse_connect_error, ConnectRequest, Connection, DeathSignal, Inbound, LastHeard, Transport,
};
use crate::error::TransportError;

/// The text rust_socketio puts before the data of a Socket.IO `CONNECT_ERROR` packet.
const CONNECT_ERROR_PREFIX: &str = "Received an ConnectError frame: ";

/// How long closing a connection may take before it is abandoned.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The rust_socketio transport (WebSocket only).
///
/// ```
/// use std::sync::Arc;
/// use chat_sdk::transport::SocketIoTransport;
/// use chat_sdk::Client;
///
/// // The default; shown only to name it.
/// let builder = Client::builder("http://127.0.0.1:3000", "token").transport(Arc::new(SocketIoTransport));
/// # drop(builder);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketIoTransport;

type Handshake = watch::Sender<Option<Result<(), TransportError>>>;

/// Text of the first value of a payload, for `Error` events.
fn payload_text(payload: &Payload) -> String {
    match payload {
        Payload::Text(values) => match values.first() {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Payload::Binary(bytes) => format!("<{} binary bytes>", bytes.len()),
        #[allow(deprecated)]
        Payload::String(text) => text.clone(),
    }
}

/// The ack or event argument as one JSON value (ack arrays are peeled by `decode_ack`).
fn payload_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(values) => Value::Array(values),
        Payload::Binary(bytes) => Value::String(format!("<{} binary bytes>", bytes.len())),
        #[allow(deprecated)]
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn settle(handshake: &Handshake, outcome: Result<(), TransportError>) {
    handshake.send_if_modified(|slot| {
        if slot.is_none() {
            *slot = Some(outcome);
            true
        } else {
            false
        }
    });
}

#[async_trait]
impl Transport for SocketIoTransport {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError> {
        let deadline = Instant::now() + request.connect_timeout;
        let death = Arc::new(DeathSignal::new());
        let (handshake, mut handshake_rx) = watch::channel(None);
        let handshake = Arc::new(handshake);
        let (inbound_tx, inbound_rx) = mpsc::channel(request.inbound_capacity.max(1));
        // rust_socketio answers heartbeats itself and shows none of them: only events and
        // acks count as heard.
        let heard = Arc::new(LastHeard::new());

        let on_connect = {
            let handshake = handshake.clone();
            move |_: Payload, _: SioClient| {
                settle(&handshake, Ok(()));
                async {}.boxed()
            }
        };
        let on_error = {
            let handshake = handshake.clone();
            let death = death.clone();
            move |payload: Payload, _: SioClient| {
                let text = payload_text(&payload);
                if let Some(data) = text.strip_prefix(CONNECT_ERROR_PREFIX) {
                    let refused = parse_connect_error(data);
                    settle(&handshake, Err(refused));
                    death.kill("connection refused");
                } else {
                    settle(&handshake, Err(TransportError::Unreachable(text.clone())));
                    death.kill(&format!("transport error: {text}"));
                }
                async {}.boxed()
            }
        };
        let on_close = {
            let handshake = handshake.clone();
            let death = death.clone();
            move |_: Payload, _: SioClient| {
                settle(
                    &handshake,
                    Err(TransportError::Closed(
                        "server closed the connection".into(),
                    )),
                );
                death.kill("server closed the connection");
                async {}.boxed()
            }
        };
        let on_any = {
            let death = death.clone();
            let heard = heard.clone();
            move |event: Event, payload: Payload, _: SioClient| {
                heard.now();
                if let Event::Custom(name) = event {
                    let payload = match payload_value(payload) {
                        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
                        other => other,
                    };
                    match inbound_tx.try_send(Inbound {
                        event: name,
                        payload,
                    }) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            death.kill("inbound event buffer full");
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                async {}.boxed()
            }
        };

        let builder = SioBuilder::new(request.url.clone())
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .reconnect_on_disconnect(false)
            .auth(request.auth.clone())
            .on(Event::Connect, on_connect)
            .on(Event::Error, on_error)
            .on(Event::Close, on_close)
            .on_any(on_any);

        let client = match tokio::time::timeout_at(deadline, builder.connect()).await {
            Err(_) => return Err(TransportError::ConnectTimeout(request.connect_timeout)),
            Ok(Err(err)) => return Err(TransportError::Unreachable(err.to_string())),
            Ok(Ok(client)) => client,
        };
        let connection = Arc::new(SioConnection {
            link: Arc::new(Link {
                client,
                death,
                disconnected: AtomicBool::new(false),
                runtime: tokio::runtime::Handle::current(),
            }),
            in_flight: Arc::new(tokio::sync::Mutex::new(())),
            ack_timeout: request.ack_timeout,
            heard,
        });

        let outcome = tokio::time::timeout_at(deadline, handshake_rx.wait_for(Option::is_some))
            .await
            .map_err(|_| TransportError::ConnectTimeout(request.connect_timeout))
            .and_then(|waited| match waited {
                Ok(slot) => slot
                    .clone()
                    .unwrap_or_else(|| Err(TransportError::Closed("no handshake".into()))),
                Err(_) => Err(TransportError::Closed("handshake channel closed".into())),
            });
        match outcome {
            Ok(()) => Ok((connection, inbound_rx)),
            Err(err) => {
                connection.close("handshake failed");
                Err(err)
            }
        }
    }
}

/// One rust_socketio client, used for one connection only.
struct SioConnection {
    link: Arc<Link>,
    /// Held for the whole of a request, by the task that makes it: one `emit_with_ack` in
    /// flight at a time.
    in_flight: Arc<tokio::sync::Mutex<()>>,
    ack_timeout: Duration,
    /// When the last event or ack arrived.
    heard: Arc<LastHeard>,
}

/// The client and what closing it needs, shared with the request tasks.
struct Link {
    client: SioClient,
    death: Arc<DeathSignal>,
    disconnected: AtomicBool,
    /// The runtime the connection was made on: closing disconnects there.
    runtime: tokio::runtime::Handle,
}

impl Link {
    fn close(&self, reason: &str) {
        self.death.kill(reason);
        if self.disconnected.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.client.clone();
        self.runtime.spawn(async move {
            let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, client.disconnect()).await;
        });
    }

    /// Emits `event` and waits for its ack, holding the turn `_turn` until the ack came or
    /// the connection was given up.
    async fn request(
        self: Arc<Self>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
        event: String,
        payload: Value,
        ack_timeout: Duration,
        heard: Arc<LastHeard>,
    ) -> Result<Value, TransportError> {
        if let Some(reason) = self.death.reason() {
            return Err(TransportError::Closed(reason));
        }
        let (tx, rx) = oneshot::channel::<Payload>();
        let slot = Arc::new(Mutex::new(Some(tx)));
        let callback = move |payload: Payload, _: SioClient| {
            // The callback runs under rust_socketio's ack-list lock: only hand the payload on.
            heard.now();
            if let Ok(mut slot) = slot.lock() {
                if let Some(tx) = slot.take() {
                    let _ = tx.send(payload);
                }
            }
            async {}.boxed()
        };
        let deadline = Instant::now() + ack_timeout;
        let emitted = tokio::time::timeout_at(
            deadline,
            self.client
                .emit_with_ack(event.as_str(), payload, ack_timeout, callback),
        )
        .await;
        match emitted {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let reason = format!("emit failed: {err}");
                self.close(&reason);
                return Err(TransportError::Closed(reason));
            }
            Err(_) => {
                self.close("emit timeout");
                return Err(TransportError::AckTimeout(ack_timeout));
            }
        }
        tokio::select! {
            answer = rx => match answer {
                Ok(payload) => Ok(payload_value(payload)),
                Err(_) => Err(TransportError::Closed("ack callback dropped".into())),
            },
            reason = self.death.wait() => Err(TransportError::Closed(reason)),
            () = tokio::time::sleep_until(deadline) => {
                self.close("ack timeout");
                Err(TransportError::AckTimeout(ack_timeout))
            }
        }
    }
}

impl std::fmt::Debug for SioConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SioConnection")
            .field("closed", &self.link.death.reason())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connection for SioConnection {
    async fn request(&self, event: &str, payload: Value) -> Result<Value, TransportError> {
        let turn = self.in_flight.clone().lock_owned().await;
        // On a task of its own: if this caller stops waiting, the task still holds the turn
        // until rust_socketio's ack came or the connection was given up.
        let task = self.link.runtime.spawn(self.link.clone().request(
            turn,
            event.to_owned(),
            payload,
            self.ack_timeout,
            self.heard.clone(),
        ));
        task.await.unwrap_or_else(|stopped| {
            Err(TransportError::Closed(format!("request task: {stopped}")))
        })
    }

    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError> {
        if let Some(reason) = self.link.death.reason() {
            return Err(TransportError::Closed(reason));
        }
        match tokio::time::timeout(self.ack_timeout, self.link.client.emit(event, payload)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                let reason = format!("emit failed: {err}");
                self.close(&reason);
                Err(TransportError::Closed(reason))
            }
            Err(_) => {
                self.close("emit timeout");
                Err(TransportError::AckTimeout(self.ack_timeout))
            }
        }
    }

    async fn closed(&self) -> String {
        self.link.death.wait().await
    }

    fn is_closed(&self) -> bool {
        self.link.death.reason().is_some()
    }

    fn last_heard(&self) -> Option<std::time::Instant> {
        Some(self.heard.at())
    }

    fn close(&self, reason: &str) {
        self.link.close(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ErrorCode;

    #[test]
    fn connect_error_codes_are_read_from_message_or_data() {
        assert_eq!(
            parse_connect_error(r#"{"message":"unauthorized"}"#),
            TransportError::Refused {
                code: ErrorCode::Unauthorized,
                message: "unauthorized".into()
            }
        );
        assert_eq!(
            parse_connect_error(
                r#"{"message":"nope","data":{"code":"too_many_connections","message":"16 max"}}"#
            ),
            TransportError::Refused {
                code: ErrorCode::TooManyConnections,
                message: "16 max".into()
            }
        );
        assert!(matches!(
            parse_connect_error("garbage"),
            TransportError::Refused {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn no_protocol_event_name_is_one_rust_socketio_reserves() {
        use chat_protocol::events::names as server;
        use chat_protocol::requests::names as client;
        for name in [
            server::MESSAGE_NEW,
            server::RECEIPT_UPDATE,
            server::TYPING_UPDATE,
            server::PRESENCE_UPDATE,
            server::ROOM_MEMBER,
            client::ROOM_JOIN,
            client::MESSAGE_SEND,
            client::PRESENCE_GET,
        ] {
            assert!(
                matches!(Event::from(name), Event::Custom(_)),
                "{name} would be swallowed as a built-in event"
            );
        }
    }

    #[test]
    fn ack_payloads_keep_their_values() {
        let value = payload_value(Payload::Text(vec![serde_json::json!([{"ok": true}])]));
        let peeled: chat_protocol::results::LeaveResult =
            chat_protocol::decode_ack(value).expect("peels [[...]]");
        assert_eq!(peeled, chat_protocol::results::LeaveResult {});
    }
}

//! A lean [`Transport`]: Socket.IO 5 over Engine.IO 4, WebSocket only, on tokio-tungstenite.
//!
//! It exists for speed, and speaks TLS (`https://`, `wss://`) on rustls. Requests are pipelined: each gets its own ack id, so several can be
//! in flight on one connection, and the server (which answers one socket's requests in the
//! order they arrive) keeps them in order. Frames queued together go out in one write. It
//! speaks only what this protocol needs: the default namespace, JSON (no binary
//! attachments), server pings answered at once, and a heartbeat deadline of
//! `pingInterval + pingTimeout` after which a silent link counts as dead.
//!
//! Like every transport here it never reconnects: a broken connection reports
//! [`Connection::closed`] and the client's supervisor makes a new one.
//!
//! The server is input like any other. Frames are read by the pure parser in `frame.rs`;
//! a frame over [`MAX_MESSAGE_BYTES`] is refused from its header, before it is read; a
//! garbage frame is ignored; an unreadable one (a text frame that is not UTF-8, a broken
//! WebSocket frame) ends the connection with a typed [`TransportError`]; and pongs are
//! coalesced, so a server that pings without reading cannot grow the outgoing queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::frame::{heartbeat_from_open, parse_server_frame, ServerFrame};
use super::{
    tls, ConnectRequest, Connection, DeathSignal, Inbound, LastHeard, Transport, MAX_MESSAGE_BYTES,
};
use crate::error::TransportError;
use chat_protocol::limits::MAX_PACKET_BYTES;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long closing may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Bytes asked of the socket per read; larger frames take several reads.
const READ_BUFFER_SIZE: usize = 8 * 1024;

/// The largest server event frame taken: every event of the protocol (`message:new` with a
/// body of 4,000 four-byte characters is the largest) fits in the server's own packet limit,
/// so a larger one is garbage, ignored rather than queued for the receive loop.
const MAX_EVENT_FRAME_BYTES: usize = MAX_PACKET_BYTES;

/// The WebSocket settings: a small read buffer, and frames and messages bounded by
/// [`MAX_MESSAGE_BYTES`] (tungstenite checks a frame's length in its header, before it
/// reserves anything, and a fragmented message's length as its fragments arrive).
pub(crate) fn websocket_config() -> WebSocketConfig {
    // tungstenite zero-fills its whole read buffer before every read (128 KiB by default);
    // chat frames are a few hundred bytes, so a small buffer saves that work on each frame.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .max_message_size(Some(MAX_MESSAGE_BYTES))
}

/// A WebSocket error as a typed transport error.
fn ws_error(err: WsError) -> TransportError {
    match err {
        WsError::Capacity(_) => TransportError::FrameTooLarge {
            max_bytes: MAX_MESSAGE_BYTES,
        },
        WsError::Utf8(e) => TransportError::Protocol(format!("a text frame is not UTF-8: {e}")),
        WsError::Protocol(e) => TransportError::Protocol(format!("broken WebSocket frame: {e}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            TransportError::Closed("server closed the connection".into())
        }
        other => TransportError::Unreachable(other.to_string()),
    }
}

/// The pipelining WebSocket transport.
///
/// ```
/// use std::sync::Arc;
/// use chat_sdk::transport::WebSocketTransport;
/// use chat_sdk::Client;
///
/// let builder = Client::builder("http://127.0.0.1:3000", "token")
///     .transport(Arc::new(WebSocketTransport));
/// # drop(builder);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct WebSocketTransport;

/// Where to connect: the WebSocket URL, and the host and port to open a socket to.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket` (or `wss://`).
    url: String,
    /// Whether the socket speaks TLS first.
    tls: bool,
    /// The host as written, without brackets around an IPv6 address.
    host: String,
    port: u16,
}

/// `http://host:port[/path]` → `ws://host:port/socket.io/?EIO=4&transport=websocket`, and
/// `https://` → `wss://`.
fn target(url: &str) -> Result<Target, TransportError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| TransportError::Unreachable(format!("not a URL: {url}")))?;
    let (scheme, tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => ("ws", false, 80),
        "https" | "wss" => ("wss", true, 443),
        other => {
            return Err(TransportError::Unreachable(format!(
                "the WebSocket transport speaks http(s):// and ws(s):// only, not {other}://"
            )))
        }
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split('?').next().unwrap_or("")),
        None => (rest.split('?').next().unwrap_or(rest), ""),
    };
    let (host, port) = split_authority(authority, default_port)
        .ok_or_else(|| TransportError::Unreachable(format!("no host and port in {url}")))?;
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "socket.io" } else { path };
    Ok(Target {
        url: format!("{scheme}://{authority}/{path}/?EIO=4&transport=websocket"),
        tls,
        host,
        port,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → host and port.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Reads frames until a text one arrives that is not a ping, answering pings and skipping
/// binary frames; a closed socket is an error.
async fn next_frame(socket: &mut Socket) -> Result<ServerFrame, TransportError> {
    loop {
        match socket.next().await {
            Some(Ok(Frame::Text(text))) => match parse_server_frame(text.as_str()) {
                ServerFrame::Ping => socket.send(Frame::text("3")).await.map_err(ws_error)?,
                frame => return Ok(frame),
            },
            Some(Ok(Frame::Close(_))) | None => {
                return Err(TransportError::Closed(
                    "server closed the connection".into(),
                ))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ws_error(e)),
        }
    }
}

/// Opens the socket and completes both handshakes; returns it and the heartbeat deadline.
async fn handshake(request: &ConnectRequest) -> Result<(Socket, Duration), TransportError> {
    let target = target(&request.url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| TransportError::Unreachable(format!("{}: {e}", request.url)))?;
    // Small frames (acks, events) must leave at once, not wait on Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let stream = if target.tls {
        MaybeTlsStream::Rustls(tls::connect(&request.tls, &target.host, tcp).await?)
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(target.url, stream, Some(websocket_config()))
            .await
            .map_err(ws_error)?;
    let heartbeat = match next_frame(&mut socket).await? {
        ServerFrame::Open(json) => heartbeat_from_open(&json)?,
        ServerFrame::Close => {
            return Err(TransportError::Closed(
                "server closed the connection".into(),
            ))
        }
        other => {
            return Err(TransportError::Protocol(format!(
                "expected an Engine.IO open packet, got {}",
                frame_kind(&other)
            )))
        }
    };
    socket
        .send(Frame::text(format!("40{}", request.auth)))
        .await
        .map_err(ws_error)?;
    loop {
        match next_frame(&mut socket).await? {
            ServerFrame::Connected => return Ok((socket, heartbeat)),
            ServerFrame::ConnectError(refusal) => return Err(refusal),
            ServerFrame::Close => {
                return Err(TransportError::Closed(
                    "server closed the connection".into(),
                ))
            }
            // Anything else before CONNECT (there should be nothing) is ignored; the
            // connect timeout bounds how long.
            _ => {}
        }
    }
}

/// What kind of frame this is, for an error message (never the frame itself, which may be
/// large).
fn frame_kind(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Open(_) => "an open packet",
        ServerFrame::Ping => "a ping",
        ServerFrame::Close => "a close",
        ServerFrame::Connected => "a Socket.IO CONNECT",
        ServerFrame::ConnectError(_) => "a Socket.IO CONNECT_ERROR",
        ServerFrame::Event(_) => "an event",
        ServerFrame::Ack { .. } => "an ack",
        ServerFrame::Ignored => "a packet of no use here",
        ServerFrame::Malformed(why) => why,
    }
}

#[async_trait]
impl Transport for WebSocketTransport {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError> {
        let (socket, heartbeat) =
            tokio::time::timeout(request.connect_timeout, handshake(&request))
                .await
                .map_err(|_| TransportError::ConnectTimeout(request.connect_timeout))??;
        let (inbound_tx, inbound_rx) = mpsc::channel(request.inbound_capacity.max(1));
        let (outgoing_tx, outgoing_rx) = mpsc::unbounded_channel();
        let connection = Arc::new(WsConnection {
            outgoing: outgoing_tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            death: DeathSignal::new(),
            ack_timeout: request.ack_timeout,
            closing: AtomicBool::new(false),
            pong_queued: AtomicBool::new(false),
            fault: Mutex::new(None),
            heard: LastHeard::new(),
        });
        let (sink, stream) = socket.split();
        tokio::spawn(write_loop(connection.clone(), sink, outgoing_rx));
        tokio::spawn(read_loop(connection.clone(), stream, inbound_tx, heartbeat));
        Ok((connection, inbound_rx))
    }
}

/// One WebSocket connection.
struct WsConnection {
    /// Frames for the writer task, in send order.
    outgoing: mpsc::UnboundedSender<Frame>,
    /// Requests waiting for their ack, by ack id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    next_id: AtomicU64,
    death: DeathSignal,
    ack_timeout: Duration,
    closing: AtomicBool,
    /// A pong waits in `outgoing`: another ping is not answered twice, so a server that
    /// pings without reading cannot grow the queue.
    pong_queued: AtomicBool,
    /// The typed error that ended the connection, when the server's input did (a frame too
    /// large, a broken frame): what the requests still waiting fail with.
    fault: Mutex<Option<TransportError>>,
    /// When the last frame of any kind arrived.
    heard: LastHeard,
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection")
            .field("closed", &self.death.reason())
            .finish_non_exhaustive()
    }
}

impl WsConnection {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Value>>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called by the writer as it takes a frame off the queue: a pong leaving frees the
    /// place for the next one.
    fn note_written(&self, frame: &Frame) {
        if matches!(frame, Frame::Text(text) if text.as_str() == "3") {
            self.pong_queued.store(false, Ordering::Release);
        }
    }

    /// Marks the connection dead because of `fault`, which the waiting requests fail with.
    fn fail(&self, fault: TransportError) {
        let reason = fault.to_string();
        {
            let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() && self.death.reason().is_none() {
                *slot = Some(fault);
            }
        }
        self.kill(&reason);
    }

    /// Why a request cannot get its answer any more: the typed fault, or the death reason.
    fn death_error(&self) -> TransportError {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
        fault.unwrap_or_else(|| {
            TransportError::Closed(self.death.reason().unwrap_or_else(|| "closed".into()))
        })
    }

    /// Queues a pong unless one is queued already.
    fn pong(&self) {
        if !self.pong_queued.swap(true, Ordering::AcqRel) {
            let _ = self.outgoing.send(Frame::text("3"));
        }
    }

    /// Marks the connection dead and fails every request still waiting.
    fn kill(&self, reason: &str) {
        if self.death.kill(reason) {
            // Dropping the senders wakes each waiting request with the death reason.
            self.pending().clear();
        }
    }

    fn send_frame(&self, frame: String) -> Result<(), TransportError> {
        if let Some(reason) = self.death.reason() {
            return Err(TransportError::Closed(reason));
        }
        self.outgoing
            .send(Frame::text(frame))
            .map_err(|_| TransportError::Closed("writer stopped".into()))
    }
}

/// A request's place in the pending map, removed when the request ends: a caller that
/// gives up on a request (a cancelled probe) leaves nothing behind.
struct PendingEntry<'a> {
    conn: &'a WsConnection,
    id: u64,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.conn.pending().remove(&self.id);
    }
}

/// `["event",payload]` as JSON text.
fn event_array(event: &str, payload: Value) -> String {
    Value::Array(vec![Value::String(event.to_owned()), payload]).to_string()
}

#[async_trait]
impl Connection for WsConnection {
    async fn request(&self, event: &str, payload: Value) -> Result<Value, TransportError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        // However this request ends (answered, timed out, or its caller gone), its entry goes.
        let _entry = PendingEntry { conn: self, id };
        self.send_frame(format!("42{id}{}", event_array(event, payload)))?;
        tokio::select! {
            answer = rx => match answer {
                Ok(value) => Ok(value),
                Err(_) => Err(self.death_error()),
            },
            () = tokio::time::sleep(self.ack_timeout) => {
                self.close("ack timeout");
                Err(TransportError::AckTimeout(self.ack_timeout))
            }
        }
    }

    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError> {
        self.send_frame(format!("42{}", event_array(event, payload)))
    }

    async fn closed(&self) -> String {
        self.death.wait().await
    }

    fn is_closed(&self) -> bool {
        self.death.reason().is_some()
    }

    fn last_heard(&self) -> Option<std::time::Instant> {
        Some(self.heard.at())
    }

    fn close(&self, reason: &str) {
        self.kill(reason);
        if !self.closing.swap(true, Ordering::AcqRel) {
            // Wakes the writer, which says goodbye and closes the socket.
            let _ = self.outgoing.send(Frame::text("41"));
        }
    }
}

/// Writes frames in order, coalescing whatever is queued into one flush.
async fn write_loop(
    conn: Arc<WsConnection>,
    mut sink: futures_util::stream::SplitSink<Socket, Frame>,
    mut outgoing: mpsc::UnboundedReceiver<Frame>,
) {
    let result: Result<(), String> = async {
        loop {
            let first = tokio::select! {
                frame = outgoing.recv() => frame,
                _ = conn.death.wait() => None,
            };
            let Some(first) = first else {
                return Ok(());
            };
            conn.note_written(&first);
            sink.feed(first).await.map_err(|e| e.to_string())?;
            while let Ok(frame) = outgoing.try_recv() {
                conn.note_written(&frame);
                sink.feed(frame).await.map_err(|e| e.to_string())?;
            }
            sink.flush().await.map_err(|e| e.to_string())?;
        }
    }
    .await;
    if let Err(err) = result {
        conn.kill(&format!("transport error: {err}"));
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Reads packets until the connection dies: answers pings, resolves acks, forwards events.
async fn read_loop(
    conn: Arc<WsConnection>,
    mut stream: futures_util::stream::SplitStream<Socket>,
    inbound: mpsc::Sender<Inbound>,
    heartbeat: Duration,
) {
    let reason = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(heartbeat, stream.next()) => next,
            reason = conn.death.wait() => break reason,
        };
        let text = match next {
            Err(_) => break "heartbeat timeout: the server went silent".to_owned(),
            Ok(None) | Ok(Some(Ok(Frame::Close(_)))) => {
                break "server closed the connection".to_owned()
            }
            Ok(Some(Err(err))) => {
                let fault = ws_error(err);
                let reason = format!("transport error: {fault}");
                conn.fail(fault);
                break reason;
            }
            Ok(Some(Ok(Frame::Text(text)))) => {
                conn.heard.now();
                text
            }
            Ok(Some(Ok(_))) => {
                // Binary frames (and WebSocket pings, which tungstenite answers) carry
                // nothing for this protocol, but they show the link is alive.
                conn.heard.now();
                continue;
            }
        };
        if let Some(reason) = handle_frame(&conn, text.as_str(), &inbound) {
            break reason;
        }
    };
    conn.kill(&reason);
}

/// Handles one text frame; returns a reason when it ends the connection.
fn handle_frame(
    conn: &WsConnection,
    text: &str,
    inbound: &mpsc::Sender<Inbound>,
) -> Option<String> {
    match parse_server_frame(text) {
        // Ping: pong at once (the writer keeps it in order with everything else).
        ServerFrame::Ping => conn.pong(),
        ServerFrame::Close => return Some("server closed the connection".into()),
        ServerFrame::ConnectError(refusal) => {
            return Some(format!("server refused the connection: {refusal}"))
        }
        ServerFrame::Event(_) if text.len() > MAX_EVENT_FRAME_BYTES => {
            tracing::warn!(
                bytes = text.len(),
                max = MAX_EVENT_FRAME_BYTES,
                "ignoring a server event larger than any the protocol has"
            );
        }
        ServerFrame::Event(event) => match inbound.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Some("inbound event buffer full".into())
            }
        },
        ServerFrame::Ack { id, value } => {
            // An ack for no request waiting (never sent, timed out, answered) is ignored.
            if let Some(waiter) = conn.pending().remove(&id) {
                let _ = waiter.send(value);
            }
        }
        ServerFrame::Malformed(why) => {
            let start: String = text.chars().take(80).collect();
            tracing::warn!(why, start, "ignoring a malformed frame from the server");
        }
        ServerFrame::Open(_) | ServerFrame::Connected | ServerFrame::Ignored => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_engine_io_websocket_urls() {
        let plain = target("http://127.0.0.1:3000").expect("url");
        assert_eq!(
            plain.url,
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            (plain.tls, plain.host.as_str(), plain.port),
            (false, "127.0.0.1", 3000)
        );
        assert_eq!(
            target("http://h:1/chat/").expect("url").url,
            "ws://h:1/chat/?EIO=4&transport=websocket"
        );
        let secure = target("https://chat.example").expect("url");
        assert_eq!(
            secure.url,
            "wss://chat.example/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            (secure.tls, secure.host.as_str(), secure.port),
            (true, "chat.example", 443)
        );
        let v6 = target("wss://[::1]:8443/").expect("url");
        assert_eq!((v6.tls, v6.host.as_str(), v6.port), (true, "::1", 8443));
        assert!(target("ftp://h").is_err());
        assert!(target("http://h:notaport").is_err());
        assert!(target("nonsense").is_err());
    }

    #[tokio::test]
    async fn a_request_given_up_by_its_caller_leaves_no_entry_behind() {
        let (outgoing, _frames) = mpsc::unbounded_channel();
        let conn = WsConnection {
            outgoing,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            death: DeathSignal::new(),
            ack_timeout: Duration::from_secs(3600),
            closing: AtomicBool::new(false),
            pong_queued: AtomicBool::new(false),
            fault: Mutex::new(None),
            heard: LastHeard::new(),
        };
        for _ in 0..3 {
            // The caller stops waiting (a cancelled probe, a timeout of its own).
            let gave_up =
                tokio::time::timeout(Duration::from_millis(1), conn.request("e", Value::Null))
                    .await;
            assert!(gave_up.is_err(), "nothing answers in this test");
        }
        assert!(
            conn.pending().is_empty(),
            "{} entries left",
            conn.pending().len()
        );
    }
}

//! A hostile server against the SDK's default transport (`WebSocketTransport`).
//!
//! The server is input too: a broken or malicious one may send anything, hold a handshake
//! open for ever, or never answer. These tests put a fake server on 127.0.0.1:0 that speaks
//! raw WebSocket frames over TCP (so it can send what no well-behaved library would: invalid
//! UTF-8, a 100 MB frame header, a 100 MB fragmented message) and check that the client
//! answers every fault with a typed error, bounded memory and reconnection with backoff,
//! never a panic (a panic hook counts panics on the test's thread, where the SDK's tasks
//! run). Nothing here sleeps to wait: every wait is on an event (a frame, an accepted
//! connection, a state change) under one generous guard, [`PATIENCE`].

use std::cell::Cell;
use std::sync::Once;
use std::time::{Duration, Instant};

use chat_sdk::chat_protocol::{RoomId, UserId};
use chat_sdk::transport::MAX_MESSAGE_BYTES;
use chat_sdk::{
    Client, ClientBuilder, ConnectError, ConnectionState, MessageState, Milestone, RequestError,
    RetryPolicy, TransportError,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The guard on every wait: long enough never to fire on a healthy run.
const PATIENCE: Duration = Duration::from_secs(20);
/// The connect timeout of the clients here: short, so the handshake tests run fast.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// The ack timeout of the clients here.
const ACK_TIMEOUT: Duration = Duration::from_millis(400);
/// Backoff without jitter, so the spacing of reconnect attempts is known: 100, 200, 400,
/// 400, ... ms.
const RETRY: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(400),
    factor: 2.0,
    jitter: false,
};

thread_local! {
    static PANICS: Cell<u32> = const { Cell::new(0) };
}

/// Counts panics per thread (the tests run on a current-thread runtime, so the SDK's
/// transport and supervisor tasks panic, if they do, on the test's thread).
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            default(info);
        }));
    });
}

fn assert_no_panic() {
    assert_eq!(
        PANICS.with(Cell::get),
        0,
        "something panicked on network input"
    );
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The outcome of a spawned task, under the guard.
async fn joined<T>(what: &str, task: tokio::task::JoinHandle<T>) -> T {
    within(what, task).await.expect("the task does not panic")
}

fn builder(url: &str) -> ClientBuilder {
    Client::builder(url, "any-token")
        .in_memory()
        .retry_policy(RETRY)
        .connect_timeout(CONNECT_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
}

fn bob() -> UserId {
    UserId::new("bob").expect("valid user")
}

/// A fake server with a client connected to it through both handshakes.
async fn session() -> (Listener, Peer, Client, chat_sdk::Events) {
    count_panics();
    let mut server = listen().await;
    let connecting = tokio::spawn(builder(&server.url).connect());
    let peer = server.connected().await;
    let (client, events) = joined("connect", connecting).await.expect("connects");
    (server, peer, client, events)
}

/// A `presence:get` in flight, its outcome awaited later.
fn ask_presence(
    client: &Client,
) -> tokio::task::JoinHandle<Result<Vec<chat_sdk::chat_protocol::Presence>, RequestError>> {
    let client = client.clone();
    tokio::spawn(async move { client.presence(&[bob()]).await })
}

// ---- the fake server ---------------------------------------------------------------------

/// A listener whose accepted sockets arrive, with the time they were accepted, on a channel.
struct Listener {
    url: String,
    accepted: mpsc::UnboundedReceiver<(TcpStream, Instant)>,
}

async fn listen() -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (tx, accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            if tx.send((socket, Instant::now())).is_err() {
                return;
            }
        }
    });
    Listener { url, accepted }
}

impl Listener {
    async fn next(&mut self) -> (TcpStream, Instant) {
        within("a connection", self.accepted.recv())
            .await
            .expect("listener runs")
    }

    /// The next connection, upgraded to a WebSocket.
    async fn upgraded(&mut self) -> Peer {
        let (socket, _) = self.next().await;
        Peer::upgrade(socket).await
    }

    /// The next connection, through both handshakes.
    async fn connected(&mut self) -> Peer {
        let mut peer = self.upgraded().await;
        peer.open().await;
        peer.expect_text_starting("40").await;
        peer.send_text(r#"40{"sid":"hostile"}"#).await;
        peer
    }
}

/// One client connection, spoken to in raw WebSocket frames.
struct Peer {
    socket: BufReader<TcpStream>,
}

/// A frame from the client: its opcode and unmasked payload.
struct ClientFrame {
    opcode: u8,
    payload: Vec<u8>,
}

impl Peer {
    /// Answers the HTTP upgrade.
    async fn upgrade(socket: TcpStream) -> Self {
        let mut socket = BufReader::new(socket);
        let mut key = None;
        loop {
            let mut line = String::new();
            within("the upgrade request", socket.read_line(&mut line))
                .await
                .expect("reads the request");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("sec-websocket-key") {
                    key = Some(value.trim().to_owned());
                }
            }
        }
        let accept = derive_accept_key(key.expect("a WebSocket key").as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        socket
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .expect("writes");
        Self { socket }
    }

    /// Sends the Engine.IO open packet.
    async fn open(&mut self) {
        self.send_text(r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#)
            .await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.get_mut().write_all(bytes).await
    }

    async fn send_frame(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        self.send_raw(&frame(opcode, fin, payload))
            .await
            .expect("writes a frame");
    }

    async fn send_text(&mut self, text: &str) {
        self.send_frame(1, true, text.as_bytes()).await;
    }

    /// The next frame from the client; `None` once it closed the connection.
    async fn recv(&mut self) -> Option<ClientFrame> {
        let mut head = [0u8; 2];
        self.socket.read_exact(&mut head).await.ok()?;
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            len = u64::from(self.socket.read_u16().await.ok()?);
        } else if len == 127 {
            len = self.socket.read_u64().await.ok()?;
        }
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 {
            self.socket.read_exact(&mut mask).await.ok()?;
        }
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        self.socket.read_exact(&mut payload).await.ok()?;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        Some(ClientFrame { opcode, payload })
    }

    /// The next text frame from the client that is not a pong.
    async fn recv_text(&mut self) -> Option<String> {
        loop {
            let frame = self.recv().await?;
            if frame.opcode == 8 {
                return None;
            }
            if frame.opcode == 1 {
                let text = String::from_utf8(frame.payload).expect("the client sends UTF-8");
                if text != "3" {
                    return Some(text);
                }
            }
        }
    }

    async fn expect_text_starting(&mut self, prefix: &str) -> String {
        let text = within("a frame from the client", self.recv_text())
            .await
            .expect("the client stays connected");
        assert!(text.starts_with(prefix), "expected {prefix}..., got {text}");
        text
    }

    /// The next request: its ack id, event name and argument.
    async fn request(&mut self) -> (u64, String, Value) {
        let text = self.expect_text_starting("42").await;
        let rest = &text[2..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = rest[..digits].parse().expect("a request has an ack id");
        let Value::Array(items) = serde_json::from_str(&rest[digits..]).expect("JSON") else {
            panic!("not an array: {text}");
        };
        let event = items[0].as_str().expect("event name").to_owned();
        (id, event, items.get(1).cloned().unwrap_or(Value::Null))
    }

    async fn ack(&mut self, id: u64, answer: Value) {
        self.send_text(&format!("43{id}{}", Value::Array(vec![answer])))
            .await;
    }

    /// Waits until the client closes the connection (end of stream, reset or a close frame).
    async fn closed_by_client(&mut self) {
        within("the client to close the connection", async {
            while self.recv_text().await.is_some() {}
        })
        .await;
    }
}

/// An unmasked (server → client) WebSocket frame.
fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(opcode, fin, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn frame_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out
}

fn presence_answer() -> Value {
    json!({"ok": true, "presence": [{"user": "bob", "online": true, "last_seen": null}]})
}

// ---- garbage -----------------------------------------------------------------------------

#[tokio::test]
async fn garbage_frames_and_stray_acks_are_ignored_and_the_link_stays_usable() {
    let (mut server, mut peer, client, _events) = session().await;
    let asking = ask_presence(&client);
    let (id, event, _) = peer.request().await;
    assert_eq!(event, "presence:get");
    for garbage in [
        "hello",
        "",
        "{}",
        "42{not json",
        "42[1]",
        "42",
        "4é",
        "\u{1F600}",
        "43abc",
        "43[{\"ok\":true}]",
        "45-[\"x\"]",
        "0{\"sid\":\"again\"}",
        "40",
    ] {
        peer.send_text(garbage).await;
    }
    peer.send_frame(2, true, &[0xff, 0x00, 0xfe]).await;
    // Acks for ids never sent, then the real one.
    peer.ack(id + 1000, presence_answer()).await;
    peer.ack(u64::MAX, presence_answer()).await;
    peer.send_text("4399999999999999999999999[{\"ok\":true}]")
        .await;
    peer.ack(id, presence_answer()).await;
    let answer = joined("the answer", asking).await;
    let presence = answer.expect("the real ack is taken");
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].user, bob());
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Connected
    );
    // One connection only: nothing above tore the link down.
    assert!(
        server.accepted.try_recv().is_err(),
        "the client reconnected"
    );
    client.close().await;
    assert_no_panic();
}

/// A text frame that is not UTF-8 cannot be read: the link ends with a typed protocol
/// error for the request in flight, and the client connects again.
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_ends_the_link_with_a_protocol_error_and_the_client_reconnects(
) {
    let (mut server, mut peer, client, _events) = session().await;
    let asking = ask_presence(&client);
    let _ = peer.request().await;
    peer.send_frame(1, true, b"42[\"message:new\",\"\xff\xfe\"]")
        .await;
    let error = joined("the request to fail", asking).await;
    assert!(
        matches!(
            error,
            Err(RequestError::Transport(TransportError::Protocol(_)))
        ),
        "{error:?}"
    );
    peer.closed_by_client().await;
    let _again = server.connected().await;
    client.close().await;
    assert_no_panic();
}

// ---- size -------------------------------------------------------------------------------

/// How many bytes of `total` the server manages to write before the client hangs up.
async fn write_until_refused(peer: &mut Peer, chunks: impl Iterator<Item = Vec<u8>>) -> usize {
    let mut written = 0;
    for chunk in chunks {
        if peer.send_raw(&chunk).await.is_err() {
            break;
        }
        written += chunk.len();
    }
    written
}

const HUNDRED_MB: usize = 100 * 1024 * 1024;
const MIB: usize = 1024 * 1024;
/// What the kernel's socket buffers may hold on loopback between the two ends, besides
/// what the client reads: generous.
const SOCKET_SLACK: usize = 8 * MIB;

/// Writes `chunks` (an oversized frame or message) while a request waits: the client must
/// hang up before `bound` bytes are taken, fail the request with
/// [`TransportError::FrameTooLarge`], and connect again.
async fn refused_before(bound: usize, chunks: impl Iterator<Item = Vec<u8>>) {
    let (mut server, mut peer, client, _events) = session().await;
    let asking = ask_presence(&client);
    let _ = peer.request().await;
    let written = within(
        "the client to hang up",
        write_until_refused(&mut peer, chunks),
    )
    .await;
    assert!(
        written < bound,
        "{written} bytes were taken before the client refused them"
    );
    let error = joined("the request to fail", asking).await;
    assert!(
        matches!(
            error,
            Err(RequestError::Transport(TransportError::FrameTooLarge { max_bytes }))
                if max_bytes == MAX_MESSAGE_BYTES
        ),
        "{error:?}"
    );
    let _again = server.connected().await;
    client.close().await;
    assert_no_panic();
}

/// One frame whose header announces 100 MB: refused from the header, so no more is taken
/// than the socket buffers hold.
#[tokio::test]
async fn a_100_mb_frame_is_refused_from_its_header_with_a_typed_error() {
    let header = frame_header(1, true, HUNDRED_MB as u64);
    let payload = (0..HUNDRED_MB / MIB).map(|_| vec![b'x'; MIB]);
    refused_before(SOCKET_SLACK, std::iter::once(header).chain(payload)).await;
}

/// A message of many small frames is bounded as a whole: refused once it passes
/// `MAX_MESSAGE_BYTES`, not at tungstenite's default of 64 MiB.
#[tokio::test]
async fn a_100_mb_message_in_fragments_is_refused_at_the_message_bound() {
    let fragments =
        (0..HUNDRED_MB / MIB).map(|i| frame(if i == 0 { 1 } else { 0 }, false, &vec![b'x'; MIB]));
    refused_before(MAX_MESSAGE_BYTES + SOCKET_SLACK, fragments).await;
}

// ---- acks -------------------------------------------------------------------------------

/// An ack that never comes: the request fails with a typed timeout, the connection is torn
/// down, the message on the wire goes back to `Queued` (nothing stays `Sending`) and is
/// resent, with the same `client_id`, on the next connection.
#[tokio::test]
async fn an_ack_that_never_comes_times_out_typed_and_the_outbox_resends_on_the_next_link() {
    let (mut server, mut peer, client, _events) = session().await;

    // A request: the typed timeout, after the ack timeout.
    let asked = Instant::now();
    let asking = ask_presence(&client);
    let _ = peer.request().await;
    let error = joined("the request to time out", asking).await;
    assert!(
        matches!(
            error,
            Err(RequestError::Transport(TransportError::AckTimeout(after))) if after == ACK_TIMEOUT
        ),
        "{error:?}"
    );
    assert!(asked.elapsed() >= ACK_TIMEOUT);
    peer.closed_by_client().await;

    // A message: never acked on this link either.
    let mut peer = server.connected().await;
    let room = RoomId::new("general").expect("room");
    let handle = client.send(&room, "hello").await.expect("queued");
    let mut states = handle.watch().expect("watch");
    let (_, event, first) = peer.request().await;
    assert_eq!(event, "message:send");
    within("the message to go back to queued", async {
        loop {
            if states.borrow_and_update().clone() == Some(MessageState::Queued) {
                break;
            }
            states.changed().await.expect("client runs");
        }
    })
    .await;
    peer.closed_by_client().await;

    // The next link gets it again, the same message, and acks it this time.
    let mut peer = server.connected().await;
    let (id, event, again) = peer.request().await;
    assert_eq!(event, "message:send");
    assert_eq!(again["client_id"], first["client_id"]);
    peer.ack(
        id,
        json!({"ok": true, "id": "general:1", "seq": 1, "ts": 1, "duplicate": false}),
    )
    .await;
    let sent = within(
        "the message to be sent",
        handle.wait_for(Milestone::Sent, PATIENCE),
    )
    .await;
    assert!(sent.is_ok(), "{sent:?}");
    client.close().await;
    assert_no_panic();
}

// ---- handshakes that never finish ----------------------------------------------------------

/// Where a server stops in the handshake.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// TCP accepted, no HTTP response.
    Http,
    /// WebSocket upgraded, no Engine.IO open packet.
    Open,
    /// Open packet sent, no answer to the Socket.IO CONNECT.
    Connect,
}

/// Plays one stalled handshake on `socket` and keeps the connection open until the client
/// gives up on it.
async fn stall(socket: TcpStream, at: Stall) {
    let mut peer = match at {
        Stall::Http => {
            let mut socket = socket;
            let mut sink = Vec::new();
            // Read the request, answer nothing, and notice when the client hangs up.
            let _ = socket.read_to_end(&mut sink).await;
            return;
        }
        Stall::Open | Stall::Connect => Peer::upgrade(socket).await,
    };
    if let Stall::Connect = at {
        peer.open().await;
    }
    while peer.recv().await.is_some() {}
}

async fn a_stalled_handshake_times_out_typed_then_reconnects_with_backoff(at: Stall) {
    count_panics();
    let mut server = listen().await;

    // `connect` waits for the first connection: a typed timeout, within the bound.
    let started = Instant::now();
    let connecting = tokio::spawn(builder(&server.url).connect());
    let (socket, _) = server.next().await;
    let stalled = tokio::spawn(stall(socket, at));
    let outcome = joined("connect to give up", connecting).await;
    let took = started.elapsed();
    assert!(
        matches!(
            outcome,
            Err(ConnectError::Unreachable(TransportError::ConnectTimeout(after)))
                if after == CONNECT_TIMEOUT
        ),
        "{at:?}: {:?}",
        outcome.map(|_| ())
    );
    assert!(
        took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT * 10,
        "{at:?}: gave up after {took:?}"
    );
    joined("the stalled connection to be dropped", stalled).await;

    // A started client keeps trying, each attempt after the timeout plus its backoff delay.
    let (client, _events) = builder(&server.url).start().expect("starts");
    let mut accepted = Vec::new();
    for _ in 0..4 {
        let (socket, at_time) = server.next().await;
        accepted.push(at_time);
        tokio::spawn(stall(socket, at));
    }
    let gaps: Vec<Duration> = accepted.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays without jitter: 100, 200, 400 ms after the first, second, third failure.
    for (gap, delay) in gaps.iter().zip([100u64, 200, 400]) {
        let least = CONNECT_TIMEOUT + Duration::from_millis(delay);
        assert!(
            *gap + Duration::from_millis(5) >= least,
            "{at:?}: attempts {gaps:?} apart, expected at least {least:?}"
        );
    }
    assert!(
        matches!(
            *client.connection_state().borrow(),
            ConnectionState::Reconnecting { .. }
        ),
        "{at:?}"
    );
    client.close().await;
    assert_no_panic();
}

/// Each place a handshake can stall (no HTTP response; an upgrade and no Engine.IO open;
/// an open and no answer to the Socket.IO CONNECT), one after the other.
#[tokio::test]
async fn a_handshake_that_never_finishes_times_out_typed_then_reconnects_with_backoff() {
    for at in [Stall::Http, Stall::Open, Stall::Connect] {
        a_stalled_handshake_times_out_typed_then_reconnects_with_backoff(at).await;
    }
}

/// A server that answers the upgrade with a first packet that is not Engine.IO's open is
/// refused at once with a typed protocol error, not after the connect timeout.
#[tokio::test]
async fn a_handshake_that_starts_with_garbage_is_a_typed_protocol_error() {
    count_panics();
    let mut server = listen().await;
    for first in ["HTTP/1.1 200 OK but not really", "0{not json", "0[1]", "40"] {
        let connecting = tokio::spawn(builder(&server.url).connect());
        let (socket, _) = server.next().await;
        let mut peer = Peer::upgrade(socket).await;
        peer.send_text(first).await;
        let outcome = joined("connect to give up", connecting).await;
        assert!(
            matches!(
                outcome,
                Err(ConnectError::Unreachable(TransportError::Protocol(_)))
            ),
            "{first:?}: {:?}",
            outcome.map(|_| ())
        );
    }
    assert_no_panic();
}

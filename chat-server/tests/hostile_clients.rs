//! Clients no one on the team wrote: half-sent HTTP requests, upgraded sockets that never
//! send the Socket.IO CONNECT, connections that fall silent, a client that stops reading,
//! and malformed packets of every kind. Each gets an error ack or a closed socket within a
//! bound, never a panic, and the other users of the server go on as if nothing happened.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use chat_testkit::TestServer;
use serde_json::{json, Value};
use support::{RawClient, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `server` from `source` (any address of 127.0.0.0/8 is this host).
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(server).await.expect("connect")
}

/// Reads until the server closes `stream` (EOF or reset), and fails after `PATIENCE`.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closing = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, closing)
        .await
        .expect("the server kept the connection open");
}

/// A WebSocket upgrade done by hand, so that frames of any content (invalid UTF-8 too) can
/// be written; returns the stream just after the Engine.IO open packet.
async fn raw_websocket(server: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    stream
        .write_all(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: chat\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("upgrade sent");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let open = read_frame(&mut stream).await.expect("open packet");
    assert_eq!(
        open.first(),
        Some(&b'0'),
        "{}",
        String::from_utf8_lossy(&open)
    );
    stream
}

/// One unfragmented server frame's payload (servers do not mask), or `None` once closed.
async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.ok()?),
        127 => stream.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut payload).await.ok()?;
    Some(payload)
}

/// The next frame that is not an Engine.IO ping (pings are answered), or `None` once closed.
async fn next_packet(stream: &mut TcpStream) -> Option<Vec<u8>> {
    loop {
        let frame = read_frame(stream).await?;
        if frame != b"2" {
            return Some(frame);
        }
        write_frame(stream, 1, b"3").await;
    }
}

/// Writes one masked client frame of `opcode` (1 text, 2 binary) carrying `payload`.
async fn write_frame(stream: &mut TcpStream, opcode: u8, payload: &[u8]) {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    // The server may close before reading it all; that is an answer too.
    let _ = stream.write_all(&frame).await;
}

/// A bystander in `room` who must not notice anything: its message is stored with the next
/// `seq` and acked.
async fn bystander_still_sends(bystander: &RawClient, room: &str, expected_seq: u64) {
    let ack = bystander.say(room, "still fine").await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["seq"], expected_seq, "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_within_the_handshake_timeout_and_lock_no_one_out() {
    let server = TestServer::start_with(|config| {
        config.handshake_timeout = Duration::from_millis(500);
        config.limits.max_connections_per_address = 64;
    })
    .await
    .expect("server starts");
    let refused_before = chat_server::metrics::CONNECTIONS_REFUSED.get(&["per_address"]);

    // One attacker address opens more connections than its cap, each with half a request.
    let mut attack = Vec::new();
    for _ in 0..100 {
        let mut stream = connect_from("127.0.0.2", server.addr()).await;
        let _ = stream
            .write_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: chat\r\n")
            .await;
        attack.push(stream);
    }

    // Meanwhile a user from another address connects and chats as usual.
    let user = RawClient::as_user(&server, "alice").await;
    user.join("general").await;
    bystander_still_sends(&user, "general", 1).await;

    // Every attacking connection is closed: those over the cap at once, the others when
    // their request head is overdue.
    for stream in &mut attack {
        closed_by_server(stream).await;
    }
    let refused = chat_server::metrics::CONNECTIONS_REFUSED.get(&["per_address"]) - refused_before;
    assert!(refused >= 36, "{refused} refused over the cap of 64");

    // Its places are free again.
    let mut again = connect_from("127.0.0.2", server.addr()).await;
    again
        .write_all(b"GET /health HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut answer = String::new();
    again.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_socket_that_never_sends_connect_is_closed() {
    let server = TestServer::start_with(|config| {
        config.handshake_timeout = Duration::from_millis(500);
    })
    .await
    .expect("server starts");
    let mut silent = raw_websocket(server.addr()).await;
    let bystander = RawClient::as_user(&server, "bob").await;
    bystander.join("general").await;

    closed_by_server(&mut silent).await;
    bystander_still_sends(&bystander, "general", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_falls_silent_after_a_request_is_closed() {
    let server = TestServer::start_with(|config| {
        config.ping_interval = Duration::from_millis(300);
        config.ping_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_millis(800);
    })
    .await
    .expect("server starts");
    let mut keep_alive = TcpStream::connect(server.addr()).await.expect("connect");
    keep_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: chat\r\n\r\n")
        .await
        .expect("request sent");
    let mut answer = [0u8; 512];
    let n = keep_alive.read(&mut answer).await.expect("answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));

    // Nothing more is sent: the server closes the kept-alive connection.
    closed_by_server(&mut keep_alive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_shorter_than_the_ping_interval_is_refused_at_start() {
    let refused = TestServer::start_with(|config| {
        config.ping_interval = Duration::from_secs(25);
        config.idle_timeout = Duration::from_secs(20);
    })
    .await
    .expect_err("a live client would be cut off between two pings");
    assert!(refused.contains("idle timeout"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_room_goes_on() {
    let server = TestServer::start_with(|config| {
        config.ping_interval = Duration::from_millis(300);
        config.ping_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_secs(2);
        config.rates.send_per_sec = 1_000;
    })
    .await
    .expect("server starts");
    // A member whose connection is never read from again (nor answers pings).
    let mut stuck = raw_websocket(server.addr()).await;
    let auth = json!({ "token": server.token("stuck") });
    write_frame(&mut stuck, 1, format!("40{auth}").as_bytes()).await;
    write_frame(&mut stuck, 1, br#"420["room:join",{"room":"general"}]"#).await;
    let talker = RawClient::as_user(&server, "talker").await;
    talker.join("general").await;

    let body = "x".repeat(3_000);
    for seq in 1..=200u64 {
        let ack = talker.say("general", &body).await;
        assert_eq!(ack["seq"], seq, "{ack}");
    }
    // The stuck client missed its pongs; the server has closed it.
    closed_by_server(&mut stuck).await;
    bystander_still_sends(&talker, "general", 201).await;
}

/// Frames after a valid CONNECT that the server must answer with an error ack (`code`), or
/// survive by closing that one socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_an_error_ack_or_a_closed_socket_and_harm_no_one() {
    let server = TestServer::start().await.expect("server starts");
    let bystander = RawClient::as_user(&server, "bystander").await;
    bystander.join("general").await;
    let mut seq = 0;

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let answered: [(&str, Value, &str); 4] = [
        (
            "an unknown event",
            json!(["no:such:event", {}]),
            "invalid_payload",
        ),
        (
            "wrong types",
            json!(["message:send", { "room": 5, "client_id": [], "body": {} }]),
            "invalid_payload",
        ),
        ("no argument", json!(["room:join"]), "invalid_payload"),
        (
            "a string for an object",
            json!(["message:sync", "general"]),
            "invalid_payload",
        ),
    ];
    for (what, args, code) in answered {
        let attacker = RawClient::as_user(&server, "attacker").await;
        let ack = attacker.request_verbatim(args).await;
        assert_eq!(ack["ok"], false, "{what}: {ack}");
        assert_eq!(ack["error"]["code"], code, "{what}: {ack}");
        seq += 1;
        bystander_still_sends(&bystander, "general", seq).await;
    }

    let raw: [(&str, u8, Vec<u8>); 6] = [
        (
            "invalid UTF-8 in a text frame",
            1,
            b"42[\"room:join\",\xff\xfe]".to_vec(),
        ),
        (
            "JSON nested 100,000 deep",
            1,
            format!("421[\"message:send\",{deep}]").into_bytes(),
        ),
        (
            "an ack id of 30 digits",
            1,
            br#"42123456789012345678901234567890["room:join",{"room":"general"}]"#.to_vec(),
        ),
        (
            "a binary attachment",
            1,
            br#"451-7["message:send",{"_placeholder":true,"num":0}]"#.to_vec(),
        ),
        ("a binary frame alone", 2, vec![0xde, 0xad, 0xbe, 0xef]),
        ("not a packet at all", 1, b"\x00\x01garbage".to_vec()),
    ];
    for (what, opcode, payload) in raw {
        let mut attacker = raw_websocket(server.addr()).await;
        let auth = json!({ "token": server.token("attacker") });
        write_frame(&mut attacker, 1, format!("40{auth}").as_bytes()).await;
        let connected = next_packet(&mut attacker).await.expect("CONNECT answer");
        assert!(
            connected.starts_with(b"40"),
            "{what}: {}",
            String::from_utf8_lossy(&connected)
        );
        write_frame(&mut attacker, opcode, &payload).await;
        if what == "a binary attachment" {
            write_frame(&mut attacker, 2, b"attachment").await;
        }
        // A well-formed request after it: a socket the server kept must still answer.
        write_frame(
            &mut attacker,
            1,
            br#"4299["presence:get",{"users":["bystander"]}]"#,
        )
        .await;
        // Whatever the server does, it does in time: an error ack, a close, or (for a
        // packet it could read past) the answer to the request after it.
        let answer = tokio::time::timeout(PATIENCE, async {
            loop {
                match next_packet(&mut attacker).await {
                    None => return None,
                    Some(frame) if frame.starts_with(b"43") => return Some(frame),
                    Some(frame) if frame.first() == Some(&0x03) || frame.starts_with(b"1") => {
                        return None
                    }
                    Some(_) => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: neither an answer nor a close"));
        if let Some(ack) = answer {
            let text = String::from_utf8_lossy(&ack);
            assert!(
                text.starts_with("4399") || text.contains("\"ok\":false"),
                "{what}: {text}"
            );
        }
        seq += 1;
        bystander_still_sends(&bystander, "general", seq).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_the_connect_are_never_handled() {
    let server = TestServer::start().await.expect("server starts");
    let bystander = RawClient::as_user(&server, "bystander").await;
    bystander.join("general").await;

    let mut early = raw_websocket(server.addr()).await;
    write_frame(
        &mut early,
        1,
        br#"420["message:send",{"room":"general","client_id":"6c3e4f1a-7a51-4b55-9a47-8d1c9f7e2b10","body":"sneaked in"}]"#,
    )
    .await;
    let auth = json!({ "token": server.token("early") });
    write_frame(&mut early, 1, format!("40{auth}").as_bytes()).await;
    // Either the socket is closed or the CONNECT goes through; nothing was stored.
    let _ = tokio::time::timeout(PATIENCE, read_frame(&mut early)).await;
    let sync = bystander
        .request("message:sync", json!({ "room": "general", "after_seq": 0 }))
        .await;
    assert_eq!(sync["ok"], true, "{sync}");
    assert_eq!(sync["messages"], json!([]), "{sync}");
    bystander_still_sends(&bystander, "general", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_requests_without_waiting_is_closed_and_harms_no_one() {
    let server = TestServer::start_with(|config| config.limits.max_queued_requests = 64)
        .await
        .expect("server starts");
    let bystander = RawClient::as_user(&server, "bystander").await;
    bystander.join("general").await;

    let mut flooder = raw_websocket(server.addr()).await;
    let auth = json!({ "token": server.token("flooder") });
    write_frame(&mut flooder, 1, format!("40{auth}").as_bytes()).await;
    let connected = next_packet(&mut flooder).await.expect("CONNECT answer");
    assert!(connected.starts_with(b"40"));
    // Thousands of requests written at once, none waiting for its answer.
    let flood = br#"42["message:sync",{"room":"general","after_seq":0}]"#;
    for _ in 0..5_000 {
        write_frame(&mut flooder, 1, flood).await;
    }
    closed_by_server(&mut flooder).await;
    bystander_still_sends(&bystander, "general", 1).await;
}

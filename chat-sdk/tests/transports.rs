//! Both transports against the real server: what the link watchdog learns from them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_sdk::chat_protocol::ClientId;
use chat_sdk::transport::ConnectRequest;
use chat_sdk::transport::{
    Connection, SocketIoTransport, TlsConfig, Transport, WebSocketTransport,
};
use chat_testkit::TestServer;
use serde_json::json;

fn request(server: &TestServer, user: &str) -> ConnectRequest {
    ConnectRequest {
        url: server.url(),
        tls: TlsConfig::default(),
        auth: json!({ "token": server.token(user) }),
        connect_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(5),
        inbound_capacity: 64,
    }
}

async fn joined(transport: &dyn Transport, server: &TestServer, user: &str) -> Arc<dyn Connection> {
    let (conn, _inbound) = transport
        .connect(request(server, user))
        .await
        .expect("connects");
    conn.request("room:join", json!({ "room": "general" }))
        .await
        .expect("joins");
    conn
}

/// The watchdog forgives a probe queued behind slow requests while frames arrive, so a
/// transport must report every ack and event as it arrives, not when it is handled.
#[tokio::test]
async fn both_transports_report_each_ack_and_event_as_heard() {
    let server = TestServer::start().await.expect("server starts");
    let transports: [(&str, Arc<dyn Transport>); 2] = [
        ("websocket", Arc::new(WebSocketTransport)),
        ("socketio", Arc::new(SocketIoTransport)),
    ];
    for (name, transport) in transports {
        let (alice, mut inbound) = transport
            .connect(request(&server, "alice"))
            .await
            .expect("alice connects");
        alice
            .request("room:join", json!({ "room": "general" }))
            .await
            .expect("alice joins");
        while inbound.try_recv().is_ok() {}
        // Asking about nobody's presence sends nothing to anyone: only the ack comes back.
        let asked = Instant::now();
        alice
            .request("presence:get", json!({ "users": [] }))
            .await
            .expect("answered");
        let heard = alice.last_heard().expect("the transport keeps track");
        assert!(heard >= asked, "{name}: the ack was not counted");

        let bob = joined(transport.as_ref(), &server, "bob").await;
        while inbound.try_recv().is_ok() {}
        let sent = Instant::now();
        bob.request(
            "message:send",
            json!({ "room": "general", "client_id": ClientId::new_random().to_string(), "body": "hi" }),
        )
        .await
        .expect("bob sends");
        let event = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let event = inbound.recv().await.expect("alice's link stays up");
                if event.event == "message:new" {
                    return event;
                }
            }
        })
        .await
        .expect("alice gets bob's message");
        assert_eq!(event.payload["body"], "hi", "{name}");
        let heard = alice.last_heard().expect("the transport keeps track");
        assert!(
            heard >= sent,
            "{name}: the message:new event was not counted"
        );
        alice.close("done");
        bob.close("done");
    }
}

//! Several servers on one PostgreSQL database and one Redis: every socket gets every
//! message of its rooms once, in `seq` order, whichever server stored it, and also when
//! Redis restarts or a commit notice is lost; room events cross servers through Redis.
//!
//! These need the engines (`eval "$(scripts/engines.sh)"`); see `chat_testkit::engines`.

mod support;

use std::time::Duration;

use chat_testkit::{PostgresDatabase, RedisServer, TestServer};
use serde_json::{json, Value};
use support::{send_args, RawClient};

/// Servers sharing one database and, when given, one Redis.
struct Cluster {
    database: PostgresDatabase,
    nodes: Vec<TestServer>,
}

impl Cluster {
    async fn start(database: PostgresDatabase, redis: Option<&RedisServer>, count: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..count {
            let (url, redis) = (database.url().to_owned(), redis.map(RedisServer::url));
            nodes.push(
                TestServer::start_with(move |config| {
                    config.postgres_url = Some(url);
                    config.redis_url = redis;
                })
                .await
                .expect("node starts"),
            );
        }
        Self { database, nodes }
    }
}

/// Both engines, or `None` (the test does not run; see `chat_testkit::engines`).
async fn engines() -> Option<(PostgresDatabase, RedisServer)> {
    Some((
        PostgresDatabase::create().await?,
        RedisServer::start().await?,
    ))
}

/// The seqs of the next `count` messages of `room` that `client` receives.
async fn receive_seqs(client: &mut RawClient, room: &str, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let message = client.next_event("message:new").await;
        if message["room"] == room {
            seqs.push(message["seq"].as_u64().expect("seq"));
        }
    }
    seqs
}

fn ok(ack: &Value) {
    assert_eq!(ack["ok"], true, "request failed: {ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_to_every_node_reach_every_node_once_in_order() {
    let Some((database, redis)) = engines().await else {
        return;
    };
    let cluster = Cluster::start(database, Some(&redis), 3).await;
    let mut clients = Vec::new();
    for (index, node) in cluster.nodes.iter().enumerate() {
        let client = RawClient::as_user(node, &format!("user{index}")).await;
        client.join("shared").await;
        clients.push(client);
    }
    const EACH: usize = 40;
    // Every client sends at once, without waiting for its acks: three servers insert into one
    // room concurrently.
    let mut acks = Vec::new();
    for client in &clients {
        for n in 0..EACH {
            acks.push(client.start_request("message:send", send_args("shared", &format!("m{n}"))));
        }
    }
    for ack in acks {
        ok(&tokio::time::timeout(support::PATIENCE, ack)
            .await
            .expect("acked in time")
            .expect("ack"));
    }
    let total = EACH * clients.len();
    for (index, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            receive_seqs(client, "shared", total).await,
            (1..=total as u64).collect::<Vec<_>>(),
            "client on node {index}: every message once, in seq order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_cross_nodes_through_redis() {
    let Some((database, redis)) = engines().await else {
        return;
    };
    let cluster = Cluster::start(database, Some(&redis), 2).await;
    let mut watcher = RawClient::as_user(&cluster.nodes[1], "watcher").await;
    watcher.join("r").await;
    let typer = RawClient::as_user(&cluster.nodes[0], "typer").await;
    typer.join("r").await;
    // The watcher hears of its own join first, from its own node.
    let member = loop {
        let member = watcher.next_event("room:member").await;
        if member["user"] != "watcher" {
            break member;
        }
    };
    assert_eq!(
        (member["user"].as_str(), member["joined"].as_bool()),
        (Some("typer"), Some(true))
    );
    ok(&typer.request("typing:start", json!({ "room": "r" })).await);
    let typing = watcher.next_event("typing:update").await;
    assert_eq!(
        (typing["user"].as_str(), typing["typing"].as_bool()),
        (Some("typer"), Some(true))
    );
    let sent = typer.say("r", "hello").await;
    ok(&sent);
    let seq = sent["seq"].as_u64().expect("seq");
    assert_eq!(receive_seqs(&mut watcher, "r", 1).await, vec![seq]);
    ok(&watcher
        .request("receipt:read", json!({ "room": "r", "up_to_seq": seq }))
        .await);
    let mut typer = typer;
    let receipt = typer.next_event("receipt:update").await;
    assert_eq!(
        (receipt["user"].as_str(), receipt["read_seq"].as_u64()),
        (Some("watcher"), Some(seq))
    );
}

/// Redis is killed in the middle of a stream of messages and started again: the receiver on
/// the other node still gets every message once, in order (messages never depend on Redis),
/// and room events cross nodes again once Redis is back (the driver subscribes again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_stream_loses_no_message_and_room_events_come_back() {
    let Some((database, mut redis)) = engines().await else {
        return;
    };
    let cluster = Cluster::start(database, Some(&redis), 2).await;
    let mut receiver = RawClient::as_user(&cluster.nodes[1], "receiver").await;
    receiver.join("r").await;
    let sender = RawClient::as_user(&cluster.nodes[0], "sender").await;
    sender.join("r").await;
    const TOTAL: usize = 150;
    for n in 0..TOTAL {
        if n == TOTAL / 3 {
            redis.kill().await;
        }
        if n == 2 * TOTAL / 3 {
            redis.restart().await;
        }
        ok(&sender.say("r", &format!("m{n}")).await);
    }
    assert_eq!(
        receive_seqs(&mut receiver, "r", TOTAL).await,
        (1..=TOTAL as u64).collect::<Vec<_>>()
    );
    // Room events: typing from the sender's node reaches the receiver again, once the
    // sender's and the receiver's servers are subscribed to the new Redis.
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    loop {
        ok(&sender.request("typing:start", json!({ "room": "r" })).await);
        let heard = tokio::time::timeout(
            Duration::from_millis(500),
            receiver.next_event("typing:update"),
        );
        if let Ok(update) = heard.await {
            if update["typing"] == true {
                break;
            }
        }
        ok(&sender.request("typing:stop", json!({ "room": "r" })).await);
        assert!(
            tokio::time::Instant::now() < deadline,
            "room events did not cross nodes again after Redis came back"
        );
    }
}

/// The commit-notice connection of the receiving node is cut (its PostgreSQL backend
/// terminated) just before the last message of a quiet room is stored elsewhere: no notice
/// and no later message reveal it, and it still arrives, from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_message_of_a_quiet_room_arrives_when_its_notice_is_lost() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let cluster = Cluster::start(database, None, 2).await;
    let mut receiver = RawClient::as_user(&cluster.nodes[1], "receiver").await;
    receiver.join("quiet").await;
    let sender = RawClient::as_user(&cluster.nodes[0], "sender").await;
    sender.join("quiet").await;
    ok(&sender.say("quiet", "first").await);
    assert_eq!(receive_seqs(&mut receiver, "quiet", 1).await, vec![1]);

    let cut = terminate_listeners(&cluster.database).await;
    assert!(cut >= 2, "each node listens for notices ({cut} cut)");
    ok(&sender.say("quiet", "last").await);
    assert_eq!(receive_seqs(&mut receiver, "quiet", 1).await, vec![2]);
}

/// Terminates every backend of `database` listening for commit notices; how many.
async fn terminate_listeners(database: &PostgresDatabase) -> u64 {
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&database.name()],
        )
        .await
        .expect("terminates");
    rows.len() as u64
}

/// A client whose node went away resends on another node what the first never acked: it is
/// stored once, and the receiver gets each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_to_another_node_is_stored_once() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let cluster = Cluster::start(database, None, 2).await;
    let mut receiver = RawClient::as_user(&cluster.nodes[1], "receiver").await;
    receiver.join("r").await;
    let first = RawClient::as_user(&cluster.nodes[0], "sender").await;
    first.join("r").await;
    let args = send_args("r", "once");
    let original = first.request("message:send", args.clone()).await;
    ok(&original);
    drop(first);
    let second = RawClient::as_user(&cluster.nodes[1], "sender").await;
    second.join("r").await;
    let again = second.request("message:send", args).await;
    ok(&again);
    assert_eq!(
        again["data"]["seq"], original["data"]["seq"],
        "the original's seq"
    );
    ok(&second.say("r", "after").await);
    assert_eq!(receive_seqs(&mut receiver, "r", 2).await, vec![1, 2]);
}

/// Presence counts a user's sockets on every node: `presence:get` on a node where the user
/// has no socket says online, and closing one of two sockets on different nodes announces
/// nothing; closing the last one announces offline (after the grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_a_users_sockets_on_every_node() {
    let Some((database, redis)) = engines().await else {
        return;
    };
    let cluster = Cluster::start(database, Some(&redis), 2).await;
    let mut watcher = RawClient::as_user(&cluster.nodes[0], "watcher").await;
    watcher.join("r").await;
    let on_first = RawClient::as_user(&cluster.nodes[0], "roamer").await;
    on_first.join("r").await;
    let on_second = RawClient::as_user(&cluster.nodes[1], "roamer").await;
    on_second.join("r").await;

    drop(on_first);
    // Asked on the first node, which has no socket of the roamer left.
    let asked = watcher
        .request("presence:get", json!({ "users": ["roamer"] }))
        .await;
    ok(&asked);
    assert_eq!(asked["presence"][0]["online"], true, "{asked}");
    // The first node's grace period (200 ms) passes without an offline announcement: the
    // roamer is still on the second node.
    let early = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let update = watcher.next_event("presence:update").await;
            if update["user"] == "roamer" && update["online"] == false {
                return update;
            }
        }
    })
    .await;
    assert!(
        early.is_err(),
        "announced offline while on another node: {early:?}"
    );

    drop(on_second);
    loop {
        let update = watcher.next_event("presence:update").await;
        if update["user"] == "roamer" && update["online"] == false {
            break;
        }
    }
}

/// PostgreSQL goes away mid-run (every connection to it reset, new ones refused): a send
/// is answered `internal` and stores nothing; once PostgreSQL is back the node recovers by
/// itself, the resend is stored once, and the receiver gets every message in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_internal_while_postgres_is_down_and_recovers_by_itself() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let direct: url_parts::Parts = url_parts::parse(database.url());
    let relay = chat_testkit::Relay::start(direct.addr)
        .await
        .expect("relay");
    let through_relay = direct.with_addr(relay.addr());
    let node = TestServer::start_with(move |config| config.postgres_url = Some(through_relay))
        .await
        .expect("node starts");
    let mut receiver = RawClient::as_user(&node, "receiver").await;
    receiver.join("r").await;
    let sender = RawClient::as_user(&node, "sender").await;
    sender.join("r").await;
    ok(&sender.say("r", "before").await);

    relay.refuse_new(true);
    relay.reset_all();
    let args = send_args("r", "during");
    let refused = sender.request("message:send", args.clone()).await;
    assert_eq!(support::error_code(&refused), "internal", "{refused}");

    relay.refuse_new(false);
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    let stored = loop {
        let answer = sender.request("message:send", args.clone()).await;
        if answer["ok"] == true {
            break answer;
        }
        assert_eq!(support::error_code(&answer), "internal", "{answer}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node did not recover after PostgreSQL came back"
        );
    };
    assert_eq!(
        (&stored["seq"], &stored["duplicate"]),
        (&json!(2), &json!(false))
    );
    assert_eq!(receive_seqs(&mut receiver, "r", 2).await, vec![1, 2]);
}

/// Just enough of a `postgres://user:password@host:port/database` URL to point it elsewhere.
mod url_parts {
    use std::net::SocketAddr;

    pub struct Parts {
        pub addr: SocketAddr,
        prefix: String,
        suffix: String,
    }

    pub fn parse(url: &str) -> Parts {
        let (prefix, rest) = url.rsplit_once('@').expect("user@host");
        let (host, suffix) = rest.split_once('/').expect("host/database");
        Parts {
            addr: host.parse().expect("an IP:port host"),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }
    }

    impl Parts {
        pub fn with_addr(&self, addr: SocketAddr) -> String {
            format!("{}@{addr}/{}", self.prefix, self.suffix)
        }
    }
}

/// A node whose Redis cannot be reached refuses to start, naming Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_its_redis_refuses_to_start() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = database.url().to_owned();
    let error = TestServer::start_with(move |config| {
        config.postgres_url = Some(url);
        config.redis_url = Some(format!("redis://{closed}"));
    })
    .await
    .expect_err("nothing listens there");
    assert!(error.contains("Redis"), "{error}");
}

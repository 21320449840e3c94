//! The conformance suite every `Store` implementation must pass. Each check is a plain async
//! function over `&dyn Store`; an implementation adds one `#[tokio::test]` per check through
//! the `conformance!` macro with a factory that opens it on a path.

use std::path::Path;
use std::sync::Arc;

use chat_protocol::{Body, ClientId, Message, RoomId, UserId};
use chat_server::store::{
    Appended, Membership, NewMessage, PostgresOptions, PostgresStore, SqliteStore, Store,
};
use chat_server::StoreError;
use chat_testkit::PostgresDatabase;
use tokio::sync::mpsc::{channel, Receiver};

fn room(name: &str) -> RoomId {
    RoomId::new(name).expect("valid room")
}

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user")
}

fn message(room_name: &str, sender: &str, body: &str) -> NewMessage {
    NewMessage {
        room: room(room_name),
        sender: user(sender),
        client_id: ClientId::new_random(),
        body: Body::new(body).expect("valid body"),
        reply_to: None,
        ts: 1_700_000_000_000,
    }
}

async fn stored(store: &dyn Store, new: NewMessage) -> Message {
    match store.append(new).await.expect("append") {
        Appended::Stored(message) => message,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

type Opened = (Arc<dyn Store>, Receiver<Message>);

fn open_sqlite(path: &Path) -> Opened {
    let (feed, feed_rx) = channel(chat_server::store::FEED_CAPACITY);
    let store = SqliteStore::open(path, true, Some(feed)).expect("opens");
    (Arc::new(store), feed_rx)
}

/// Where a check opens (and reopens) its store: always the same database.
enum Opener {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Opener {
    /// Whether the feed carries a room's messages in `seq` order (one writer thread does).
    fn publishes_in_seq_order(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    async fn open(&self) -> Opened {
        match self {
            Self::Sqlite(path) => open_sqlite(path),
            Self::Postgres(url) => {
                let (feed, feed_rx) = channel(chat_server::store::FEED_CAPACITY);
                let store = PostgresStore::connect(url, PostgresOptions::default(), Some(feed))
                    .await
                    .expect("connects");
                (Arc::new(store), feed_rx)
            }
        }
    }
}

async fn seqs_are_gap_free_per_room(at: &Opener) {
    let (store, _) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    store.join(&room("b"), &user("u")).await.expect("join");
    for expected in 1..=3 {
        assert_eq!(stored(&*store, message("a", "u", "x")).await.seq, expected);
    }
    assert_eq!(
        stored(&*store, message("b", "u", "x")).await.seq,
        1,
        "rooms count separately"
    );
}

async fn concurrent_appends_get_unique_contiguous_seqs(at: &Opener) {
    let (store, _) = at.open().await;
    for i in 0..10 {
        store
            .join(&room("busy"), &user(&format!("u{i}")))
            .await
            .expect("join");
    }
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for _ in 0..20 {
                    seqs.push(
                        stored(&*store, message("busy", &format!("u{i}"), "x"))
                            .await
                            .seq,
                    );
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
}

async fn a_resend_is_the_original_in_any_room(at: &Opener) {
    let (store, _) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    store.join(&room("b"), &user("u")).await.expect("join");
    let first = message("a", "u", "once");
    let original = stored(&*store, first.clone()).await;
    let mut elsewhere = first.clone();
    elsewhere.room = room("b");
    elsewhere.body = Body::new("changed").expect("valid");
    match store.append(elsewhere).await.expect("append") {
        Appended::Duplicate(found) => assert_eq!(found, original),
        other => panic!("expected the original, got {other:?}"),
    }
    // Another sender may use the same client id.
    store.join(&room("a"), &user("v")).await.expect("join");
    let mut other_sender = first;
    other_sender.sender = user("v");
    assert_eq!(stored(&*store, other_sender).await.seq, 2);
}

async fn membership_is_required_and_durable(at: &Opener) {
    {
        let (store, _) = at.open().await;
        assert_eq!(
            store.append(message("a", "u", "x")).await.expect("append"),
            Appended::NotMember
        );
        assert_eq!(
            store
                .sync(&room("a"), &user("u"), 0, 10)
                .await
                .expect("sync"),
            Membership::NotMember
        );
        assert_eq!(
            store
                .mark_read(&room("a"), &user("u"), 1)
                .await
                .expect("read"),
            Membership::NotMember
        );
        let joined = store.join(&room("a"), &user("u")).await.expect("join");
        assert!(joined.newly_joined);
        assert!(
            !store
                .join(&room("a"), &user("u"))
                .await
                .expect("rejoin")
                .newly_joined
        );
        stored(&*store, message("a", "u", "x")).await;
        store.close().await.expect("close");
    }
    let (store, _) = at.open().await;
    assert!(store
        .is_member(&room("a"), &user("u"))
        .await
        .expect("member"));
    assert_eq!(
        store.rooms_of(&user("u")).await.expect("rooms"),
        vec![room("a")]
    );
    assert!(store.leave(&room("a"), &user("u")).await.expect("leave"));
    assert!(!store
        .leave(&room("a"), &user("u"))
        .await
        .expect("leave twice"));
    assert!(!store
        .is_member(&room("a"), &user("u"))
        .await
        .expect("member"));
    assert!(
        store
            .join(&room("a"), &user("u"))
            .await
            .expect("join again")
            .newly_joined
    );
}

async fn watermarks_are_capped_and_never_move_back(at: &Opener) {
    let (store, _) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    store.join(&room("a"), &user("r")).await.expect("join");
    for _ in 0..5 {
        stored(&*store, message("a", "u", "x")).await;
    }
    let Membership::Member(marks) = store
        .mark_delivered(&room("a"), &user("r"), 3)
        .await
        .expect("delivered")
    else {
        panic!("member");
    };
    assert_eq!(
        (marks.delivered_seq, marks.read_seq, marks.moved),
        (3, 0, true)
    );
    let Membership::Member(marks) = store
        .mark_read(&room("a"), &user("r"), 99)
        .await
        .expect("read")
    else {
        panic!("member");
    };
    assert_eq!(
        (marks.delivered_seq, marks.read_seq, marks.read_moved_by),
        (5, 5, 5)
    );
    let Membership::Member(marks) = store
        .mark_delivered(&room("a"), &user("r"), 1)
        .await
        .expect("delivered")
    else {
        panic!("member");
    };
    assert_eq!((marks.delivered_seq, marks.moved), (5, false));
    // Leaving and joining again keeps the watermarks.
    store.leave(&room("a"), &user("r")).await.expect("leave");
    let joined = store.join(&room("a"), &user("r")).await.expect("join");
    let own = joined
        .watermarks
        .iter()
        .find(|w| w.user == user("r"))
        .expect("own watermarks");
    assert_eq!((own.delivered_seq, own.read_seq), (5, 5));
}

async fn sync_pages_in_order(at: &Opener) {
    let (store, _) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    for i in 1..=5 {
        stored(&*store, message("a", "u", &format!("m{i}"))).await;
    }
    let Membership::Member(page) = store
        .sync(&room("a"), &user("u"), 1, 2)
        .await
        .expect("sync")
    else {
        panic!("member");
    };
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, page.last_seq, page.has_more), (vec![2, 3], 5, true));
    let Membership::Member(page) = store
        .sync(&room("a"), &user("u"), 3, 10)
        .await
        .expect("sync")
    else {
        panic!("member");
    };
    assert_eq!((page.messages.len(), page.has_more), (2, false));
    assert_eq!(page.messages[1].body.as_str(), "m5");
}

async fn committed_messages_are_published_in_commit_order(at: &Opener) {
    let (store, mut feed) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { stored(&*store, message("a", "u", "x")).await.seq })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let mut published = Vec::new();
    while let Ok(message) = feed.try_recv() {
        published.push(message.seq);
    }
    if !at.publishes_in_seq_order() {
        // Concurrent transactions publish after their own commits, in any order; the
        // fan-out puts them back in order (tests/nodes.rs).
        published.sort_unstable();
    }
    assert_eq!(
        published,
        (1..=50).collect::<Vec<_>>(),
        "every message, once, before append returned (in seq order where promised)"
    );
}

async fn tail_and_heads_read_any_room(at: &Opener) {
    let (store, _) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    for body in ["m1", "m2", "m3"] {
        stored(&*store, message("a", "u", body)).await;
    }
    let page = store.tail(&room("a"), 1, 1).await.expect("tail");
    assert_eq!(
        (page.messages[0].body.as_str(), page.last_seq, page.has_more),
        ("m2", 3, true)
    );
    assert!(store
        .tail(&room("nowhere"), 0, 10)
        .await
        .expect("tail")
        .messages
        .is_empty());
    assert_eq!(
        store
            .heads(&[room("nowhere"), room("a")])
            .await
            .expect("heads"),
        vec![0, 3]
    );
}

async fn last_seen_round_trips(at: &Opener) {
    let (store, _) = at.open().await;
    store.set_last_seen(&user("u"), 42).await.expect("set");
    store
        .set_last_seen(&user("u"), 43)
        .await
        .expect("set again");
    assert_eq!(
        store
            .last_seen(&[user("u"), user("never")])
            .await
            .expect("get"),
        vec![Some(43), None]
    );
}

async fn a_closed_store_refuses_work(at: &Opener) {
    let (store, _) = at.open().await;
    store.close().await.expect("close");
    assert!(matches!(
        store.join(&room("a"), &user("u")).await,
        Err(StoreError::Closed)
    ));
}

async fn a_batch_is_appended_in_order_as_one_operation(at: &Opener) {
    let (store, mut feed) = at.open().await;
    store.join(&room("a"), &user("u")).await.expect("join");
    store.join(&room("b"), &user("u")).await.expect("join");
    let first = message("a", "u", "one");
    let again = NewMessage {
        body: Body::new("the same client id").expect("valid"),
        ..first.clone()
    };
    let appended = store
        .append_batch(vec![
            first.clone(),
            message("b", "u", "elsewhere"),
            message("c", "u", "not a member"),
            message("a", "u", "two"),
            again,
        ])
        .await
        .expect("append batch");
    let seqs: Vec<_> = appended
        .iter()
        .map(|a| match a {
            Appended::Stored(m) => format!("stored {}:{}", m.room, m.seq),
            Appended::Duplicate(m) => format!("duplicate {}:{}", m.room, m.seq),
            Appended::NotMember => "not a member".to_owned(),
        })
        .collect();
    assert_eq!(
        seqs,
        [
            "stored a:1",
            "stored b:1",
            "not a member",
            "stored a:2",
            "duplicate a:1"
        ]
    );
    let mut published = Vec::new();
    while let Ok(message) = feed.try_recv() {
        published.push(format!("{}:{}", message.room, message.seq));
    }
    assert_eq!(
        published,
        ["a:1", "b:1", "a:2"],
        "published once each, in order"
    );
    assert_eq!(stored(&*store, message("a", "u", "three")).await.seq, 3);
}

/// One `#[tokio::test]` per check, for SQLite (a temporary file) and PostgreSQL (a fresh
/// database; see `chat_testkit::PostgresDatabase` for when it runs).
macro_rules! conformance {
    ([$($check:ident),* $(,)?]) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$check(&Opener::Sqlite(dir.path().join("store.db"))).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(database) = PostgresDatabase::create().await else { return };
                    super::$check(&Opener::Postgres(database.url().to_owned())).await;
                }
            )*
        }
    };
}

conformance!([
    seqs_are_gap_free_per_room,
    concurrent_appends_get_unique_contiguous_seqs,
    a_resend_is_the_original_in_any_room,
    membership_is_required_and_durable,
    watermarks_are_capped_and_never_move_back,
    sync_pages_in_order,
    committed_messages_are_published_in_commit_order,
    last_seen_round_trips,
    a_closed_store_refuses_work,
    a_batch_is_appended_in_order_as_one_operation,
    tail_and_heads_read_any_room,
]);

/// Two servers on one PostgreSQL database append to the same rooms at once, each message
/// sent twice (once to each server, as a client whose first server died would): every
/// message is stored once, and each room's seqs are unique and gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_postgres_share_gap_free_seqs_and_idempotency() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let at = Opener::Postgres(database.url().to_owned());
    let (first, _) = at.open().await;
    let (second, _) = at.open().await;
    for i in 0..4 {
        for name in ["x", "y"] {
            first
                .join(&room(name), &user(&format!("u{i}")))
                .await
                .expect("join");
        }
    }
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (first, second) = (first.clone(), second.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..25 {
                    let name = if n % 2 == 0 { "x" } else { "y" };
                    let new = message(name, &format!("u{i}"), "x");
                    let batch = vec![
                        new.clone(),
                        message(
                            if name == "x" { "y" } else { "x" },
                            &format!("u{i}"),
                            "other",
                        ),
                    ];
                    let (a, b) = tokio::join!(second.append_batch(batch), first.append(new));
                    let a = a.expect("batch on the second server");
                    let b = b.expect("append on the first server");
                    let seq_of = |appended: &Appended| match appended {
                        Appended::Stored(m) | Appended::Duplicate(m) => {
                            (m.room.to_string(), m.seq, m.client_id)
                        }
                        Appended::NotMember => panic!("member"),
                    };
                    assert_eq!(
                        seq_of(&a[0]),
                        seq_of(&b),
                        "the same message on both servers"
                    );
                    seqs.push((seq_of(&a[0]).0, seq_of(&a[0]).1));
                    seqs.push((seq_of(&a[1]).0, seq_of(&a[1]).1));
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    for name in ["x", "y"] {
        let mut seqs: Vec<u64> = all
            .iter()
            .filter(|(r, _)| r == name)
            .map(|(_, seq)| *seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "room {name}");
        assert_eq!(first.heads(&[room(name)]).await.expect("heads"), vec![100]);
    }
}

/// An unreachable PostgreSQL fails at connect with a clear error, not at the first request.
#[tokio::test]
async fn an_unreachable_postgres_fails_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgres://chat:chat@127.0.0.1:{port}/chat");
    let error = PostgresStore::connect(&url, PostgresOptions::default(), None)
        .await
        .expect_err("nothing listens there");
    assert!(error.to_string().contains("PostgreSQL"), "{error}");
}

/// Two maps of messages to seqs are the same; else says which entries differ (the maps are
/// too big to print whole).
fn assert_same(
    left: &std::collections::HashMap<ClientId, u64>,
    right: &std::collections::HashMap<ClientId, u64>,
    left_name: &str,
    right_name: &str,
) {
    let mut only_left: Vec<u64> = left
        .iter()
        .filter(|(id, seq)| right.get(*id) != Some(*seq))
        .map(|(_, seq)| *seq)
        .collect();
    let mut only_right: Vec<u64> = right
        .iter()
        .filter(|(id, seq)| left.get(*id) != Some(*seq))
        .map(|(_, seq)| *seq)
        .collect();
    only_left.sort_unstable();
    only_right.sort_unstable();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "{} {left_name}, {} {right_name}; seqs only {left_name}: {only_left:?}; only {right_name}: {only_right:?}",
        left.len(),
        right.len()
    );
}

/// The database fills up in the middle of group-committed batches (SQLite's `max_page_count`
/// gives SQLITE_FULL, as a full disk does): every append answered "stored" is in the database
/// at its seq and was published, every append refused is not stored, and the room's seqs have
/// no gap; once there is room again (reopened without the cap), appends go on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_filling_up_mid_batch_commits_exactly_what_it_answered() {
    use chat_server::store::SqliteOptions;
    use std::collections::HashMap;

    const SENDERS: usize = 8;
    const APPENDS: usize = 600;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("full.db");
    let (feed, mut published) = channel(APPENDS);
    let options = SqliteOptions {
        durable: true,
        max_bytes: Some(1 << 20),
    };
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_with(&path, options, Some(feed)).expect("opens"));
    for i in 0..SENDERS {
        store
            .join(&room("full"), &user(&format!("u{i}")))
            .await
            .expect("join");
    }
    // Many appends at once, so the store's writer takes them in batches; ~3 KiB each, so the
    // 1 MiB cap is reached part way.
    let body = "x".repeat(3_000);
    let tasks: Vec<_> = (0..APPENDS)
        .map(|i| {
            let store = store.clone();
            let new = message("full", &format!("u{}", i % SENDERS), &body);
            tokio::spawn(async move {
                let client_id = new.client_id;
                (client_id, store.append(new).await)
            })
        })
        .collect();
    let mut answered: HashMap<ClientId, u64> = HashMap::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (_, Ok(Appended::Stored(stored))) => {
                answered.insert(stored.client_id, stored.seq);
            }
            (client_id, Err(_)) => refused.push(client_id),
            (_, Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !answered.is_empty() && !refused.is_empty(),
        "the cap was reached part way"
    );
    store.close().await.expect("closes");
    drop(store);
    let mut fanned_out = HashMap::new();
    while let Ok(message) = published.try_recv() {
        fanned_out.insert(message.client_id, message.seq);
    }
    assert_same(&fanned_out, &answered, "published", "answered stored");

    let (store, _) = open_sqlite(&path);
    let mut in_db = Vec::new();
    let mut after = 0;
    loop {
        let Membership::Member(page) = store
            .sync(&room("full"), &user("u0"), after, 500)
            .await
            .expect("sync")
        else {
            panic!("u0 is a member");
        };
        in_db.extend(page.messages.iter().map(|m| (m.client_id, m.seq)));
        after = page.messages.last().map_or(after, |m| m.seq);
        if !page.has_more {
            assert_eq!(
                page.last_seq as usize,
                in_db.len(),
                "no seq without its message"
            );
            break;
        }
    }
    let seqs: Vec<u64> = in_db.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(seqs, (1..=in_db.len() as u64).collect::<Vec<_>>(), "no gap");
    let in_db: HashMap<ClientId, u64> = in_db.into_iter().collect();
    assert_same(&in_db, &answered, "in the database", "answered stored");
    let next = stored(&*store, message("full", "u0", "room again")).await;
    assert_eq!(next.seq as usize, answered.len() + 1);
}

/// A batch that does not fit in a full database is refused whole: none of its messages is
/// stored or published, and the room's `seq` does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fills_the_database_stores_none_of_its_messages() {
    use chat_server::store::SqliteOptions;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("full.db");
    let (feed, mut published) = channel(1_000);
    let options = SqliteOptions {
        durable: true,
        max_bytes: Some(1 << 20),
    };
    let store = SqliteStore::open_with(&path, options, Some(feed)).expect("opens");
    store.join(&room("r"), &user("u")).await.expect("join");
    let body = "x".repeat(3_000);
    let mut stored_seqs = 0;
    let refused = loop {
        let batch: Vec<NewMessage> = (0..50).map(|_| message("r", "u", &body)).collect();
        match store.append_batch(batch).await {
            Ok(appended) => stored_seqs += appended.len(),
            Err(error) => break error,
        }
        assert!(stored_seqs < 10_000, "the cap is never reached");
    };
    assert!(stored_seqs > 0, "some batches fit: {refused}");
    let mut count = 0;
    while published.try_recv().is_ok() {
        count += 1;
    }
    assert_eq!(
        count, stored_seqs,
        "only what was answered stored is published"
    );
    let Membership::Member(page) = store
        .sync(&room("r"), &user("u"), 0, 1)
        .await
        .expect("sync")
    else {
        panic!("a member");
    };
    assert_eq!(
        page.last_seq as usize, stored_seqs,
        "the refused batch left no seq behind"
    );
}

/// The commit feed is bounded: with a one-slot feed read only while the appends run, the
/// writer waits for the reader instead of dropping a message or growing the feed, and every
/// message is published once, in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_reader_holds_the_writer_back_and_loses_nothing() {
    const APPENDS: usize = 40;
    let dir = tempfile::tempdir().expect("temp dir");
    let (feed, mut published) = channel(1);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("slow.db"), false, Some(feed)).expect("opens"));
    store.join(&room("r"), &user("u")).await.expect("join");
    let tasks: Vec<_> = (0..APPENDS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append(message("r", "u", "x")).await })
        })
        .collect();
    let mut seqs = Vec::new();
    while seqs.len() < APPENDS {
        let message = published.recv().await.expect("published");
        seqs.push(message.seq);
    }
    for task in tasks {
        assert!(matches!(task.await.expect("task"), Ok(Appended::Stored(_))));
    }
    assert_eq!(seqs, (1..=APPENDS as u64).collect::<Vec<_>>());
    assert!(published.try_recv().is_err(), "nothing published twice");
}

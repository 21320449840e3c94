//! The public face of the SDK: [`ClientBuilder`] and [`Client`].
//!
//! A `Client` is a cheap handle (clone it freely) onto one running client: its store, its
//! supervisor task and its event stream. Dropping the last handle shuts the client down;
//! [`Client::close`] does so and waits for it.

pub(crate) mod builder;
pub(crate) mod config;
pub(crate) mod shared;
pub(crate) mod typing;

pub use builder::ClientBuilder;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::requests::{names, PresenceGet, Receipt, RoomRequest, SyncMessages};
use chat_protocol::results::{JoinResult, LeaveResult, PresenceResult, ReadResult, SyncResult};
use chat_protocol::{Body, ClientId, Presence, RoomId, Seq, UserId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{RequestError, SendError, StoreError};
use crate::outbox::{flusher, transitions};
use crate::receive::{catch_up, rejoin};
use crate::store::{Durable, Pending};
use crate::{ConnectionState, MessageState, OutgoingMessage};
use crate::{Outbox, SendHandle};
use shared::{lock, Inner};

/// Owns the background tasks; dropping the last handle shuts them down.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) inner: Arc<Inner>,
    pub(crate) supervisor: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Held by `close` throughout, so a second call waits for the first to finish.
    pub(crate) closing: tokio::sync::Mutex<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
        // The client is gone for its application: a new one may own the file at once. A
        // background task still finishing may write one more state, which is harmless (a
        // resend at most, deduplicated by the server).
        self.inner.store.release_owner();
    }
}

/// A connected (or connecting) chat client.
///
/// All methods are safe to call from many tasks at once, and from threads outside the
/// runtime the client was started on (its tasks always run on that runtime). Outgoing
/// messages go through the persistent outbox; incoming events arrive on the [`Events`](crate::Events)
/// stream returned with the client.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use chat_sdk::{ChatEvent, Client};
///
/// let (client, mut events) = Client::builder("http://127.0.0.1:3000", "<jwt>")
///     .store_path("alice.db")
///     .connect()
///     .await?;
/// let room = "general".parse()?;
/// client.join(&room).await?;
/// let hello = client.send(&room, "hello").await?;
/// while let Some(event) = events.recv().await {
///     match event {
///         ChatEvent::Message(m) => println!("{}: {}", m.sender, m.body),
///         ChatEvent::Status { client_id, state, .. } if client_id == hello.client_id() => {
///             println!("{state}")
///         }
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) handle: Arc<Handle>,
}

impl Client {
    /// A builder for a client of the server at `url` (`http://host:port`) with `token`
    /// (a JWT whose `sub` is the user).
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url, token)
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The user this client speaks for, read from the token's `sub` claim.
    pub fn user(&self) -> Option<&UserId> {
        self.inner().me.as_ref()
    }

    /// Queues `text` for `room` and returns a handle to the message once it is durable in
    /// the outbox (on disk, safe from a crash of the process and from a power cut). It is
    /// sent as soon as (and whenever) the connection allows, exactly once, after every
    /// earlier message of this client. The disk is waited for on the runtime's blocking
    /// pool, so no thread is blocked; the message may already be on the wire meanwhile.
    ///
    /// The message is queued, in order, when the returned future is first polled; if the
    /// future is dropped after that, it stays queued (its id comes with
    /// [`ChatEvent::Queued`](crate::ChatEvent::Queued); [`Outbox::handle`] makes a handle). [`SendError::NotDurable`] means it is queued but the disk did
    /// not confirm it: do not send it again.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let message = client.send(&"general".parse()?, "hello").await?;
    /// println!("queued {}", message.client_id());
    /// # Ok(()) }
    /// ```
    pub async fn send(
        &self,
        room: &RoomId,
        text: impl Into<String>,
    ) -> Result<SendHandle, SendError> {
        self.send_message(room, text, None).await
    }

    /// Like [`Client::send`], answering the message with `seq` `reply_to`.
    pub async fn reply(
        &self,
        room: &RoomId,
        text: impl Into<String>,
        reply_to: Seq,
    ) -> Result<SendHandle, SendError> {
        self.send_message(room, text, Some(reply_to)).await
    }

    /// Like [`Client::send`], for a plain thread (not a runtime's): blocks it until the
    /// message is durable (one fsync). Callable from any thread, also one outside the
    /// client's runtime; from inside an async task, use [`Client::send`].
    ///
    /// ```no_run
    /// # fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let message = client.send_blocking(&"general".parse()?, "from a thread")?;
    /// println!("queued {}", message.client_id());
    /// # Ok(()) }
    /// ```
    pub fn send_blocking(
        &self,
        room: &RoomId,
        text: impl Into<String>,
    ) -> Result<SendHandle, SendError> {
        self.send_message_blocking(room, text, None)
    }

    /// Like [`Client::send_blocking`], answering the message with `seq` `reply_to`.
    pub fn reply_blocking(
        &self,
        room: &RoomId,
        text: impl Into<String>,
        reply_to: Seq,
    ) -> Result<SendHandle, SendError> {
        self.send_message_blocking(room, text, Some(reply_to))
    }

    async fn send_message(
        &self,
        room: &RoomId,
        text: impl Into<String>,
        reply_to: Option<Seq>,
    ) -> Result<SendHandle, SendError> {
        let (message, queued) = self.queue(room, text, reply_to)?;
        let answer = queued.await;
        self.confirmed(message, answer)
    }

    fn send_message_blocking(
        &self,
        room: &RoomId,
        text: impl Into<String>,
        reply_to: Option<Seq>,
    ) -> Result<SendHandle, SendError> {
        let (message, queued) = self.queue(room, text, reply_to)?;
        // The store's thread starts the flusher once the message is committed: the network
        // round trip and the fsync overlap instead of adding up.
        let answer = queued.wait();
        self.confirmed(message, answer)
    }

    /// Hands a new message to the store, which commits it, announces it, starts the
    /// flusher and answers once the disk confirmed it.
    fn queue(
        &self,
        room: &RoomId,
        text: impl Into<String>,
        reply_to: Option<Seq>,
    ) -> Result<(OutgoingMessage, Pending<Durable<bool>>), SendError> {
        let inner = self.inner();
        let body = Body::new(text)?;
        let message = OutgoingMessage {
            client_id: ClientId::new_random(),
            room: room.clone(),
            body: body.into(),
            reply_to,
            queued_at: flusher::now_ms(),
            attempts: 0,
            state: MessageState::Queued,
        };
        let queued = transitions::queue(inner, &message, inner.config.outbox_capacity);
        Ok((message, queued))
    }

    /// The store's answer to a new message: its handle once the message is durable, or why
    /// not.
    fn confirmed(
        &self,
        message: OutgoingMessage,
        answer: Result<Durable<bool>, StoreError>,
    ) -> Result<SendHandle, SendError> {
        let inner = self.inner();
        let (inserted, disk) = answer?;
        if !inserted {
            return Err(SendError::OutboxFull {
                capacity: inner.config.outbox_capacity,
            });
        }
        let room = &message.room;
        if lock(&inner.typing).contains_key(room) {
            let inner = inner.clone();
            let room = room.clone();
            inner
                .runtime
                .clone()
                .spawn(async move { typing::stop(&inner, &room).await });
        }
        let handle = SendHandle::new(inner.clone(), message.client_id, message.room);
        match disk {
            Ok(()) => Ok(handle),
            Err(source) => Err(SendError::NotDurable {
                message: handle,
                source,
            }),
        }
    }

    /// Joins `room` (membership is durable on the server) and catches up on it: messages
    /// after this client's last position (or, the first time, after the user's delivered
    /// watermark) arrive on the event stream. The room is re-joined after every reconnect.
    /// Offline, the room is remembered and joined on connect, and
    /// [`RequestError::NotConnected`] is returned.
    pub async fn join(&self, room: &RoomId) -> Result<JoinResult, RequestError> {
        self.join_inner(room, None).await
    }

    /// Like [`Client::join`], but receiving starts after `seq` (0 for the whole history),
    /// replacing any position the store had for the room: messages after `seq` are handed
    /// over again, even those handed over before.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// // Replay the whole room, as `chat listen --since 0` does.
    /// client.join_since(&"general".parse()?, 0).await?;
    /// # Ok(()) }
    /// ```
    pub async fn join_since(&self, room: &RoomId, seq: Seq) -> Result<JoinResult, RequestError> {
        self.join_inner(room, Some(seq)).await
    }

    async fn join_inner(
        &self,
        room: &RoomId,
        since: Option<Seq>,
    ) -> Result<JoinResult, RequestError> {
        let inner = self.inner();
        // Held throughout, so a position reset never races a hand-over in progress.
        let _guard = inner.recv_lock.lock().await;
        inner.store.set_joined(vec![room.clone()], true).await?;
        {
            let mut rooms = lock(&inner.rooms);
            let view = rooms.entry(room.clone()).or_default();
            view.joined = true;
            view.joined_here = true;
            if let Some(since) = since {
                view.received_seq = Some(since);
            }
        }
        if let Some(since) = since {
            inner.store.reset_position(room.clone(), since).await?;
        }
        let conn = inner.connection().ok_or(RequestError::NotConnected)?;
        let result = catch_up::join_room(inner, &*conn, room, since).await?;
        catch_up::catch_up(inner, &*conn, room).await?;
        flusher::trigger(inner);
        Ok(result)
    }

    /// Joins every room of `rooms` and catches each up, as [`Client::join`] does for one,
    /// in as few requests as the server allows: one `room:resume` per 1,000 rooms where the
    /// server has it (the reference server does), else a `room:join` and a `message:sync`
    /// per room. Each room's [`ChatEvent::CaughtUp`](crate::ChatEvent::CaughtUp) says when
    /// it is live. A room the server refuses for good is logged and joined again on the next
    /// connection. Offline, the rooms are remembered and joined on connect, and
    /// [`RequestError::NotConnected`] is returned.
    ///
    /// ```no_run
    /// # async fn demo(client: &chat_sdk::Client) -> Result<(), chat_sdk::RequestError> {
    /// use chat_sdk::chat_protocol::RoomId;
    /// let rooms: Vec<RoomId> = (0..1_000)
    ///     .map(|i| RoomId::new(format!("team-{i}")).expect("a valid room id"))
    ///     .collect();
    /// client.join_all(&rooms).await?;
    /// # Ok(()) }
    /// ```
    pub async fn join_all(&self, rooms: &[RoomId]) -> Result<(), RequestError> {
        let inner = self.inner();
        let _guard = inner.recv_lock.lock().await;
        inner.store.set_joined(rooms.to_vec(), true).await?;
        {
            let mut views = lock(&inner.rooms);
            for room in rooms {
                let view = views.entry(room.clone()).or_default();
                view.joined = true;
                view.joined_here = true;
            }
        }
        let conn = inner.connection().ok_or(RequestError::NotConnected)?;
        let rejoined = rejoin::rejoin(inner, &*conn, rooms).await?;
        flusher::trigger(inner);
        let mut receipts_due = std::collections::BTreeSet::new();
        rejoin::catch_up(inner, &*conn, rejoined, &mut receipts_due).await?;
        inner.queue_receipts(receipts_due);
        Ok(())
    }

    /// Whether `room` is live on the current connection: joined, and every message stored
    /// before its catch-up handed over (see [`ChatEvent::CaughtUp`](crate::ChatEvent::CaughtUp)).
    pub fn is_caught_up(&self, room: &RoomId) -> bool {
        self.inner().connection().is_some()
            && lock(&self.inner().rooms)
                .get(room)
                .is_some_and(|view| view.joined && view.live)
    }

    /// Leaves `room`: ends the membership on the server and stops re-joining it.
    pub async fn leave(&self, room: &RoomId) -> Result<(), RequestError> {
        let inner = self.inner();
        inner.store.set_joined(vec![room.clone()], false).await?;
        if let Some(view) = lock(&inner.rooms).get_mut(room) {
            view.joined = false;
        }
        let _: LeaveResult = inner
            .request(names::ROOM_LEAVE, &RoomRequest { room: room.clone() })
            .await?;
        Ok(())
    }

    /// Marks everything the application took from the event stream in `room` so far as
    /// read (one `receipt:read`).
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let read = client.mark_read(&"general".parse()?).await?;
    /// println!("read up to #{}", read.read_seq);
    /// # Ok(()) }
    /// ```
    pub async fn mark_read(&self, room: &RoomId) -> Result<ReadResult, RequestError> {
        let up_to_seq = lock(&self.inner().rooms)
            .get(room)
            .map(|view| view.taken_seq)
            .unwrap_or(0);
        self.mark_read_up_to(room, up_to_seq).await
    }

    /// Marks the messages of `room` up to `seq` as read (the server caps it at the room's
    /// newest and never moves it back).
    pub async fn mark_read_up_to(
        &self,
        room: &RoomId,
        seq: Seq,
    ) -> Result<ReadResult, RequestError> {
        self.inner()
            .request(
                names::RECEIPT_READ,
                &Receipt {
                    room: room.clone(),
                    up_to_seq: seq,
                },
            )
            .await
    }

    /// The last contiguous `seq` of `room` this client received (put on the event stream,
    /// whether or not the application took it yet); `None` for a room it never joined.
    pub fn received_seq(&self, room: &RoomId) -> Option<Seq> {
        lock(&self.inner().rooms)
            .get(room)
            .and_then(|view| view.received_seq)
    }

    /// Says the user is typing in `room`; call it on every keystroke. At most one
    /// `typing:start` goes out per 3 s, and `typing:stop` follows by itself after
    /// [`TYPING_STOP_AFTER`](crate::TYPING_STOP_AFTER) without a keystroke.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let room = "general".parse()?;
    /// for _keystroke in 0..20 {
    ///     client.typing(&room).await; // one typing:start goes out
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn typing(&self, room: &RoomId) {
        typing::keystroke(self.inner(), room).await;
    }

    /// Says the user stopped typing in `room`.
    pub async fn stop_typing(&self, room: &RoomId) {
        typing::stop(self.inner(), room).await;
    }

    /// The presence of up to 100 users.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// for p in client.presence(&["bob".parse()?]).await? {
    ///     println!("{} online: {} (last seen {:?})", p.user, p.online, p.last_seen);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn presence(&self, users: &[UserId]) -> Result<Vec<Presence>, RequestError> {
        let request = PresenceGet {
            users: users.to_vec(),
        };
        if users.len() > chat_protocol::limits::MAX_PRESENCE_USERS {
            return Err(RequestError::Invalid(
                chat_protocol::ValidationError::TooMany {
                    what: "users",
                    len: users.len(),
                    max: chat_protocol::limits::MAX_PRESENCE_USERS,
                },
            ));
        }
        let result: PresenceResult = self.inner().request(names::PRESENCE_GET, &request).await?;
        Ok(result.presence)
    }

    /// Reads stored messages of `room` after `after_seq` (at most `limit`, 1–500) straight
    /// from the server, without touching the event stream or the room's position.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let page = client.history(&"general".parse()?, 0, 50).await?;
    /// for m in &page.messages {
    ///     println!("#{} {}: {}", m.seq, m.sender, m.body);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        room: &RoomId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<SyncResult, RequestError> {
        let limit = limit.clamp(1, chat_protocol::limits::MAX_SYNC_LIMIT);
        self.inner()
            .request(
                names::MESSAGE_SYNC,
                &SyncMessages {
                    room: room.clone(),
                    after_seq,
                    limit: Some(limit),
                },
            )
            .await
    }

    /// The outbox of this client, for listing and repairs (retry, discard, prune); each
    /// repair goes through this client, announced on its event stream.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let outbox = client.outbox();
    /// println!("{} waiting", outbox.depth()?);
    /// for m in outbox.list()? {
    ///     println!("{} {} {:?}", m.client_id, m.state, m.body);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn outbox(&self) -> Outbox {
        Outbox::of_client(self.inner().clone())
    }

    /// Asks the outbox to send now. Never needed for correctness (the outbox flushes on
    /// every send and reconnect); harmless to call any number of times concurrently.
    pub fn flush(&self) {
        flusher::trigger(self.inner());
    }

    /// A watch of the connection state.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) {
    /// use chat_sdk::ConnectionState;
    ///
    /// let mut state = client.connection_state();
    /// let _ = state.wait_for(|s| *s == ConnectionState::Connected).await;
    /// # }
    /// ```
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner().state.subscribe()
    }

    /// Waits until connected, at most `timeout`; returns whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut state = self.connection_state();
        let waited = tokio::time::timeout(timeout, async {
            state
                .wait_for(|s| *s == ConnectionState::Connected)
                .await
                .is_ok()
        })
        .await;
        matches!(waited, Ok(true))
    }

    /// Drops the current connection (the supervisor reconnects at once, with backoff).
    /// Useful to force a reconnect from a test or a "reconnect now" button.
    pub fn reconnect(&self) {
        if let Some(conn) = self.inner().connection() {
            conn.close("reconnect requested");
        }
    }

    /// Stops the client: closes the connection, stops sending, ends the event stream and
    /// lets go of the outbox file, which another client or [`Outbox::open`] may then own.
    /// Queued messages stay in the store for the next run.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_sdk::Client) {
    /// client.close().await; // the outbox file keeps what was not sent yet
    /// # }
    /// ```
    pub async fn close(&self) {
        let _closing = self.handle.closing.lock().await;
        let inner = self.inner();
        inner.shutdown.cancel();
        let supervisor = lock(&self.handle.supervisor).take();
        if let Some(task) = supervisor {
            let _ = task.await;
        }
        // Nothing sends any more: the outbox file is free for another client or a tool.
        flusher::idle(inner).await;
        inner.store.release_owner();
        inner.close_events();
    }

    /// Rooms this client has joined (and re-joins on reconnect), with their positions.
    pub fn rooms(&self) -> HashMap<RoomId, Option<Seq>> {
        lock(&self.inner().rooms)
            .iter()
            .filter(|(_, view)| view.joined)
            .map(|(room, view)| (room.clone(), view.received_seq))
            .collect()
    }
}

//! What the client knows about each room: its position, its members and their receipts.
//!
//! Kept in memory (the position is also in the store), under the client's `rooms` lock,
//! so the receive path and receipts cost no store query.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chat_protocol::{ClientId, MessageId, Seq, UserId};

/// What the client knows about one room.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoomView {
    /// The client asked to be in this room (re-joined on every reconnect).
    pub joined: bool,
    /// [`Client::join`](crate::Client::join) was called for it in this run (what a
    /// send-only client re-joins).
    pub joined_here: bool,
    /// Last contiguous `seq` received: put on the event stream, maybe not yet taken by the
    /// application. Gaps and duplicates are judged against it. `None` before the first join.
    /// (Not the room's head, which is the `last_seq` of a `room:join` answer.)
    pub received_seq: Option<Seq>,
    /// Last `seq` the application took from the event stream; the store keeps it as the
    /// room's resume position, so a restart resumes after it.
    pub taken_seq: Seq,
    /// Everything stored before this connection's catch-up of the room was handed over;
    /// false from the start of each connection until then.
    pub live: bool,
    /// The delivered watermark the server last confirmed for this client.
    pub receipt_sent: Seq,
    /// Every member, as of the last join and `room:member` events.
    pub members: BTreeSet<UserId>,
    /// Each member's (delivered, read) watermarks.
    pub watermarks: HashMap<UserId, (Seq, Seq)>,
    /// This client's acknowledged messages that receipts can still move on, by `seq`:
    /// `Sent` ones wait for the delivered watermark, `Delivered` ones for the read one.
    /// Kept here so a receipt costs no store query.
    pub awaiting_delivery: BTreeMap<Seq, AwaitingReceipt>,
    /// See `awaiting_delivery`.
    pub awaiting_read: BTreeMap<Seq, AwaitingReceipt>,
    /// Some acknowledged messages of the room are not in the two maps above (they were
    /// over the client's receipt-tracking limit): receipts also look in the store.
    pub untracked: bool,
}

/// An acknowledged message of this client that receipts can still move on.
#[derive(Clone, Debug)]
pub(crate) struct AwaitingReceipt {
    pub client_id: ClientId,
    pub id: MessageId,
}

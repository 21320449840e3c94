//! The outbox table: every outgoing message with its state, in the order it was queued.

use chat_protocol::{ClientId, RoomId, Seq};
use rusqlite::{params, OptionalExtension};

use super::{corrupt, seq_to_sql, Call, Store};
use crate::error::StoreError;
use crate::{MessageState, OutgoingMessage};

/// See [`Store::receipt_moves_in`]: `?1` the room, `?2` the delivered watermark, `?3` the
/// read one.
const MOVED_BY_RECEIPTS: &str = "SELECT * FROM outbox
     WHERE kind IN ('sent', 'delivered') AND room = ?1 AND seq <= ?3
     UNION ALL
     SELECT * FROM outbox
     WHERE kind = 'sent' AND room = ?1 AND seq > ?3 AND seq <= ?2
     ORDER BY seq";

fn row_to_message(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<OutgoingMessage, StoreError>> {
    let client_id: String = row.get("client_id")?;
    let room: String = row.get("room")?;
    let body: String = row.get("body")?;
    let reply_to: Option<i64> = row.get("reply_to")?;
    let queued_at: i64 = row.get("queued_at")?;
    let attempts: i64 = row.get("attempts")?;
    let state: String = row.get("state")?;
    Ok((|| {
        Ok(OutgoingMessage {
            client_id: client_id.parse().map_err(corrupt)?,
            room: RoomId::new(room).map_err(corrupt)?,
            body,
            reply_to: reply_to.map(|s| s.max(0) as Seq),
            queued_at,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            state: serde_json::from_str(&state).map_err(corrupt)?,
        })
    })())
}

impl Store {
    /// Adds a message if the number of unsent (queued, sending or failed) messages is below
    /// `capacity`; answers false when full. Check and insert are one change. Once committed
    /// the message survives a crash of the process and the flusher may send it; started
    /// with [`Call::start_durable`], the answer waits until it survives a power cut too. A
    /// `then` runs once the row is committed but before any later call's, so the
    /// application hears of the message (`Queued`) before the flusher can send it
    /// (`Sending`).
    pub(crate) fn insert(&self, message: OutgoingMessage, capacity: usize) -> Call<'_, bool> {
        self.write(move |conn| insert_within_capacity(conn, &message, capacity))
    }

    /// How many messages are unsent (queued, sending or failed).
    pub(crate) fn unsent_count(&self) -> Call<'_, usize> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached(concat!("SELECT COUNT(*) FROM outbox WHERE ", unsent!()))?
                .query_row([], |row| row.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// Removes every acknowledged message (sent, delivered, read); answers which.
    pub(crate) fn prune_acknowledged(&self) -> Call<'_, Vec<ClientId>> {
        self.write(|conn| {
            let mut stmt = conn.prepare_cached(
                "DELETE FROM outbox WHERE kind IN ('sent', 'delivered', 'read') RETURNING client_id",
            )?;
            let ids = stmt.query_map([], |row| row.get::<_, String>(0))?;
            let mut pruned = Vec::new();
            for id in ids {
                match id?.parse::<ClientId>() {
                    Ok(id) => pruned.push(id),
                    Err(_) => tracing::warn!("a pruned outbox row cannot be read"),
                }
            }
            Ok(pruned)
        })
    }

    /// Moves acknowledged messages on as receipts say (`Delivered` from `Sent`, `Read` from
    /// `Sent` or `Delivered`), never back and never twice; answers, for each change, whether
    /// it was made.
    pub(crate) fn advance_receipts(
        &self,
        changes: Vec<(ClientId, MessageState)>,
    ) -> Call<'_, Vec<bool>> {
        self.write(move |conn| set_states_where(conn, RECEIPT_MOVES, &changes))
    }

    /// The oldest message still to send (queued or sending), in queue order.
    #[cfg(test)]
    pub(crate) fn next_pending(&self) -> Result<Option<OutgoingMessage>, StoreError> {
        Ok(self.pending_head(1).wait()?.into_iter().next())
    }

    /// The `limit` oldest messages still to send (queued or sending), in queue order.
    #[cfg(test)]
    pub(crate) fn pending_head(&self, limit: usize) -> Call<'_, Vec<OutgoingMessage>> {
        self.read(move |conn| pending_head(conn, limit))
    }

    /// Takes the head of the queue for the next request, in one change: reads the `limit`
    /// oldest messages still to send and, in order, as `pick` says of each, fails it, hands
    /// it to the server (`Sending`, with its next attempt), or stops there.
    pub(crate) fn claim_head(
        &self,
        limit: usize,
        pick: impl FnMut(&OutgoingMessage) -> Pick + Send + 'static,
    ) -> Call<'_, Claimed> {
        self.write(move |conn| claim_head(conn, limit, pick))
    }

    /// One message.
    pub(crate) fn get(&self, id: ClientId) -> Call<'_, Option<OutgoingMessage>> {
        self.read(move |conn| get(conn, id))
    }

    /// Every message in the outbox, in queue order.
    pub(crate) fn list(&self) -> Call<'_, Vec<OutgoingMessage>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT * FROM outbox ORDER BY position")?;
            let rows = stmt.query_map([], row_to_message)?;
            rows.map(|row| row?).collect()
        })
    }

    /// Every acknowledged message not yet read (`Sent` or `Delivered`), in queue order.
    pub(crate) fn awaiting_receipts(&self) -> Call<'_, Vec<OutgoingMessage>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT * FROM outbox WHERE kind IN ('sent', 'delivered') ORDER BY position",
            )?;
            let rows = stmt.query_map([], row_to_message)?;
            rows.map(|row| row?).collect()
        })
    }

    /// The acknowledged messages of `room` that the watermarks `delivered` and `read` move
    /// on, in `seq` order: `Sent` or `Delivered` at or below `read`, and `Sent` above it
    /// and at or below `delivered`. Each half walks a partial index of the rows waiting for that receipt
    /// from the room's lowest `seq`, and every row it reads moves, so the cost is what
    /// moves, not what waits. Used for a room with more messages waiting than the client
    /// follows in memory.
    pub(crate) fn receipt_moves_in(
        &self,
        room: RoomId,
        delivered: Seq,
        read: Seq,
    ) -> Call<'_, Vec<OutgoingMessage>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(MOVED_BY_RECEIPTS)?;
            let rows = stmt.query_map(
                params![room.as_str(), seq_to_sql(delivered), seq_to_sql(read)],
                row_to_message,
            )?;
            rows.map(|row| row?).collect()
        })
    }

    /// Sets the state of several messages (a request's outcome; one no longer in the
    /// outbox is skipped), then (when `claim` says how) [`Store::claim_head`], in one
    /// call: the outcome of a request and the head of the queue for the next one.
    pub(crate) fn settle_and_claim(
        &self,
        changes: Vec<(ClientId, MessageState)>,
        claim: Option<ClaimNext>,
    ) -> Call<'_, (Vec<bool>, Option<Claimed>)> {
        self.write(move |conn| {
            let present = set_states(conn, &changes)?;
            let Some((limit, pick)) = claim else {
                return Ok((present, None));
            };
            // The outcome stands whatever the claim meets (a row it cannot read): the claim
            // is taken back alone, and the flusher's next claim of its own reports it.
            conn.prepare_cached("SAVEPOINT claim")?.execute([])?;
            match claim_head(conn, limit, pick) {
                Ok(claimed) => {
                    conn.prepare_cached("RELEASE claim")?.execute([])?;
                    Ok((present, Some(claimed)))
                }
                Err(err) => {
                    tracing::debug!(error = %err, "the next head of the queue could not be taken");
                    conn.prepare_cached("ROLLBACK TO claim")?.execute([])?;
                    conn.prepare_cached("RELEASE claim")?.execute([])?;
                    Ok((present, None))
                }
            }
        })
    }

    /// Sets a message's state (and attempt count, when given). Answers false if the message
    /// is not in the outbox. With an attempt count (the flusher handing it to the server)
    /// only a message still to send is changed.
    #[cfg(test)]
    pub(crate) fn set_state(
        &self,
        id: ClientId,
        state: MessageState,
        attempts: Option<u32>,
    ) -> Call<'_, bool> {
        self.write(move |conn| set_state(conn, id, &state, attempts))
    }

    /// Fails every queued message never handed to the server and queued before `cutoff`
    /// (ms since the epoch), in one statement; answers them.
    pub(crate) fn expire_unattempted(&self, cutoff: i64) -> Call<'_, Vec<(ClientId, RoomId)>> {
        self.write(move |conn| {
            let failed = MessageState::Failed {
                reason: crate::FailureReason::Expired,
            };
            let json = serde_json::to_string(&failed).map_err(corrupt)?;
            let mut stmt = conn.prepare_cached(concat!(
                "UPDATE outbox SET kind = 'failed', state = ?1 WHERE ",
                unsent!(),
                " AND kind = 'queued' AND attempts = 0 AND queued_at < ?2 RETURNING client_id, room"
            ))?;
            let rows = stmt.query_map(params![json, cutoff], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut expired = Vec::new();
            for row in rows {
                let (id, room) = row?;
                // The update is committed for every row: one that cannot be read must not
                // keep the others from being announced.
                match (id.parse::<ClientId>(), RoomId::new(room)) {
                    (Ok(id), Ok(room)) => expired.push((id, room)),
                    _ => tracing::warn!("an expired outbox row cannot be read"),
                }
            }
            Ok(expired)
        })
    }

    /// The rooms of the messages still to send (queued or sending).
    pub(crate) fn pending_rooms(&self) -> Call<'_, Vec<RoomId>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT DISTINCT room FROM outbox WHERE ",
                unsent!(),
                " AND kind != 'failed'"
            ))?;
            let rooms = stmt.query_map([], |row| row.get::<_, String>(0))?;
            rooms
                .map(|room| RoomId::new(room?).map_err(corrupt))
                .collect()
        })
    }

    /// Removes a message unless it is on the wire (`Sending`), in one statement, so the
    /// flusher cannot pick it up between a check and the delete. Answers `Ok(())` if it
    /// was removed, else the message as it is (`None` if it is not there).
    pub(crate) fn delete_unless_sending(
        &self,
        id: ClientId,
    ) -> Call<'_, Result<(), Option<OutgoingMessage>>> {
        self.write(move |conn| {
            let removed = conn.execute(
                "DELETE FROM outbox WHERE client_id = ?1 AND kind != 'sending'",
                params![id.to_string()],
            )? > 0;
            if removed {
                return Ok(Ok(()));
            }
            Ok(Err(get(conn, id)?))
        })
    }

    /// Puts a failed message back at the end of the queue (behind messages queued
    /// meanwhile), in one statement: a crash leaves it either failed or queued, never gone.
    /// Answers the message as queued again, or as it is if it was not failed (`None` if it
    /// is not there).
    pub(crate) fn requeue_failed(
        &self,
        id: ClientId,
        queued_at: i64,
    ) -> Call<'_, Result<OutgoingMessage, Option<OutgoingMessage>>> {
        self.write(move |conn| {
            let queued = serde_json::to_string(&MessageState::Queued).map_err(corrupt)?;
            let changed = conn.execute(
                "UPDATE outbox SET position = (SELECT MAX(position) + 1 FROM outbox),
                    kind = 'queued', state = ?2, queued_at = ?3
                 WHERE client_id = ?1 AND kind = 'failed'",
                params![id.to_string(), queued, queued_at],
            )?;
            let message = get(conn, id)?;
            Ok(match message {
                Some(message) if changed > 0 => Ok(message),
                other => Err(other),
            })
        })
    }
}

/// What [`Store::claim_head`] does with a message of the head of the queue.
pub(crate) enum Pick {
    /// Fails it, with this state.
    Fail(MessageState),
    /// Hands it to the server.
    Send,
    /// Leaves it and the rest of the queue as they are.
    Stop,
}

/// How to take the head of the queue in [`Store::settle_and_claim`]: at most this many
/// messages, each as the pick says.
pub(crate) type ClaimNext = (usize, Box<dyn FnMut(&OutgoingMessage) -> Pick + Send>);

/// What [`Store::claim_head`] did.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    /// Nothing was left to send.
    pub(crate) empty: bool,
    /// The messages it failed, as they now are.
    pub(crate) failed: Vec<OutgoingMessage>,
    /// The messages it handed to the server, in queue order, as they now are.
    pub(crate) sending: Vec<OutgoingMessage>,
}

/// Any change of state.
const ANY_MOVE: &str = "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4 WHERE client_id = ?1";

/// Receipts' changes only: forward, and once.
const RECEIPT_MOVES: &str = "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4 WHERE client_id = ?1
     AND (kind = 'sent' OR (kind = 'delivered' AND ?2 = 'read'))";

fn set_states(
    conn: &rusqlite::Connection,
    changes: &[(ClientId, MessageState)],
) -> Result<Vec<bool>, StoreError> {
    set_states_where(conn, ANY_MOVE, changes)
}

/// Runs `update` (parameters: id, kind, state, seq) for each change; says which changed.
fn set_states_where(
    conn: &rusqlite::Connection,
    update: &str,
    changes: &[(ClientId, MessageState)],
) -> Result<Vec<bool>, StoreError> {
    let mut stmt = conn.prepare_cached(update)?;
    let mut changed = Vec::with_capacity(changes.len());
    for (id, state) in changes {
        let json = serde_json::to_string(state).map_err(corrupt)?;
        let rows = stmt.execute(params![
            id.to_string(),
            state.name(),
            json,
            state.seq().map(seq_to_sql)
        ])?;
        changed.push(rows > 0);
    }
    Ok(changed)
}

fn claim_head(
    conn: &rusqlite::Connection,
    limit: usize,
    mut pick: impl FnMut(&OutgoingMessage) -> Pick,
) -> Result<Claimed, StoreError> {
    let head = pending_head(conn, limit)?;
    let mut claimed = Claimed {
        empty: head.is_empty(),
        ..Claimed::default()
    };
    for mut message in head {
        match pick(&message) {
            Pick::Fail(state) => {
                if set_state(conn, message.client_id, &state, None)? {
                    message.state = state;
                    claimed.failed.push(message);
                }
            }
            Pick::Send => {
                message.attempts = message.attempts.saturating_add(1);
                message.state = MessageState::Sending {
                    attempt: message.attempts,
                };
                let attempts = Some(message.attempts);
                if set_state(conn, message.client_id, &message.state, attempts)? {
                    claimed.sending.push(message);
                }
            }
            Pick::Stop => break,
        }
    }
    Ok(claimed)
}

fn pending_head(
    conn: &rusqlite::Connection,
    limit: usize,
) -> Result<Vec<OutgoingMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT * FROM outbox WHERE ",
        unsent!(),
        " AND kind != 'failed' ORDER BY position LIMIT ?1"
    ))?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], row_to_message)?;
    rows.map(|row| row?).collect()
}

/// Sets a message's state (and attempt count, when given); false if it is not in the
/// outbox. With an attempt count (the flusher handing it to the server) only a message
/// still to send is changed: one that expired or was discarded since it was read stays as
/// it is, and is not sent.
fn set_state(
    conn: &rusqlite::Connection,
    id: ClientId,
    state: &MessageState,
    attempts: Option<u32>,
) -> Result<bool, StoreError> {
    let json = serde_json::to_string(state).map_err(corrupt)?;
    let seq = state.seq().map(seq_to_sql);
    let changed = match attempts {
        Some(n) => conn
            .prepare_cached(
                "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4, attempts = ?5
                 WHERE client_id = ?1 AND kind IN ('queued', 'sending')",
            )?
            .execute(params![id.to_string(), state.name(), json, seq, n])?,
        None => conn
            .prepare_cached(
                "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4 WHERE client_id = ?1",
            )?
            .execute(params![id.to_string(), state.name(), json, seq])?,
    };
    Ok(changed > 0)
}

fn get(conn: &rusqlite::Connection, id: ClientId) -> Result<Option<OutgoingMessage>, StoreError> {
    let row = conn
        .prepare_cached("SELECT * FROM outbox WHERE client_id = ?1")?
        .query_row(params![id.to_string()], row_to_message)
        .optional()?;
    row.transpose()
}

fn insert_within_capacity(
    conn: &rusqlite::Connection,
    message: &OutgoingMessage,
    capacity: usize,
) -> Result<bool, StoreError> {
    let unsent: i64 = conn
        .prepare_cached(concat!("SELECT COUNT(*) FROM outbox WHERE ", unsent!()))?
        .query_row([], |row| row.get(0))?;
    if usize::try_from(unsent).unwrap_or(usize::MAX) >= capacity {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO outbox (client_id, room, body, reply_to, queued_at, attempts, kind, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        message.client_id.to_string(),
        message.room.as_str(),
        message.body,
        message.reply_to.map(seq_to_sql),
        message.queued_at,
        message.attempts,
        message.state.name(),
        serde_json::to_string(&message.state).map_err(corrupt)?,
    ])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of a receipt in a room past the tracking limit: each half walks its
    /// partial index within the room (what moves), none reads the whole outbox.
    #[test]
    fn receipts_past_the_tracking_limit_read_only_the_rows_they_move() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("migrates");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {MOVED_BY_RECEIPTS}"))
            .expect("plan");
        let details: Vec<String> = stmt
            .query_map(params!["r", 10, 5], |row| row.get::<_, String>(3))
            .expect("plan rows")
            .map(|row| row.expect("detail"))
            .collect();
        let plan = details.join("\n");
        assert!(!plan.contains("SCAN outbox"), "{plan}");
        assert!(
            plan.contains("USING INDEX outbox_awaiting_read (room=? AND seq<?)"),
            "{plan}"
        );
        assert!(
            plan.contains("USING INDEX outbox_awaiting_delivery (room=? AND seq>? AND seq<?)"),
            "{plan}"
        );
    }
}

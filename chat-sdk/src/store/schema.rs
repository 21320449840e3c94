//! The store's tables and indexes.

pub(super) const SCHEMA: &str = concat!(
    "
-- `position` is the queue order. Without AUTOINCREMENT a new row takes the largest
-- position plus one, which keeps the order of the rows present and spares a write to
-- sqlite_sequence on every insert (files created with AUTOINCREMENT keep it, harmlessly).
CREATE TABLE IF NOT EXISTS outbox (
    position   INTEGER PRIMARY KEY,
    client_id  TEXT NOT NULL UNIQUE,
    room       TEXT NOT NULL,
    body       TEXT NOT NULL,
    reply_to   INTEGER,
    queued_at  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    seq        INTEGER
);
-- Only unsent messages are indexed: a message leaves the index once acknowledged, so
-- `Delivered` and `Read` rewrite only its row. Receipts are matched in memory.
DROP INDEX IF EXISTS outbox_kind;
DROP INDEX IF EXISTS outbox_room_seq;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (position, kind) WHERE ",
    unsent!(),
    ";
CREATE TABLE IF NOT EXISTS rooms (
    room      TEXT PRIMARY KEY,
    joined    INTEGER NOT NULL,
    last_seq  INTEGER
);
"
);

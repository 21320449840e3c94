//! The store's tables and indexes, versioned: each migration moves a file one version up,
//! and the version reached is recorded in SQLite's `user_version`.
//!
//! Version 1 is written so that it also upgrades the files of the releases before
//! versioning (their `user_version` is 0, like a new file's): every statement is
//! idempotent. A file of a newer version than this SDK knows is refused
//! ([`StoreError::SchemaTooNew`]) rather than misread.

use rusqlite::Connection;

use crate::error::StoreError;

/// Version 1: the outbox and the rooms.
const VERSION_1: &str = concat!(
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

/// Version 2: the messages waiting for a receipt, by room and `seq`, one partial index per
/// receipt a message waits for. Memory follows at most `receipt_tracking` of them per room;
/// past it (a room where nobody reads) a receipt finds the rows it moves through these
/// indexes instead of reading every acknowledged message of the room.
const VERSION_2: &str = "
CREATE INDEX IF NOT EXISTS outbox_awaiting_delivery ON outbox (room, seq) WHERE kind = 'sent';
CREATE INDEX IF NOT EXISTS outbox_awaiting_read ON outbox (room, seq)
    WHERE kind IN ('sent', 'delivered');
";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
const MIGRATIONS: &[&str] = &[VERSION_1, VERSION_2];

/// The newest version this SDK reads.
fn supported() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Brings the file up to the newest schema, one transaction per migration.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current = check(conn)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The file's version, refused when it is newer than this SDK reads.
pub(super) fn check(conn: &Connection) -> Result<i64, StoreError> {
    let found = version(conn)?;
    if found > supported() {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: supported(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_reaches_the_newest_version_and_a_newer_one_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrates");
        assert_eq!(version(&conn).expect("version"), supported());
        migrate(&mut conn).expect("a second run changes nothing");
        conn.pragma_update(None, "user_version", supported() + 1)
            .expect("set");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found, .. }) if found == supported() + 1
        ));
    }
}

//! The SQLite schema and its migrations, applied in order and recorded in `user_version`.

use rusqlite::Connection;

use crate::error::StoreError;

/// Each entry moves the schema one version up.
const MIGRATIONS: &[&str] = &[
    // 1: rooms, memberships with watermarks, messages, users.
    "
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE members (
        room TEXT NOT NULL REFERENCES rooms(id),
        user TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        delivered_seq INTEGER NOT NULL DEFAULT 0,
        read_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room, user)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_user ON members(user, room);
    CREATE TABLE messages (
        room TEXT NOT NULL REFERENCES rooms(id),
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        client_id TEXT NOT NULL,
        body TEXT NOT NULL,
        ts INTEGER NOT NULL,
        reply_to INTEGER,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_idempotency ON messages(sender, client_id);
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        last_seen INTEGER
    ) WITHOUT ROWID;
    ",
];

/// Brings the database up to the newest schema.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

//! The PostgreSQL schema and its migrations, applied in order and recorded in
//! `chat_schema_version`. Several servers may start at once on one database: an advisory lock
//! taken in the migrating transaction makes them take turns, so each migration runs once.

use deadpool_postgres::Object;

use crate::error::StoreError;

/// Each entry moves the schema one version up.
const MIGRATIONS: &[&str] = &[
    // 1: rooms, memberships with watermarks, messages, users (the SQLite schema's version 1).
    "
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE members (
        room TEXT NOT NULL REFERENCES rooms(id),
        user_id TEXT NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        delivered_seq BIGINT NOT NULL DEFAULT 0,
        read_seq BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (room, user_id)
    );
    CREATE INDEX members_by_user ON members(user_id, room);
    CREATE TABLE messages (
        room TEXT NOT NULL REFERENCES rooms(id),
        seq BIGINT NOT NULL,
        sender TEXT NOT NULL,
        client_id TEXT NOT NULL,
        body TEXT NOT NULL,
        ts BIGINT NOT NULL,
        reply_to BIGINT,
        PRIMARY KEY (room, seq)
    );
    CREATE UNIQUE INDEX messages_idempotency ON messages(sender, client_id);
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        last_seen BIGINT
    );
    ",
];

/// A number no other application on the database is likely to lock.
const MIGRATION_LOCK: i64 = 0x6368_6174_5f6d_6967; // "chat_mig"

/// Brings the database up to the newest schema.
pub(super) async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS chat_schema_version (version BIGINT NOT NULL)")
        .await?;
    let current: i64 = tx
        .query_opt("SELECT version FROM chat_schema_version", &[])
        .await?
        .map_or(0, |row| row.get(0));
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for sql in MIGRATIONS.iter().skip(current as usize) {
        tx.batch_execute(sql).await?;
    }
    tx.execute("DELETE FROM chat_schema_version", &[]).await?;
    tx.execute(
        "INSERT INTO chat_schema_version (version) VALUES ($1)",
        &[&supported],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

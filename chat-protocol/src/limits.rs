//! The protocol's default limits, shared so both sides agree on them.
//!
//! The server may be configured with other values; these are the defaults docs/protocol.md gives.

/// Most Unicode scalar values a message body may hold by default.
pub const MAX_BODY_CHARS: usize = 4_000;
/// Most characters in a user or room id.
pub const MAX_ID_CHARS: usize = 64;
/// Largest Socket.IO packet the server accepts, in bytes.
pub const MAX_PACKET_BYTES: usize = 64 * 1024;
/// Default number of messages one `message:sync` returns.
pub const DEFAULT_SYNC_LIMIT: u32 = 100;
/// Most messages one `message:sync` may ask for.
pub const MAX_SYNC_LIMIT: u32 = 500;
/// Most users one `presence:get` may ask about.
pub const MAX_PRESENCE_USERS: usize = 100;
/// Seconds after which the server expires a typing indicator that was not refreshed.
pub const TYPING_EXPIRY_SECS: u64 = 6;
/// Seconds a client waits between two `typing:start` for the same room.
pub const TYPING_THROTTLE_SECS: u64 = 3;
/// Seconds a user stays online after its last socket closes.
pub const PRESENCE_GRACE_SECS: u64 = 5;
/// Most rooms one `room:resume` may name.
pub const MAX_RESUME_ROOMS: usize = 1_000;
/// Default number of missed messages `room:resume` returns per room.
pub const DEFAULT_RESUME_LIMIT: u32 = 100;
/// Most missed messages one `room:resume` answer carries over all its rooms; rooms past the
/// budget answer `has_more` and are caught up with `message:sync`.
pub const MAX_RESUME_MESSAGES: usize = 1_000;
/// How many rooms of a `room:resume` cost one request of the rate limit.
pub const RESUME_ROOMS_PER_REQUEST: usize = 100;
/// Most messages one `message:send_batch` may carry.
pub const MAX_SEND_BATCH: usize = 100;

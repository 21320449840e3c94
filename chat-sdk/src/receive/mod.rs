//! The way in: what the server sends, handed to the application exactly once and in order.
//!
//! - [`receive_loop`]: the receive loop of one connection: re-join, catch up, hand over
//!   live events;
//! - [`catch_up`]: join, `message:sync` and `receipt:delivered` for one room;
//! - [`rejoin`]: re-joining and catching up a set of rooms, by [`resume`] where the
//!   server has `room:resume`, else room by room;
//! - [`resume`]: every room re-joined and caught up with `room:resume`;
//! - [`patience`]: retrying what the server refuses for now;
//! - [`rooms`]: what the client knows about each room (position, members, receipts);
//! - [`positions`]: the resume position of each room, moved when the application takes a
//!   message;
//! - [`events`]: the event stream the application takes them from.

pub(crate) mod catch_up;
pub(crate) mod events;
pub(crate) mod patience;
pub(crate) mod positions;
pub(crate) mod receive_loop;
pub(crate) mod rejoin;
pub(crate) mod resume;
pub(crate) mod rooms;

pub use events::{ChatEvent, Events};

//! Wire types of the chat protocol, version 1.
//!
//! This crate is the only thing the SDK and the server share. It holds every request,
//! result, server event and error code of the protocol as Rust types, and the validated
//! newtypes (ids, message bodies) whose deserialization rejects bad values, so a value of
//! these types is known to be well-formed wherever it appears. It does no I/O.
//!
//! ```
//! use chat_protocol::{requests::SendMessage, Body, ClientId, RoomId};
//!
//! let request = SendMessage {
//!     room: RoomId::new("general").unwrap(),
//!     client_id: ClientId::new_random(),
//!     body: Body::new("hello").unwrap(),
//!     reply_to: None,
//! };
//! let json = serde_json::to_value(&request).unwrap();
//! assert_eq!(json["room"], "general");
//! ```
#![warn(missing_docs)]

pub mod ack;
pub mod batch;
pub mod body;
pub mod error;
pub mod events;
pub mod ids;
pub mod limits;
pub mod requests;
pub mod results;

pub use ack::{decode_ack, AckError, ErrorBody};
pub use body::Body;
pub use error::{decode_request, DecodeError, ErrorCode, ValidationError};
pub use events::{Message, Presence, ReceiptUpdate, RoomMember, TypingUpdate};
pub use ids::{ClientId, MessageId, RoomId, Seq, Timestamp, UserId};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

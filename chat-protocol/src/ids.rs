//! Validated identifiers: users, rooms, idempotency keys and server-assigned message ids.
//!
//! A [`UserId`] or [`RoomId`] is 1–64 characters of `[A-Za-z0-9_.-]`; deserializing anything
//! else fails, so a handler never sees a malformed id.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;
use crate::limits::MAX_ID_CHARS;

/// A room's sequence number: 1, 2, 3, … with no gaps, assigned by the server.
pub type Seq = u64;

/// Milliseconds since the Unix epoch, as set by the server.
pub type Timestamp = i64;

fn validate_id(kind: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.chars().count() > MAX_ID_CHARS {
        return Err(ValidationError::IdLength {
            kind,
            max: MAX_ID_CHARS,
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::IdCharacter { kind, found: bad });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                validate_id($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A user id: 1–64 characters of `[A-Za-z0-9_.-]`; the `sub` of the user's token.
    UserId,
    "user id"
);
string_id!(
    /// A room id: 1–64 characters of `[A-Za-z0-9_.-]`.
    RoomId,
    "room id"
);

/// The sender's idempotency key for a message: a UUID, unique per sender for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(Uuid);

impl ClientId {
    /// A fresh random (version 4) client id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl std::str::FromStr for ClientId {
    type Err = ValidationError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| ValidationError::ClientId)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0.hyphenated().to_string()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A message's server-assigned id: opaque to clients.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_charset() {
        assert!(UserId::new("alice_1.2-x").is_ok());
        assert!(RoomId::new("a".repeat(64)).is_ok());
    }

    #[test]
    fn ids_reject_empty_long_and_foreign_characters() {
        assert!(UserId::new("").is_err());
        assert!(RoomId::new("a".repeat(65)).is_err());
        assert!(RoomId::new("with space").is_err());
        assert!(UserId::new("é").is_err());
        assert!(serde_json::from_str::<RoomId>("\"a/b\"").is_err());
    }

    #[test]
    fn client_id_must_be_a_uuid() {
        assert!(serde_json::from_str::<ClientId>("\"not-a-uuid\"").is_err());
        let id = ClientId::new_random();
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(serde_json::from_str::<ClientId>(&json).expect("parses"), id);
    }
}

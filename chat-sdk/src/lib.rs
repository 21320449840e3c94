//! The chat client SDK.
#![warn(missing_docs)]

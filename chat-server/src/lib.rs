//! The reference chat server.
#![warn(missing_docs)]

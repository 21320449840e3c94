//! The link to the server: making it, watching it, and making it again.
//!
//! - [`supervisor`]: the one loop that owns (re)connection;
//! - [`health`]: the watchdog that notices a silent link;
//! - [`state`]: the connection state an application observes.

pub(crate) mod health;
pub(crate) mod state;
pub(crate) mod supervisor;

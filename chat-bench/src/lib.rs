//! `chat-bench`: delivery latency and message loss across forced reconnects.
//!
//! The binary is thin; everything is here so tests can run a benchmark in-process:
//! [`Opts`] are the command-line options, [`run`] measures, and [`report`] formats.
//!
//! How it measures (see BENCHMARKS.md): open-loop load (each message is due at a fixed time
//! and carries that time, so latency is measured from when it *should* have left —
//! coordinated omission corrected); faults forced on schedule; after sending stops, the
//! bench waits until every acked message reached every member of its room, then counts
//! lost, duplicated, reordered and unexpected deliveries per receiver, as Jepsen's queue
//! checker does.
#![warn(missing_docs)]

pub mod accounting;
pub mod child;
pub mod cpu;
pub mod error;
pub mod faults;
pub mod flooder;
pub mod idle;
pub mod live;
pub mod many_rooms;
pub mod opts;
pub mod plot;
pub mod progress;
pub mod raw;
pub mod report;
pub mod resources;
pub mod run;
pub mod schedule;
pub mod sdk;
pub mod stamp;
pub mod sweep;

pub use error::BenchError;
pub use opts::Opts;
pub use run::run;

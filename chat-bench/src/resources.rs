//! Memory and open files over time, for the soak: the bench process (its clients) and the
//! servers it started, sampled from `/proc` (Linux) at a fixed interval while the load runs.
//! A leak shows as a curve that keeps rising after the warm-up.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::child::ChildServer;

/// One sample of the processes' resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ResourceSample {
    /// Seconds since sending started.
    pub elapsed_s: f64,
    /// Resident memory of the bench process, KiB.
    pub bench_rss_kib: Option<u64>,
    /// Open file descriptors of the bench process.
    pub bench_fds: Option<u64>,
    /// Resident memory of the servers the bench started, summed, KiB (`None` for an
    /// external server).
    pub server_rss_kib: Option<u64>,
    /// Open file descriptors of those servers, summed.
    pub server_fds: Option<u64>,
}

/// `VmRSS` of `/proc/<pid>/status` (of this process for `None`), in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    parse_rss_kib(&status)
}

/// Entries of `/proc/<pid>/fd` (of this process for `None`).
pub fn open_fds(pid: Option<u32>) -> Option<u64> {
    Some(std::fs::read_dir(proc_path(pid, "fd")).ok()?.count() as u64)
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples every `every` from `start` until `finished` turns true, and once more then.
pub async fn sample(
    every: Duration,
    servers: Vec<Arc<Mutex<ChildServer>>>,
    start: Instant,
    mut finished: watch::Receiver<bool>,
) -> Vec<ResourceSample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval_at(start, every);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = finished.wait_for(|done| *done) => true,
        };
        samples.push(take(&servers, start).await);
        if last {
            return samples;
        }
    }
}

async fn take(servers: &[Arc<Mutex<ChildServer>>], start: Instant) -> ResourceSample {
    let mut pids = Vec::new();
    for server in servers {
        pids.extend(server.lock().await.pid());
    }
    let sum = |read: fn(Option<u32>) -> Option<u64>| -> Option<u64> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|pid| read(Some(*pid))).sum()
    };
    ResourceSample {
        elapsed_s: start.elapsed().as_secs_f64(),
        bench_rss_kib: rss_kib(None),
        bench_fds: open_fds(None),
        server_rss_kib: sum(rss_kib),
        server_fds: sum(open_fds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_the_status_file() {
        let status = "Name:\tchat-bench\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_rss_kib(status), Some(12_345));
        assert_eq!(parse_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_memory_and_open_files() {
        assert!(rss_kib(None).is_some_and(|kib| kib > 0));
        assert!(open_fds(None).is_some_and(|n| n >= 3));
    }
}

//! The open-loop send schedule: each client sends at fixed intervals from its own phase,
//! whatever the latency, so a slow system cannot slow the load down (no coordinated omission).

use std::time::Duration;

use tokio::time::Instant;

/// When one client sends.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The run's start.
    pub start: Instant,
    /// When sending stops.
    pub end: Instant,
    /// This client's offset from the start.
    pub phase: Duration,
    /// Time between two of its messages.
    pub interval: Duration,
}

impl Schedule {
    /// When message `number` is due, or `None` past the end.
    pub fn due(&self, number: u64) -> Option<Instant> {
        let offset = self.phase + self.interval.mul_f64(number as f64);
        let at = self.start + offset;
        (at < self.end).then_some(at)
    }
}

/// Resolves once the run's finish flag is set (or its sender is gone).
pub async fn finished(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|done| *done).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_due_on_a_fixed_grid_until_the_end() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            end: start + Duration::from_millis(100),
            phase: Duration::from_millis(5),
            interval: Duration::from_millis(20),
        };
        assert_eq!(schedule.due(0), Some(start + Duration::from_millis(5)));
        assert_eq!(schedule.due(4), Some(start + Duration::from_millis(85)));
        assert_eq!(schedule.due(5), None);
    }
}

//! What each benchmark message carries: who sent it, its number, and when it was meant to
//! leave and did leave, so a receiver can compute latency from the body alone.

/// Prefix of every benchmark body.
const PREFIX: &str = "bench";

/// The identity and timing of one benchmark message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sending client's index.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub number: u64,
    /// When the schedule wanted it sent, µs since the run's epoch.
    pub intended_us: u64,
    /// When `send` was called, µs since the run's epoch.
    pub actual_us: u64,
}

impl Stamp {
    /// The message body.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX} {} {} {} {}",
            self.sender, self.number, self.intended_us, self.actual_us
        )
    }

    /// Reads a body; `None` when it is not a benchmark message.
    pub fn decode(body: &str) -> Option<Self> {
        let mut parts = body.strip_prefix(PREFIX)?.split_ascii_whitespace();
        let stamp = Self {
            sender: parts.next()?.parse().ok()?,
            number: parts.next()?.parse().ok()?,
            intended_us: parts.next()?.parse().ok()?,
            actual_us: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bodies() {
        let stamp = Stamp {
            sender: 3,
            number: 99,
            intended_us: 1_000,
            actual_us: 1_250,
        };
        assert_eq!(Stamp::decode(&stamp.encode()), Some(stamp));
        assert_eq!(Stamp::decode("hello"), None);
        assert_eq!(Stamp::decode("bench 1 2 3"), None);
        assert_eq!(Stamp::decode("bench 1 2 3 4 5"), None);
    }
}

//! A slow, jittery link, made in user space (the kernel here has no `netem`): each
//! direction of a relayed connection delays every chunk it forwards by a base delay plus
//! random jitter, caps the bandwidth, and stalls now and then — a mobile user's link
//! rather than a data centre's. Bytes keep their order, as TCP keeps it: a chunk is never
//! released before the one read before it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a relayed link behaves, in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkShape {
    /// Added to every chunk.
    pub delay: Duration,
    /// Each chunk's delay varies by up to this much either way (never below zero, never
    /// reordering).
    pub jitter: Duration,
    /// Bytes per second at most, if capped.
    pub bytes_per_second: Option<u64>,
    /// On average this long between stalls, if the link stalls.
    pub stall_every: Option<Duration>,
    /// How long a stall holds everything.
    pub stall_for: Duration,
}

/// Why a link description could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bad link description {text:?}: {why} (use e.g. \"delay 30ms jitter 10ms rate 2mbit stall 300ms every 10s\")")]
pub struct LinkShapeError {
    text: String,
    why: String,
}

impl std::str::FromStr for LinkShape {
    type Err = LinkShapeError;

    /// Reads `delay D`, `jitter D`, `rate N(kbit|mbit|kbyte|mbyte)` and
    /// `stall D every D`, in any order; durations as `30ms`, `1s`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why: String| LinkShapeError {
            text: text.to_owned(),
            why,
        };
        let duration = |word: Option<&str>, what: &str| {
            let word = word.ok_or_else(|| fail(format!("{what} needs a value")))?;
            humantime::parse_duration(word).map_err(|e| fail(format!("{what} {word:?}: {e}")))
        };
        let mut shape = LinkShape::default();
        let mut words = text.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "delay" => shape.delay = duration(words.next(), "delay")?,
                "jitter" => shape.jitter = duration(words.next(), "jitter")?,
                "rate" => {
                    let value = words
                        .next()
                        .ok_or_else(|| fail("rate needs a value".into()))?;
                    shape.bytes_per_second = Some(bandwidth(value).ok_or_else(|| {
                        fail(format!("rate {value:?}: use e.g. 512kbit, 2mbit, 1mbyte"))
                    })?);
                }
                "stall" => {
                    shape.stall_for = duration(words.next(), "stall")?;
                    if words.next() != Some("every") {
                        return Err(fail("stall D needs `every D`".into()));
                    }
                    shape.stall_every = Some(duration(words.next(), "every")?);
                }
                other => return Err(fail(format!("unknown word {other:?}"))),
            }
        }
        Ok(shape)
    }
}

fn bandwidth(value: &str) -> Option<u64> {
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    let bytes = match unit {
        "kbit" => number * 1_000 / 8,
        "mbit" => number * 1_000_000 / 8,
        "kbyte" => number * 1_000,
        "mbyte" => number * 1_000_000,
        _ => return None,
    };
    (bytes > 0).then_some(bytes)
}

impl LinkShape {
    /// True when the link is shaped at all.
    pub fn is_shaped(&self) -> bool {
        *self != LinkShape::default()
    }
}

/// Copies `from` to `to` as the link `shape` would carry it, until `from` ends.
pub(crate) async fn shaped_copy<R, W>(
    mut from: R,
    mut to: W,
    shape: LinkShape,
    seed: u64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (chunks, mut released) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let read = async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut last = Instant::now();
        let mut next_stall = shape
            .stall_every
            .map(|every| Instant::now() + sample_gap(&mut rng, every));
        loop {
            let mut buffer = vec![0; 16 * 1024];
            let read = from.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buffer.truncate(read);
            let now = Instant::now();
            let mut at = now + jittered(&mut rng, shape.delay, shape.jitter);
            if let Some(rate) = shape.bytes_per_second {
                at = at.max(last + Duration::from_secs_f64(read as f64 / rate as f64));
            }
            if let (Some(stall_at), Some(every)) = (next_stall, shape.stall_every) {
                if at >= stall_at {
                    at = at.max(stall_at + shape.stall_for);
                    next_stall = Some(at + sample_gap(&mut rng, every));
                }
            }
            at = at.max(last);
            last = at;
            if chunks.send((at, buffer)).await.is_err() {
                return Ok(());
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = released.recv().await {
            tokio::time::sleep_until(at).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// `delay` plus up to `jitter` either way, never below zero.
fn jittered(rng: &mut StdRng, delay: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let spread = jitter.as_secs_f64();
    let offset = rng.random_range(-spread..=spread);
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

/// A gap between stalls: exponential with mean `every` (stalls come at random).
fn sample_gap(rng: &mut StdRng, every: Duration) -> Duration {
    let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64(-uniform.ln() * every.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_is_read_word_by_word() {
        let shape: LinkShape = "delay 30ms jitter 10ms rate 2mbit stall 300ms every 10s"
            .parse()
            .expect("parses");
        assert_eq!(shape.delay, Duration::from_millis(30));
        assert_eq!(shape.jitter, Duration::from_millis(10));
        assert_eq!(shape.bytes_per_second, Some(250_000));
        assert_eq!(shape.stall_for, Duration::from_millis(300));
        assert_eq!(shape.stall_every, Some(Duration::from_secs(10)));
        assert!("delay".parse::<LinkShape>().is_err());
        assert!("delay 30ms wobble 2".parse::<LinkShape>().is_err());
        assert!("rate 2furlongs".parse::<LinkShape>().is_err());
        assert!(!""
            .parse::<LinkShape>()
            .expect("empty is no shaping")
            .is_shaped());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_arrive_in_order_no_sooner_than_the_delay() {
        let shape = LinkShape {
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(10),
            ..LinkShape::default()
        };
        let (mut client, relay_in) = tokio::io::duplex(1 << 20);
        let (relay_out, mut server) = tokio::io::duplex(1 << 20);
        let copy = tokio::spawn(shaped_copy(relay_in, relay_out, shape, 7));
        let started = Instant::now();
        let sent: Vec<u8> = (0..200u32).flat_map(|i| i.to_be_bytes()).collect();
        for chunk in sent.chunks(40) {
            client.write_all(chunk).await.expect("write");
            tokio::task::yield_now().await;
        }
        drop(client);
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.expect("read");
        assert_eq!(received, sent, "every byte, in order");
        assert!(started.elapsed() >= Duration::from_millis(20), "delayed");
        copy.await.expect("task").expect("copied");
    }
}

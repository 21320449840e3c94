//! Closing connections on which the client has said nothing for too long.
//!
//! [`Silence`] wraps a connection's byte stream, whatever is on top of it (TLS, HTTP, a
//! WebSocket after the upgrade): when nothing has been read from the client for the idle
//! timeout, the next read fails with `TimedOut` and the connection closes. A live Socket.IO
//! client answers every Engine.IO ping, so it is never silent for longer than the ping
//! interval; a client that opened a connection and then stopped sending is.
//!
//! The timer is not reset on every read (which would cost a timer update per packet): the
//! last read is noted, and when the timer fires early it is moved to the real deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A byte stream that fails its reads once the peer has been silent for `timeout`.
#[derive(Debug)]
pub(crate) struct Silence<S> {
    inner: S,
    deadline: Pin<Box<Sleep>>,
    last_heard: Instant,
    timeout: Duration,
}

impl<S> Silence<S> {
    /// `inner`, closed after `timeout` without a byte from the peer.
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
            last_heard: now,
            timeout,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Silence<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_heard = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                while this.deadline.as_mut().poll(cx).is_ready() {
                    let due = this.last_heard + this.timeout;
                    if Instant::now() >= due {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the client sent nothing for {:?}", this.timeout),
                        )));
                    }
                    this.deadline.as_mut().reset(due);
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Silence<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_cut_off_after_the_timeout_and_a_talking_one_is_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Silence::new(server, Duration::from_secs(10));
        let mut client = client;
        let started = Instant::now();
        let mut byte = [0u8; 1];
        // Talking every 6 s keeps the connection open past the 10 s timeout.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"x").await.expect("written");
            server.read_exact(&mut byte).await.expect("read");
        }
        let error = server.read(&mut byte).await.expect_err("silence ends it");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(28));
    }
}

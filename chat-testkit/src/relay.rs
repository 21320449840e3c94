//! A loopback TCP relay that forwards, resets or blackholes connections.
//!
//! Clients connect to [`Relay::addr`]; each accepted connection is paired with a fresh
//! connection to the upstream address and bytes are copied both ways. On command the relay
//! resets every current connection (`SO_LINGER` 0 then close, so the peer sees an RST) or
//! blackholes them (stops copying and keeps both sockets open, so only a heartbeat or an
//! ack timeout can notice), and can forward them again (a reader that was only slow). New connections are forwarded normally either way, unless the
//! relay is told to refuse them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shape::{shaped_copy, LinkShape};

/// What to do with the connections that exist now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Forward,
    Reset,
    Blackhole,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    shape: LinkShape,
    connections: Mutex<Vec<watch::Sender<Command>>>,
    refuse: AtomicBool,
    blackhole_new: AtomicBool,
    accepted: AtomicUsize,
    attempts: AtomicUsize,
}

/// A fault-injecting TCP relay on `127.0.0.1`.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.reset_all();
    }
}

#[allow(deprecated)] // set_linger: zero linger never blocks, it sends an RST at once.
fn abort_with_rst(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn pump(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    shape: LinkShape,
    seed: u64,
    mut commands: watch::Receiver<Command>,
) {
    let Ok(mut upstream) = TcpStream::connect(upstream_addr).await else {
        abort_with_rst(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    loop {
        let command = *commands.borrow_and_update();
        match command {
            Command::Forward if shape.is_shaped() => {
                // Data in flight on the shaped link is dropped with it when a fault comes,
                // as a fault would drop it.
                let (client_in, client_out) = client.split();
                let (upstream_in, upstream_out) = upstream.split();
                let up = shaped_copy(client_in, upstream_out, shape, seed);
                let down = shaped_copy(upstream_in, client_out, shape, seed ^ 0x9e37_79b9);
                tokio::select! {
                    _ = async { tokio::try_join!(up, down) } => return,
                    changed = commands.changed() => if changed.is_err() { return },
                }
            }
            Command::Forward => {
                tokio::select! {
                    _ = copy_bidirectional(&mut client, &mut upstream) => return,
                    changed = commands.changed() => if changed.is_err() { return },
                }
            }
            Command::Reset => {
                abort_with_rst(&client);
                abort_with_rst(&upstream);
                return;
            }
            Command::Blackhole => {
                // Hold both sockets open and read nothing until told otherwise.
                if commands.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Relay {
    /// Starts a relay to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::start_shaped(upstream, LinkShape::default()).await
    }

    /// Starts a relay to `upstream` whose connections are carried over a link shaped as
    /// `shape` (each direction delayed, jittered, capped and stalled on its own).
    pub async fn start_shaped(upstream: SocketAddr, shape: LinkShape) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            shape,
            connections: Mutex::new(Vec::new()),
            refuse: AtomicBool::new(false),
            blackhole_new: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accept_shared.attempts.fetch_add(1, Ordering::Relaxed);
                if accept_shared.refuse.load(Ordering::Acquire) {
                    abort_with_rst(&stream);
                    continue;
                }
                accept_shared.accepted.fetch_add(1, Ordering::Relaxed);
                let first = if accept_shared.blackhole_new.load(Ordering::Acquire) {
                    Command::Blackhole
                } else {
                    Command::Forward
                };
                let (tx, rx) = watch::channel(first);
                if let Ok(mut connections) = accept_shared.connections.lock() {
                    connections.retain(|c| !c.is_closed());
                    connections.push(tx);
                }
                let seed = accept_shared.attempts.load(Ordering::Relaxed) as u64;
                tokio::spawn(pump(
                    stream,
                    accept_shared.upstream,
                    accept_shared.shape,
                    seed,
                    rx,
                ));
            }
        });
        Ok(Self {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` URL of [`Relay::addr`].
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many TCP connections clients opened to the relay, refused ones included.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::Relaxed)
    }

    /// While `on`, new connections are accepted but nothing is forwarded (a server that
    /// accepts TCP and then says nothing).
    pub fn blackhole_new(&self, on: bool) {
        self.shared.blackhole_new.store(on, Ordering::Release);
    }

    /// How many connections the relay has accepted (and forwarded) so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    fn broadcast(&self, command: Command) -> usize {
        let Ok(mut connections) = self.shared.connections.lock() else {
            return 0;
        };
        connections.retain(|c| !c.is_closed());
        for connection in connections.iter() {
            let _ = connection.send(command);
        }
        let count = connections.len();
        if command == Command::Reset {
            connections.clear();
        }
        count
    }

    /// Resets every current connection with an RST; returns how many.
    pub fn reset_all(&self) -> usize {
        self.broadcast(Command::Reset)
    }

    /// Stops forwarding on every current connection, silently; returns how many. The
    /// sockets stay open until [`Relay::reset_all`] or the relay is dropped.
    pub fn blackhole_all(&self) -> usize {
        self.broadcast(Command::Blackhole)
    }

    /// Forwards again on every current connection (after [`Relay::blackhole_all`]): what
    /// piled up while nothing was read flows on, as from a reader that was only slow.
    /// Returns how many.
    pub fn forward_all(&self) -> usize {
        self.broadcast(Command::Forward)
    }

    /// Refuses (resets) new connections while `refuse` is true, as if the server were down.
    pub fn refuse_new(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::Release);
    }
}

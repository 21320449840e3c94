//! The reference server as a child process the bench can kick, kill and start again.
//!
//! The child is this very program run with the hidden `serve-child` command (or any
//! executable given with `--server-exe` that speaks the same): it prints `listening on
//! <addr>` when ready, disconnects every socket when it reads `kick` on stdin, and shuts down
//! gracefully when stdin closes. SIGKILL is the `restart` fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::error::BenchError;

/// How long a started server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings the child is started with.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    /// The executable.
    pub exe: PathBuf,
    /// The SQLite file, or a `postgres://` URL.
    pub db: PathBuf,
    /// The token secret.
    pub secret: String,
    /// `synchronous=FULL` when true.
    pub durable: bool,
    /// Rates and the connection cap raised out of the way (else the server's defaults).
    pub raised_limits: bool,
    /// Whether the server offers `room:resume` (else it runs with `--no-resume`).
    pub resume_extension: bool,
    /// Whether the server offers `message:send_batch` (else it runs with `--no-send-batch`).
    pub send_batch_extension: bool,
    /// The Redis the nodes of a multi-node run share.
    pub redis: Option<String>,
}

/// A running child server.
#[derive(Debug)]
pub struct ChildServer {
    config: ChildConfig,
    addr: SocketAddr,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// CPU seconds of the incarnations that ended (killed or stopped).
    ended_cpu_s: f64,
}

impl ChildServer {
    /// Starts a child listening on a free loopback port.
    pub async fn start(config: ChildConfig) -> Result<Self, BenchError> {
        let mut server = Self {
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            stdin: None,
            ended_cpu_s: 0.0,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// Where it listens (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn spawn(&mut self) -> Result<(), BenchError> {
        let mut last_error = None;
        // After a SIGKILL the port can take a moment to be free again.
        for _ in 0..50 {
            match self.try_spawn().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last_error = Some(e);
                    if self.addr.port() == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last_error.unwrap_or_else(|| BenchError::Server("could not start".into())))
    }

    async fn try_spawn(&mut self) -> Result<(), BenchError> {
        let mut command = Command::new(&self.config.exe);
        command
            .arg("serve-child")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--db")
            .arg(&self.config.db)
            .env("CHAT_JWT_SECRET", &self.config.secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if !self.config.durable {
            command.arg("--no-fsync");
        }
        if let Some(redis) = &self.config.redis {
            command.arg("--redis").arg(redis);
        }
        if !self.config.resume_extension {
            command.arg("--no-resume");
        }
        if !self.config.send_batch_extension {
            command.arg("--no-send-batch");
        }
        if self.config.raised_limits {
            command
                .args(["--send-rate", "1000000", "--request-rate", "1000000"])
                .args([
                    "--typing-rate",
                    "100000",
                    "--max-connections-per-user",
                    "64",
                ]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "chat_server=warn");
        }
        let mut child = command.spawn().map_err(|e| {
            BenchError::Server(format!("cannot run {}: {e}", self.config.exe.display()))
        })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Server("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        match ready {
            Ok(Some(addr)) => {
                self.addr = addr;
                self.stdin = child.stdin.take();
                self.child = Some(child);
                // Keep draining stdout so the child never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(())
            }
            _ => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(BenchError::Server(format!(
                    "the server did not start on {} (see its errors above)",
                    self.addr
                )))
            }
        }
    }

    /// Tells the server to disconnect every socket.
    pub async fn kick(&mut self) -> Result<(), BenchError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BenchError::Server("server is not running".into()))?;
        stdin
            .write_all(b"kick\n")
            .await
            .map_err(|e| BenchError::Server(format!("cannot reach the server: {e}")))?;
        stdin
            .flush()
            .await
            .map_err(|e| BenchError::Server(e.to_string()))
    }

    /// CPU seconds the server used so far, over every incarnation (`None` without `/proc`).
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self.pid() {
            Some(pid) => crate::cpu::process_seconds(Some(pid)).map(|s| s + self.ended_cpu_s),
            None => Some(self.ended_cpu_s),
        }
    }

    /// Adds the running incarnation's CPU time to `ended_cpu_s`, before it ends.
    fn account_cpu(&mut self) {
        if let Some(seconds) = crate::cpu::process_seconds(self.pid()) {
            self.ended_cpu_s += seconds;
        }
    }

    /// Kills the server with SIGKILL and waits for it to be gone.
    pub async fn kill(&mut self) {
        self.account_cpu();
        // SIGKILL first: closing stdin first would start a graceful shutdown.
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.stdin = None;
    }

    /// Starts the server again on the same address and database.
    pub async fn resume(&mut self) -> Result<(), BenchError> {
        self.spawn().await
    }

    /// Stops the server gracefully (closing stdin), killing it if it does not stop.
    pub async fn stop(&mut self) {
        self.account_cpu();
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }

    /// The child's resident memory, in bytes (Linux only).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        rss_from_status(&status)
    }
}

fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs as the child: serves until stdin closes, kicking everyone on each `kick` line.
pub async fn serve_child(args: chat_server::cli::ServeArgs) -> Result<(), BenchError> {
    let config = args
        .config()
        .map_err(|e| BenchError::Server(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| BenchError::Server(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::Server(e.to_string()))?;
    let server = chat_server::Server::start(listener, config)
        .await
        .map_err(|e| BenchError::Server(e.to_string()))?;
    println!("listening on {addr}");
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(command)) = commands.next_line().await {
        if command.trim() == "kick" {
            server.kick_all();
        }
    }
    server
        .shutdown()
        .await
        .map_err(|e| BenchError::Server(e.to_string()))
}

/// A temporary database path inside `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("bench-server.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_proc_status() {
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nThreads:\t4\n";
        assert_eq!(rss_from_status(status), Some(2 * 1024 * 1024));
        assert_eq!(rss_from_status("Name: x"), None);
    }
}

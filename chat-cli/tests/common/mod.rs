//! The harness of the end-to-end tests: a real `chat serve` child process on a free port,
//! and `chat` commands pointed at it, each user with its own outbox file.
//!
//! Nothing here sleeps to wait: readiness is a line read from a child's output, with a
//! generous timeout as the failure guard.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The secret test servers are started with.
pub const SECRET: &str = "chat-cli-test-secret";
/// How long any single wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(30);

/// The `chat` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chat")
}

/// Reads a child's stdout line by line on a thread, so lines can be awaited with a timeout.
#[derive(Debug)]
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Starts reading `stdout`.
    pub fn new(stdout: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line that satisfies `pred`; panics after [`GUARD`] or at end of output.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("waiting for {what}: {e:?}; output so far: {:#?}", self.seen),
            }
        }
    }
}

/// A `chat serve` child process with its own database.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:<port>`, kept across restarts.
    pub addr: String,
    /// Extra `chat serve` flags (`--tls-cert FILE --tls-key FILE`, limits, …).
    args: Vec<std::ffi::OsString>,
    /// A temporary directory for the database, stores and config.
    pub dir: tempfile::TempDir,
}

fn spawn_server(listen: &str, db: &Path, extra: &[std::ffi::OsString]) -> (Child, String) {
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            listen,
            "--jwt-secret",
            SECRET,
            "--no-fsync",
        ])
        .args(extra)
        .args(["--presence-grace", "200ms", "--db"])
        .arg(db)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chat serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(GUARD).unwrap_or_default();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or("")
        .trim_start_matches("https://")
        .to_owned();
    (child, addr)
}

impl Server {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        Self::start_with_args(Vec::new())
    }

    /// Starts a server with extra `chat serve` flags.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_args(args.iter().map(Into::into).collect())
    }

    /// Starts a server that terminates TLS with `cert` (`chat serve --tls-cert --tls-key`).
    pub fn start_tls(cert: &chat_testkit::TestCert) -> Self {
        Self::start_with_args(vec![
            "--tls-cert".into(),
            cert.cert_path().into(),
            "--tls-key".into(),
            cert.key_path().into(),
        ])
    }

    fn start_with_args(args: Vec<std::ffi::OsString>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, addr) = spawn_server("127.0.0.1:0", &dir.path().join("server.db"), &args);
        assert!(
            !addr.is_empty(),
            "chat serve printed no `listening on` line"
        );
        Self {
            child: Some(child),
            addr,
            args,
            dir,
        }
    }

    /// URL of the server: `https://` with TLS, else `http://`.
    pub fn url(&self) -> String {
        let scheme = if self.args.iter().any(|a| a == "--tls-cert") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Kills the server with SIGKILL (the database stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and database, with other extra flags.
    pub fn resume_with(&mut self, args: &[&str]) {
        self.args = args.iter().map(Into::into).collect();
        self.resume();
    }

    /// Starts it again on the same port and database.
    pub fn resume(&mut self) {
        for _ in 0..50 {
            let (mut child, addr) =
                spawn_server(&self.addr, &self.dir.path().join("server.db"), &self.args);
            if addr == self.addr {
                self.child = Some(child);
                return;
            }
            // The port may still be held for a moment after the kill.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not restart the server on {}", self.addr);
    }

    /// A token for `user`.
    pub fn token(&self, user: &str) -> String {
        let user = chat_protocol::UserId::new(user).expect("valid user id");
        chat_server::mint_token(SECRET, &user, Duration::from_secs(3600)).expect("token")
    }

    /// The outbox file of `user`.
    pub fn store(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.db"))
    }

    /// `chat <args>` as `user`, configured through the environment only.
    pub fn chat(&self, user: &str) -> Command {
        let mut command = Command::new(bin());
        self.configure(&mut command, user);
        command
    }

    /// `chat send <room> - --json` as `user`, running, with `input` written to its stdin
    /// (then closed) and its stdout read line by line.
    pub fn send_dash(&self, user: &str, room: &str, input: &str) -> (Child, Lines) {
        use std::io::Write;
        let mut child = self
            .chat(user)
            .args(["send", room, "-", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn send -");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        let lines = Lines::new(child.stdout.take().expect("stdout"));
        (child, lines)
    }

    /// The same as [`Server::chat`] for `assert_cmd`, with a timeout.
    pub fn cmd(&self, user: &str) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(bin());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("CHAT_URL", self.url())
            .env("CHAT_TOKEN", self.token(user))
            .env("CHAT_STORE", self.store(user))
            .env("NO_COLOR", "1")
            .timeout(GUARD);
        command
    }

    fn configure(&self, command: &mut Command, user: &str) {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("CHAT_URL", self.url())
            .env("CHAT_TOKEN", self.token(user))
            .env("CHAT_STORE", self.store(user))
            .env("NO_COLOR", "1")
            .env("TERM", "xterm");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses JSON Lines.
pub fn json_lines(text: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
        })
        .collect()
}

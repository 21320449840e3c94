//! The live progress bar on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::live::Live;
use crate::opts::{ClientKind, Opts};

/// A running progress display (or nothing, off a terminal).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the display for a run from `start` to `end`.
    pub fn start(
        opts: &Opts,
        kind: ClientKind,
        live: Arc<Live>,
        start: Instant,
        end: Instant,
    ) -> Self {
        if opts.quiet || !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let total = (end - start).as_millis() as u64;
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(match kind {
            ClientKind::Sdk => "sdk",
            ClientKind::Raw => "raw",
        });
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let now = Instant::now();
                shown.set_position(now.saturating_duration_since(start).as_millis() as u64);
                shown.set_message(format!(
                    "sent {} acked {} reconnects {} pending {}",
                    live.sent.load(Ordering::Relaxed),
                    live.acked.load(Ordering::Relaxed),
                    live.reconnects.load(Ordering::Relaxed),
                    live.pending(),
                ));
            }
        });
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Removes the display.
    pub fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

//! Small programs a newcomer runs first, in `examples/examples/`: an echo bot, a sender that
//! prints each status change, a listener and a presence watcher. Each file begins with how
//! to run it against `chat serve`; `cargo build -p examples --examples` builds them all.

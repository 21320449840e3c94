//! `chat`: see the library crate for everything it does.

fn main() -> std::process::ExitCode {
    chat_cli::main()
}

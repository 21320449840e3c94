//! Snapshots of `--help`: the top level and every command.

use chat_cli::Opts;
use clap::CommandFactory;

fn help(path: &[&str]) -> String {
    let mut command = Opts::command();
    command.build();
    let mut current = &mut command;
    for name in path {
        current = current
            .find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"));
    }
    current.render_long_help().to_string()
}

#[test]
fn help_of_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["token"],
        &["send"],
        &["listen"],
        &["history"],
        &["read"],
        &["presence"],
        &["typing"],
        &["outbox"],
        &["outbox", "list"],
        &["outbox", "flush"],
        &["chat"],
    ];
    for path in commands {
        let name = if path.is_empty() {
            "chat".to_owned()
        } else {
            format!("chat {}", path.join(" "))
        };
        insta::assert_snapshot!(
            name.replace(' ', "_"),
            help(path),
            &format!("{name} --help")
        );
    }
}

#[test]
fn every_command_shows_an_example() {
    let mut command = Opts::command();
    command.build();
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let after = sub
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(
            after.contains("chat "),
            "{} --help has no example",
            sub.get_name()
        );
    }
}

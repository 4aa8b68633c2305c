//! The command line: `--config`, `--print-config`, and a flag (with its environment variable)
//! for every setting in the table.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::table::TABLE;

/// What `--help` says before the flags.
const LONG_ABOUT: &str = "tasksyncd: the offline-first task sync daemon. It alone owns the \
    local database and serves `taskctl` and apps over a local socket.

Every setting can also be given in the config file ($XDG_CONFIG_HOME/tasksync/config.toml) \
    under the name shown in `--print-config`. Flags win over environment variables, which win \
    over the file, which wins over the defaults.";

/// The ids of the two flags that are not settings.
pub(crate) const CONFIG: &str = "config";
pub(crate) const PRINT_CONFIG: &str = "print_config";

/// tasksyncd's command line.
pub(crate) fn command() -> Command {
    let command = Command::new("tasksyncd")
        .version(env!("CARGO_PKG_VERSION"))
        .about(env!("CARGO_PKG_DESCRIPTION"))
        .long_about(LONG_ABOUT)
        .arg(
            Arg::new(CONFIG)
                .long("config")
                .env("TASKSYNC_CONFIG")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Config file [default: $XDG_CONFIG_HOME/tasksync/config.toml, if it exists]"),
        )
        .arg(
            Arg::new(PRINT_CONFIG)
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help(
                    "Print the effective settings and where each came from, as a config file, \
                     then exit",
                ),
        );
    TABLE
        .iter()
        .fold(command, |command, setting| command.arg(setting.arg()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
    }
}

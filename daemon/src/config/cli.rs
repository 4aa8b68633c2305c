//! The command line: `--config`, `--print-config`, and a flag (with its environment variable)
//! for every setting in the table.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::setting::Defaults;
use super::table::TABLE;

/// What `--help` says before the flags.
const LONG_ABOUT: &str = "tasksyncd: the offline-first task sync daemon. It alone owns the \
    local database and serves `taskctl` and apps over a local socket.

Every setting can also be given in the config file ($XDG_CONFIG_HOME/tasksync/config.toml) \
    under the name shown in `--print-config`. Flags win over environment variables, which win \
    over the file, which wins over the defaults.";

/// The ids of the flags that are not settings.
pub(crate) const CONFIG: &str = "config";
pub(crate) const PRINT_CONFIG: &str = "print_config";
pub(crate) const MAN: &str = "man";

/// tasksyncd's command line; `--help` shows the default paths as they are here.
pub(crate) fn command() -> Command {
    command_with(Defaults::Here)
}

/// The man page (roff) of tasksyncd: the command line with its defaults stated as rules, the
/// same for every user.
pub(crate) fn man_page() -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command_with(Defaults::Rule))
        .render(&mut page)
        .expect("rendering into memory cannot fail");
    page
}

fn command_with(defaults: Defaults) -> Command {
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
        )
        .arg(
            Arg::new(MAN)
                .long("man")
                .action(ArgAction::SetTrue)
                .hide(true)
                .help("Print this man page (roff) and exit: tasksyncd --man | man -l -"),
        );
    TABLE.iter().fold(command, |command, setting| {
        command.arg(setting.arg(defaults))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn the_man_page_states_rules_and_help_states_values() {
        let page = String::from_utf8(super::man_page()).unwrap();
        assert!(page.contains(".TH tasksyncd"), "{page}");
        assert!(page.contains("XDG_RUNTIME_DIR"), "{page}");
        let help = super::command().render_long_help().to_string();
        let socket = tasksync_proto::paths::default_socket_path();
        assert!(
            help.contains(&format!("[default: {}]", socket.display())),
            "{help}"
        );
    }
}

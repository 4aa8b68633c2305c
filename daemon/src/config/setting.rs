//! What the settings table says about one setting, and the macro that turns the table into
//! the typed [`Values`](super::Values), the flags and the file keys.

use std::ops::RangeInclusive;

use clap::Arg;

/// One setting, described once: its file key (also its name in `--print-config`), flag,
/// environment variable and help. The value's type adds the parsing (see [`super::value`]).
pub(crate) struct Setting {
    pub(crate) key: &'static str,
    /// The long flag, with its dashes.
    pub(crate) flag: &'static str,
    pub(crate) env: &'static str,
    /// The flag's value in `--help`, e.g. `PATH`.
    pub(crate) value_name: &'static str,
    /// The doc comment: the help text.
    pub(crate) help: &'static str,
    /// The default as `--help` shows it, when the help does not say it in words.
    pub(crate) help_default: fn() -> Option<String>,
    /// Teaches clap the value's type (from [`super::value::Value::arg`]).
    pub(crate) typed: fn(Arg, Option<&RangeInclusive<u64>>) -> Arg,
    /// The values allowed, for numbers.
    pub(crate) range: Option<RangeInclusive<u64>>,
    /// A further check of a text value, e.g. that a URL is one.
    pub(crate) check: fn(&str) -> Result<(), String>,
    /// Anything else clap should know, e.g. which flags conflict.
    pub(crate) clap: fn(Arg) -> Arg,
    /// A change on SIGHUP takes effect only after a restart.
    pub(crate) restart: bool,
}

impl Setting {
    /// What a table entry does not say.
    pub(crate) const PLAIN: Setting = Setting {
        key: "",
        flag: "",
        env: "",
        value_name: "",
        help: "",
        help_default: || None,
        typed: |arg, _| arg,
        range: None,
        check: |_| Ok(()),
        clap: |arg| arg,
        restart: false,
    };

    /// The flag, its environment variable and help, for clap.
    pub(crate) fn arg(&self, defaults: Defaults) -> Arg {
        let help = self.help.trim();
        // A help that states its default as a rule (a path under $XDG_...) keeps the rule for
        // the man page; `--help` shows the value it has here.
        let rule = help.find("[default:");
        let help = match ((self.help_default)(), rule, defaults) {
            (Some(default), Some(at), Defaults::Here) => {
                format!("{} [default: {default}]", help[..at].trim_end())
            }
            (Some(default), None, _) => format!("{help} [default: {default}]"),
            _ => help.to_string(),
        };
        let arg = Arg::new(self.key)
            .long(self.flag.trim_start_matches('-'))
            .env(self.env)
            .help(help);
        let arg = match self.value_name {
            "" => arg,
            name => arg.value_name(name),
        };
        (self.clap)((self.typed)(arg, self.range.as_ref()))
    }
}

/// Which defaults the help shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defaults {
    /// The values for this user on this machine (`--help`).
    Here,
    /// The rules, where the help states one (the man page, the same for everyone).
    Rule,
}

/// Declares the settings: each entry is a doc comment (the help), then
/// `key: Type = default, "--flag", "ENV", "VALUE_NAME"` and any of the [`Setting`] fields it
/// sets, as `name: value`. An optional setting's type is an `Option`.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $ty:ty = $default:expr, $flag:literal, $env:expr, $value_name:literal
        $(, $field:ident: $value:expr)* ;
    )+) => {
        /// Each setting as a constant, named like its key.
        #[allow(non_upper_case_globals)]
        mod spec {
            use super::*;
            $(pub(super) const $key: Setting = Setting {
                key: stringify!($key),
                flag: $flag,
                env: $env,
                value_name: $value_name,
                help: concat!($($doc),+),
                help_default: || {
                    let default: $ty = $default;
                    Field::raw(&default).and_then(Value::help_default)
                },
                typed: <<$ty as Field>::Raw as Value>::arg,
                $($field: $value,)*
                ..Setting::PLAIN
            };)+
        }

        /// Every setting, in `--help` and `--print-config` order.
        pub(crate) static TABLE: &[Setting] = &[$(spec::$key),+];

        /// The effective value of every setting.
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct Values {
            $($(#[doc = $doc])+ pub $key: $ty,)+
        }

        impl Values {
            /// Takes each setting from the first place that has it.
            pub(crate) fn resolve(r: &mut Resolver<'_>) -> Result<Values, ConfigError> {
                Ok(Values {
                    $($key: r.pick(&spec::$key, || $default)?,)+
                })
            }
        }
    };
}
pub(crate) use settings;

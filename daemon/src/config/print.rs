//! `--print-config`: the effective settings as a config file, each line saying where its
//! value came from. Settings without a value, and secrets, are commented out.

use std::fmt::Write;
use std::path::Path;

use super::resolve::{Resolved, Shown};

/// The settings as TOML that can be pasted back as a config file.
pub(crate) fn describe(config_file: Option<&Path>, resolved: &[Resolved]) -> String {
    let file = config_file.map_or("none".to_string(), |p| p.display().to_string());
    let mut out = format!(
        "# tasksyncd {} settings (config file: {file})\n",
        env!("CARGO_PKG_VERSION")
    );
    let lines: Vec<(String, String)> = resolved
        .iter()
        .map(|r| {
            let key = r.key;
            match &r.shown {
                Shown::Toml(value) => (format!("{key} = {value}"), r.source.to_string()),
                Shown::NotSet => (format!("# {key} = (not set)"), r.source.to_string()),
                Shown::Secret => (
                    format!("# {key} = (a secret: not printed)"),
                    r.source.to_string(),
                ),
            }
        })
        .collect();
    let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
    for (line, source) in lines {
        let _ = writeln!(out, "{line:<width$}  # {source}");
    }
    out
}

//! How hard a SQLite commit waits for the disk: a property of the storage, which the command
//! line (`--synchronous`) merely chooses.

use clap::ValueEnum;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// Every acknowledged batch survives a power cut.
    Full,
    /// Survives a crash of the server, but may lose the last batches on a power cut.
    Normal,
}

impl Durability {
    pub fn pragma_value(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

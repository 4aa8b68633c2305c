//! Running as a service: the single-instance locks and the signals that stop the daemon.

pub mod lock;
pub mod shutdown;

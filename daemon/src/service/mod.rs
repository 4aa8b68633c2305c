//! Running as a service: single-instance locks, signals, readiness notification and socket
//! activation.

pub mod activation;
pub mod lock;
pub mod notify;
pub mod shutdown;

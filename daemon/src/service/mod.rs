//! Running as a service: single-instance locks, signals, readiness notification, socket
//! activation and the open-file limit.

pub mod activation;
pub mod fds;
pub mod lock;
pub mod notify;
pub mod shutdown;

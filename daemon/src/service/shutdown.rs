//! Signals: SIGTERM and SIGINT (Ctrl-C on Windows) stop the daemon, SIGHUP reloads its
//! config file; and the one shutdown signal every part of the daemon awaits. tokio's signal
//! handling is built on signal-hook-registry.

use tokio::sync::watch;

/// Cloneable view of the shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: call [`ShutdownTrigger::trigger`] to stop the daemon.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been requested (at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the trigger is gone, which also means: stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT (Ctrl-C elsewhere): stop.
    Stop(&'static str),
    /// SIGHUP: re-read the config file.
    Reload,
}

/// The signals the daemon listens to, registered once at start.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn register() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> std::io::Result<Signal> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Ok(Signal::Stop("SIGTERM")),
                _ = self.int.recv() => Ok(Signal::Stop("SIGINT")),
                _ = self.hup.recv() => Ok(Signal::Reload),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await?;
            Ok(Signal::Stop("Ctrl-C"))
        }
    }
}

//! Signals: SIGTERM and SIGINT stop the daemon, SIGHUP reloads its config file (on Windows:
//! Ctrl-C, Ctrl-Break, closing the console, logoff and shutdown stop it); and the one
//! shutdown signal every part of the daemon awaits. tokio's Unix signal handling is built on
//! signal-hook-registry.

use tokio::sync::watch;

/// Cloneable view of the shutdown signal.
#[derive(Clone)]
pub(crate) struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: call [`ShutdownTrigger::trigger`] to stop the daemon.
pub(crate) struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub(crate) fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub(crate) fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been requested (at once if it already was).
    pub(crate) async fn requested(&mut self) {
        // An error means the trigger is gone, which also means: stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM or SIGINT; on Windows Ctrl-C, Ctrl-Break, closing the console, logoff or
    /// system shutdown: stop.
    Stop(&'static str),
    /// SIGHUP: re-read the config file. Unix only: Windows has no such signal, so there
    /// nothing sends it (the main loop's arm for it stays platform-neutral).
    #[cfg_attr(not(unix), allow(dead_code))]
    Reload,
}

/// The signals the daemon listens to, registered once at start.
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(windows)]
    console: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
}

impl Signals {
    pub(crate) fn register() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(windows)]
        Ok(Signals {
            console: console::register()?,
        })
    }

    /// Waits for the next signal.
    pub(crate) async fn next(&mut self) -> std::io::Result<Signal> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Ok(Signal::Stop("SIGTERM")),
                _ = self.int.recv() => Ok(Signal::Stop("SIGINT")),
                _ = self.hup.recv() => Ok(Signal::Reload),
            }
        }
        #[cfg(windows)]
        match self.console.recv().await {
            Some(event) => Ok(Signal::Stop(event)),
            None => Err(std::io::Error::other("the console control handler is gone")),
        }
    }
}

/// Console control events on Windows. tokio's own handlers return at once, and for closing
/// the console, logoff and shutdown Windows ends the process the moment the handler returns,
/// before any cleanup ran. This handler instead holds that event until the daemon's orderly
/// shutdown has finished and `main` returns (Windows gives it about 5 seconds).
#[cfg(windows)]
mod console {
    use std::io;
    use std::sync::OnceLock;

    use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
    use windows_sys::core::BOOL;
    use windows_sys::Win32::Foundation::{FALSE, TRUE};
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
        CTRL_SHUTDOWN_EVENT,
    };

    static EVENTS: OnceLock<UnboundedSender<&'static str>> = OnceLock::new();

    /// Runs on a thread Windows creates for each event.
    extern "system" fn handler(event: u32) -> BOOL {
        let name = match event {
            CTRL_C_EVENT => "Ctrl-C",
            CTRL_BREAK_EVENT => "Ctrl-Break",
            CTRL_CLOSE_EVENT => "console close",
            CTRL_LOGOFF_EVENT => "logoff",
            CTRL_SHUTDOWN_EVENT => "system shutdown",
            _ => return FALSE,
        };
        match EVENTS.get() {
            Some(events) if events.send(name).is_ok() => {}
            _ => return FALSE,
        }
        if matches!(
            event,
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
        ) {
            // Returning would end the process now; the process ends when `main` returns.
            loop {
                std::thread::park();
            }
        }
        TRUE
    }

    pub(super) fn register() -> io::Result<UnboundedReceiver<&'static str>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        EVENTS
            .set(sender)
            .map_err(|_| io::Error::other("console control handler registered twice"))?;
        // SAFETY: `handler` is a plain function, valid for the life of the process, with the
        // signature HandlerRoutine requires; the call has no other preconditions.
        if unsafe { SetConsoleCtrlHandler(Some(handler), TRUE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(receiver)
    }
}

//! Waiting for the signal to stop: SIGTERM or SIGINT (Ctrl-C).

/// Resolves when the process is asked to stop.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!("cannot watch SIGTERM ({error}); only SIGINT stops the server");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

async fn ctrl_c() {
    match tokio::signal::ctrl_c().await {
        Ok(()) => tracing::info!("SIGINT received, shutting down"),
        Err(error) => {
            tracing::warn!("cannot watch SIGINT ({error})");
            std::future::pending::<()>().await;
        }
    }
}

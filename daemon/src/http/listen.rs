//! Starting the HTTP API: get the bearer token (made on first start), bind the address, log
//! where it listens, and hand back something main can serve once the app exists.
//!
//! Whether the address may be listened on at all (loopback unless `--http-allow-remote`) is
//! decided earlier, in `Config::http_settings`.

use std::net::SocketAddr;
use std::sync::Arc;

use tasksync_http::bearer::TokenDigest;
use tokio::net::TcpListener;

use super::server::{self, Api};
use super::token::{self, TokenError};
use crate::app::App;
use crate::config::HttpSettings;
use crate::service::shutdown::Shutdown;

/// Why the HTTP API could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot listen on {addr} for the HTTP API: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
}

/// The HTTP API, bound and with its token, not serving yet.
pub(crate) struct HttpApi {
    listener: TcpListener,
    token: String,
    addr: SocketAddr,
}

impl HttpApi {
    /// Loads (or makes) the token and binds the listening socket.
    pub(crate) async fn start(settings: &HttpSettings) -> Result<HttpApi, StartError> {
        let token = token::load_or_create(&settings.token_file)?;
        let bind_error = |source: std::io::Error| {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => " (another program uses it: pick another port)",
                std::io::ErrorKind::AddrNotAvailable => " (no network interface has that address)",
                _ => "",
            };
            StartError::Bind {
                addr: settings.listen,
                source,
                hint,
            }
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        tracing::info!("HTTP API listening on {addr}");
        tracing::info!(
            "HTTP API token in {} (`taskctl api-token` prints it)",
            settings.token_file.display()
        );
        Ok(HttpApi {
            listener,
            token,
            addr,
        })
    }

    /// The bearer token requests must carry.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The address actually bound (the port chosen when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves requests until shutdown is requested, then drains.
    pub(crate) async fn serve(self, app: Arc<App>, shutdown: Shutdown) {
        let api = Arc::new(Api {
            app,
            token: Some(TokenDigest::of(self.token.as_bytes())),
            shutdown: shutdown.clone(),
        });
        server::serve(self.listener, api, shutdown).await;
    }
}

//! What every handler shares: the models, the metrics and the server's configuration.

use std::sync::Arc;
use std::time::Duration;

use uma_engine::{KeepAlive, ModelLease, ModelRegistry};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How the server behaves, apart from the models it serves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// When set, every route but `/health` and `/metrics` needs `Authorization: Bearer <key>`
    /// (OpenAI's clients) or `x-api-key: <key>` (Anthropic's).
    pub api_key: Option<String>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How long running requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Open connections at most; past it the server stops accepting until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle before the next request.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, from the end of its headers: a
    /// body that stalls or drips would otherwise hold its connection forever.
    pub body_timeout: Duration,
    /// Which `Host` and `Origin` headers requests may carry (`serve` turns the Host check on
    /// when it listens on loopback only).
    pub origins: crate::origin::OriginPolicy,
    /// Serve the web page at `/` (`uma serve --no-web` turns it off).
    pub web: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_key: None,
            max_body_bytes: 8 << 20,
            shutdown_grace: Duration::from_secs(30),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            origins: crate::origin::OriginPolicy::default(),
            web: true,
        }
    }
}

/// What every handler sees.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: ModelRegistry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: ServerConfig,
    /// Unix time in seconds at which the server started (OpenAI's `created` of a model).
    pub(crate) started: u64,
    /// Past responses of `POST /v1/responses`, for `previous_response_id`: in memory, the
    /// oldest evicted past a count and a byte bound (`responses/store.rs`).
    pub(crate) responses: crate::responses::ResponseStore,
}

impl AppState {
    /// The model `model`, loaded if it is not resident (the request waits for the load), or the
    /// API error saying why not.
    pub(crate) async fn lease(
        &self,
        model: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<ModelLease, ApiError> {
        let models = self.models.clone();
        let name = model.to_owned();
        // Loading reads and repacks weights for seconds: off the async workers.
        tokio::task::spawn_blocking(move || models.acquire(&name, keep_alive))
            .await
            .map_err(|error| ApiError::internal(format!("model lookup failed: {error}")))?
            .map_err(ApiError::from)
    }
}

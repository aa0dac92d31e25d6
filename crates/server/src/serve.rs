//! Running the server until a shutdown signal, then draining: the engines stop accepting
//! requests, running ones get a grace period to finish, and the process can exit cleanly.

use std::future::Future;

use tokio::net::TcpListener;
use uma_engine::ModelRegistry;

use crate::app::router;
use crate::state::ServerConfig;

/// Serves `models` on `listener` until `shutdown` resolves, then shuts the engines down
/// (running requests finish within the grace period, then are cancelled) and returns once every
/// connection and engine thread has ended.
pub async fn serve(
    listener: TcpListener,
    models: ModelRegistry,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let app = router(models.clone(), config);
    let (drained_sender, drained) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing running requests");
        // Engines drain in the background while the server stops taking connections; open
        // streams end as their requests finish or are cancelled at the deadline.
        let draining = tokio::task::spawn_blocking(move || models.shutdown(grace));
        let _ = drained_sender.send(draining);
    };
    axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    if let Ok(draining) = drained.await {
        let _ = draining.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

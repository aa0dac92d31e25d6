//! Running the server until a shutdown signal, then draining: the engines stop accepting
//! requests, running ones get a grace period to finish, and the process exits by a deadline.
//!
//! Connections are bounded: at most `max_connections` at once (past it the server stops
//! accepting, so the process never runs out of file descriptors), a client has `header_timeout`
//! to send a request's headers, and a kept-alive connection is closed after that long idle. A
//! connection still open when the grace period ends (a half-sent request, say) is dropped: it
//! cannot hold the process up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use uma_engine::ModelRegistry;

use crate::app::router;
use crate::state::ServerConfig;

/// How long to wait before accepting again after `accept` failed (out of file descriptors,
/// say): a retry at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `models` on `listener` until `shutdown` resolves, then shuts the engines down
/// (running requests finish within the grace period, then are cancelled) and returns once every
/// engine thread has ended and every connection has closed or been dropped at the deadline.
pub async fn serve(
    listener: TcpListener,
    models: ModelRegistry,
    mut config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Listening on loopback only: answer loopback host names only (DNS rebinding).
    config.origins.check_host = listener.local_addr()?.ip().is_loopback();
    let grace = config.shutdown_grace;
    let idle_timeout = config.header_timeout;
    let max_connections = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // Above the router's own limits (app.rs), which answer with JSON errors.
        .max_headers(10 * crate::app::MAX_HEADERS)
        .max_buf_size(32 * crate::app::MAX_HEADER_BYTES)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let app = router(models.clone(), config);
    let connections = Arc::new(Semaphore::new(max_connections));
    let (stopping, stop) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut was_full = false;
    loop {
        // Once per time the limit is reached, not once per connection accepted at it.
        let full = connections.available_permits() == 0;
        if full && !was_full {
            tracing::warn!(max_connections, "connection limit reached: new ones wait");
        }
        was_full = full;
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (builder, app, stop) = (builder.clone(), app.clone(), stop.clone());
        tokio::spawn(async move {
            serve_connection(&builder, stream, TowerToHyperService::new(app), idle_timeout, stop)
                .await;
            drop(permit);
        });
    }
    tracing::info!("shutting down: finishing running requests");
    let _ = stopping.send(true);
    // Engines drain in the background while open connections finish their responses; open
    // streams end as their requests finish or are cancelled at the deadline.
    let draining = tokio::task::spawn_blocking(move || models.shutdown(grace));
    let all_closed = connections.acquire_many(max_connections as u32);
    if tokio::time::timeout(grace + Duration::from_secs(1), all_closed).await.is_err() {
        tracing::warn!("connections still open after the grace period: dropped");
    }
    let _ = draining.await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves one connection until it closes: asked to close gracefully (its request in progress
/// finishes, then it closes; an idle one closes at once) when the client has sent nothing for
/// `idle_timeout`, or when the server stops.
async fn serve_connection<S>(
    builder: &Builder<TokioExecutor>,
    stream: tokio::net::TcpStream,
    service: S,
    idle_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let last_read = Arc::new(LastRead::now());
    let io = TokioIo::new(TrackedStream { inner: stream, last_read: last_read.clone() });
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_deadline = last_read.get() + idle_timeout;
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep_until(idle_deadline), if !closing => {
                if last_read.get() + idle_timeout <= Instant::now() {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When a connection last received bytes.
struct LastRead(std::sync::Mutex<Instant>);

impl LastRead {
    fn now() -> LastRead {
        LastRead(std::sync::Mutex::new(Instant::now()))
    }

    fn get(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// A TCP stream that notes when it last read bytes (for the idle timeout).
struct TrackedStream {
    inner: tokio::net::TcpStream,
    last_read: Arc<LastRead>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.last_read.touch();
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A future that resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM. The handlers are installed
/// when this is called, not when the future is first polled: call it before announcing the
/// address, so that a signal right after "listening" drains instead of killing the process.
/// Needs a running tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
